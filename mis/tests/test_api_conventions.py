import re

import pytest

pytestmark = pytest.mark.django_db


def test_the_openapi_schema_is_served(client):
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    assert response.json()["openapi"].startswith("3.")


@pytest.mark.parametrize("url", ["/api/docs/", "/api/redoc/"])
def test_the_api_docs_load_nothing_from_outside(client, url):
    response = client.get(url)
    assert response.status_code == 200
    body = response.content.decode()
    external = re.findall(r'(?:src|href)=["\'](https?://[^"\']+)', body)
    assert external == []
    assert "/static/drf_spectacular_sidecar/" in body


def test_pages_load_nothing_from_outside(client, clinician):
    client.force_login(clinician)
    body = client.get("/patients/").content.decode()
    assert re.findall(r'(?:src|href)=["\'](https?://[^"\']+)', body) == []


def test_an_unknown_api_url_is_a_json_404_in_the_error_shape(client):
    response = client.get("/api/v1/nothing-here/")
    assert response.status_code == 404
    assert response.json()["status"] == "error"
    assert response.json()["error"]["code"] == "not_found"


def test_an_unknown_page_is_a_translated_html_404(client):
    response = client.get("/no-such-page/", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 404
    assert "does not exist" in response.content.decode()


def test_an_unhandled_api_error_is_a_500_in_the_error_shape(api_client, clinician, monkeypatch):
    from patients.api import views

    def explode(self, request, *args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(views.PatientViewSet, "list", explode)
    api_client.force_authenticate(clinician)
    response = api_client.get("/api/v1/patients/", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "server_error"
    assert "boom" not in response.content.decode()


def test_every_list_endpoint_has_ordering_and_pagination(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    for path, operations in schema["paths"].items():
        get = operations.get("get")
        if not get or "{" in path:
            continue
        if "application/json" not in get["responses"]["200"].get("content", {}):
            continue  # a file (a ZIP export), not a list
        names = {p["name"] for p in get.get("parameters", [])}
        # Page numbers, or a cursor where rows keep arriving (the audit) and order is fixed.
        paged = {"ordering", "page", "page_size"} <= names or {"cursor", "page_size"} <= names
        assert paged, path
