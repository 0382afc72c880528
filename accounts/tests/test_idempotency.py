"""accounts.idempotency on a bare view: failures release the key, successes are kept."""

import pytest
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from accounts.idempotency import idempotent
from accounts.models import IdempotencyKey

pytestmark = pytest.mark.django_db


class Flaky(APIView):
    calls = 0

    @idempotent
    def post(self, request):
        type(self).calls += 1
        if type(self).calls == 1:
            raise RuntimeError("the database went away")
        return Response({"call": type(self).calls}, status=201)


def _post(user, key="k-1", body=None):
    request = APIRequestFactory().post(
        "/flaky/", body or {"a": 1}, format="json", HTTP_IDEMPOTENCY_KEY=key
    )
    force_authenticate(request, user=user)
    return Flaky.as_view()(request)


def test_a_server_error_releases_the_key_so_a_retry_runs(clinician):
    Flaky.calls = 0
    assert _post(clinician).status_code == 500
    assert not IdempotencyKey.objects.exists()
    second = _post(clinician)
    assert second.status_code == 201 and second.data == {"call": 2}
    third = _post(clinician)
    assert third.data == {"call": 2} and third["Idempotent-Replayed"] == "true"
    assert Flaky.calls == 2


def test_the_body_is_part_of_the_fingerprint(clinician):
    Flaky.calls = 1
    assert _post(clinician, body={"a": 1}).status_code == 201
    assert _post(clinician, body={"a": 2}).status_code == 422
    # Key order does not matter: the JSON is compared canonically.
    assert _post(clinician, key="k-2", body={"a": 1, "b": 2}).status_code == 201
    assert _post(clinician, key="k-2", body={"b": 2, "a": 1})["Idempotent-Replayed"] == "true"
