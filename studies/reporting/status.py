"""The reading status machine of a study: unread → in progress → preliminary → final → amended.

Services move a study through it with :func:`reading_transition`; any other move is refused
with a clear message, so that a signed reading never slips back to "unread".
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from studies.models import ReadingStatus as S

TRANSITIONS: dict[str, frozenset[str]] = {
    S.UNREAD: frozenset({S.IN_PROGRESS}),
    # Released without a signed report: back to unread.
    S.IN_PROGRESS: frozenset({S.UNREAD, S.PRELIMINARY, S.FINAL}),
    # A preliminary reading is followed by a final one (a new version) or corrected again.
    S.PRELIMINARY: frozenset({S.FINAL, S.PRELIMINARY}),
    S.FINAL: frozenset({S.AMENDED}),
    S.AMENDED: frozenset({S.AMENDED}),
}


def can_transition(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, frozenset())


def check_transition(current: str, target: str) -> None:
    """Raise ``ValidationError`` unless a study may go from ``current`` to ``target``."""
    if not can_transition(current, target):
        raise ValidationError(
            _("The reading status cannot change from “%(current)s” to “%(target)s”.")
            % {"current": S(current).label, "target": S(target).label}
        )


def status_after_signing(current: str, *, preliminary: bool, amendment: bool) -> str:
    """The study's reading status once a report version is signed."""
    if preliminary:
        target = S.PRELIMINARY
    elif amendment and current in (S.FINAL, S.AMENDED):
        target = S.AMENDED
    else:
        target = S.FINAL
    check_transition(current, target)
    return target
