import pytest
from django.contrib.auth.models import Group

from accounts.roles import ROLE_PERMISSIONS, ROLES

pytestmark = pytest.mark.django_db


def test_every_role_is_a_group_with_exactly_the_permissions_of_the_table():
    for role in ROLES:
        group = Group.objects.get(name=role)
        held = {
            f"{app}.{codename}"
            for app, codename in group.permissions.values_list(
                "content_type__app_label", "codename"
            )
        }
        assert held == ROLE_PERMISSIONS[role], role


def test_only_registrars_register_and_only_administrators_restore(
    administrator, radiologist, clinician, registrar, researcher
):
    assert [
        u.has_perm("patients.add_patient")
        for u in (administrator, radiologist, clinician, registrar, researcher)
    ] == [False, False, False, True, False]
    assert [
        u.has_perm("patients.restore_patient")
        for u in (administrator, radiologist, clinician, registrar, researcher)
    ] == [True, False, False, False, False]


def test_the_readme_role_table_is_generated_from_the_table():
    from django.conf import settings

    from accounts.management.commands.roles_table import readme_with_table

    text = (settings.BASE_DIR / "README.md").read_text()
    assert text == readme_with_table(text), "run: python manage.py roles_table --write"


def test_only_clinical_roles_may_break_glass_and_only_administrators_share(
    administrator, radiologist, clinician, registrar, researcher
):
    users = (administrator, radiologist, clinician, registrar, researcher)
    assert [u.has_perm("accounts.emergency_access") for u in users] == [
        False,
        True,
        True,
        True,
        False,
    ]
    assert [u.has_perm("accounts.share_record") for u in users] == [True] + [False] * 4
