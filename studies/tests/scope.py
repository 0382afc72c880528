"""Department scope lives in ``restrict()`` (the accounts issue). Until it is merged here, an
outsider still sees every row, so the outsider tests wait for it instead of failing."""

import pytest

from accounts import permissions

DEPARTMENT_SCOPED = hasattr(permissions, "scope_q")

needs_department_scope = pytest.mark.skipif(
    not DEPARTMENT_SCOPED, reason="department scope in restrict() arrives with the accounts issue"
)
