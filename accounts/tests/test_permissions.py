import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ImproperlyConfigured

from accounts.models import Department
from accounts.permissions import restrict
from accounts.tests.factories import DepartmentFactory

pytestmark = pytest.mark.django_db

PERM = "accounts.view_department"


@pytest.fixture
def departments(department):
    return [department, *DepartmentFactory.create_batch(2)]


def test_anonymous_sees_nothing(departments):
    assert restrict(Department.objects.all(), AnonymousUser(), PERM).count() == 0


def test_none_sees_nothing(departments):
    assert restrict(Department.objects.all(), None, None).count() == 0


def test_a_user_without_the_permission_sees_nothing(clinician, departments):
    assert restrict(Department.objects.all(), clinician, PERM).count() == 0


def test_a_user_with_the_permission_sees_the_rows(administrator, departments):
    assert restrict(Department.objects.all(), administrator, PERM).count() == 3


def test_no_permission_named_means_any_active_logged_in_user(clinician, departments):
    assert restrict(Department.objects.all(), clinician, None).count() == 3


def test_an_inactive_user_sees_nothing(administrator, departments):
    administrator.is_active = False
    administrator.save()
    assert restrict(Department.objects.all(), administrator, PERM).count() == 0


def test_a_model_without_scope_path_is_a_configuration_error(clinician):
    from django.contrib.auth.models import Group

    with pytest.raises(ImproperlyConfigured, match="scope_path"):
        restrict(Group.objects.all(), clinician, None)


def test_every_project_model_declares_its_scope_path():
    from django.apps import apps

    project_apps = {"accounts", "patients", "studies", "diagnostics"}
    missing = [
        model.__name__
        for model in apps.get_models()
        if model._meta.app_label in project_apps and not hasattr(model, "scope_path")
    ]
    assert missing == []


def test_permissions_are_read_in_one_query_and_are_django_s(clinician, django_assert_num_queries):
    """accounts.backends reads the user's and their groups' permissions in one UNION; the set
    is the one Django's ModelBackend computes."""
    from django.contrib.auth.backends import ModelBackend
    from django.contrib.auth.models import Permission

    from accounts.models import User

    clinician.user_permissions.add(Permission.objects.get(codename="view_department"))
    user = User.objects.get(pk=clinician.pk)
    with django_assert_num_queries(1):
        assert user.has_perm("accounts.view_department")
        assert user.has_perm("patients.view_patient")
        assert not user.has_perm("patients.merge_patient")
    expected = ModelBackend().get_all_permissions(User.objects.get(pk=clinician.pk))
    assert user.get_all_permissions() == expected
    assert "accounts.view_department" in expected and "patients.view_patient" in expected
