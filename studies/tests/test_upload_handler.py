"""The upload API's file handler: each file hashed while it streams in, kept in memory while a
request's files stay within STUDIES_UPLOAD_MEMORY_BYTES altogether, the rest on disk."""

import hashlib

import pytest
from django.core.files.uploadedfile import (
    InMemoryUploadedFile,
    SimpleUploadedFile,
    TemporaryUploadedFile,
)

from studies.models import Instance
from studies.uploads import IngestUploadHandler

from .conftest import dicom_bytes

pytestmark = pytest.mark.django_db


def _feed(handler, name: str, data: bytes, chunk: int = 1000):
    handler.new_file("file", name, "application/dicom", len(data))
    for start in range(0, len(data), chunk):
        handler.receive_data_chunk(data[start : start + chunk], start)
    return handler.file_complete(len(data))


def test_files_stay_in_memory_up_to_the_limit_then_go_to_disk(settings):
    settings.STUDIES_UPLOAD_MEMORY_BYTES = 5000
    handler = IngestUploadHandler()
    first, second = b"a" * 3000, b"b" * 3000
    kept = _feed(handler, "a.dcm", first)
    spooled = _feed(handler, "b.dcm", second)
    assert isinstance(kept, InMemoryUploadedFile)
    assert isinstance(spooled, TemporaryUploadedFile)
    assert (kept.read(), spooled.read()) == (first, second)
    assert (kept.size, spooled.size) == (3000, 3000)
    assert kept.sha256 == hashlib.sha256(first).hexdigest()
    assert spooled.sha256 == hashlib.sha256(second).hexdigest()
    spooled.close()


@pytest.mark.usefixtures("patient")
@pytest.mark.parametrize("limit", [0, 16 * 1024 * 1024])
def test_an_upload_stores_each_file_with_its_sha256(api_client, registrar, settings, limit):
    settings.STUDIES_UPLOAD_MEMORY_BYTES = limit  # all on disk, or all in memory
    files = [dicom_bytes(), dicom_bytes()]
    api_client.force_authenticate(registrar)
    response = api_client.post(
        "/api/v1/instances/",
        {"file": [SimpleUploadedFile(f"f{i}.dcm", data) for i, data in enumerate(files)]},
        format="multipart",
    )
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["imported", "imported"]
    for result, data in zip(results, files, strict=True):
        instance = Instance.objects.get(pk=result["instance"])
        assert instance.sha256 == hashlib.sha256(data).hexdigest()
        with instance.file.open("rb") as handle:
            assert handle.read() == data


@pytest.mark.usefixtures("patient")
def test_a_browser_upload_with_its_csrf_token_is_handled_too(registrar):
    """The upload page posts with the session and the CSRF header: the CSRF check reads the
    body during authentication, so the handler must be in place before it (it once was set
    after, and every browser upload failed)."""
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(registrar)
    client.get("/studies/upload/")  # the page sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    data = dicom_bytes()
    response = client.post(
        "/api/v1/instances/",
        {"file": SimpleUploadedFile("a.dcm", data)},
        HTTP_X_CSRFTOKEN=token,
    )
    assert response.status_code == 200, response.content
    (result,) = response.json()["results"]
    assert result["status"] == "imported"
    assert Instance.objects.get(pk=result["instance"]).sha256 == hashlib.sha256(data).hexdigest()
    refused = Client(enforce_csrf_checks=True)
    refused.force_login(registrar)
    no_token = refused.post("/api/v1/instances/", {"file": SimpleUploadedFile("b.dcm", data)})
    assert no_token.status_code == 403


# -- the whole-body parser: the same files as Django's parser, or Django's parser itself --------

BOUNDARY = "b0undary42"
DISPOSITION = 'Content-Disposition: form-data; name="file"; filename="a"'


def _part(name="file", filename="a.dcm", data=b"DICM-data", *, headers=None):
    lines = headers or [
        f'Content-Disposition: form-data; name="{name}"; filename="{filename}"',
        "Content-Type: application/dicom",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


def _body(*parts, end=b"--\r\n", preamble=b""):
    separator = b"--" + BOUNDARY.encode()
    return (
        preamble
        + b"".join(separator + b"\r\n" + part + b"\r\n" for part in parts)
        + (separator + end)
    )


def _parsed(body: bytes, *, whole_body: bool):
    import io

    from django.http.multipartparser import MultiPartParser

    meta = {
        "CONTENT_TYPE": f"multipart/form-data; boundary={BOUNDARY}",
        "CONTENT_LENGTH": str(len(body)),
    }
    handler = IngestUploadHandler(whole_body=whole_body)
    try:
        post, files = MultiPartParser(meta, io.BytesIO(body), [handler], "utf-8").parse()
    except Exception as exc:
        return type(exc).__name__
    described = {
        key: [
            (
                type(f).__name__,
                f.name,
                f.content_type,
                f.charset,
                f.content_type_extra,
                f.size,
                f.read(),
                getattr(f, "sha256", None),
            )
            for f in files.getlist(key)
        ]
        for key in files
    }
    return dict(post.lists()), described


CASES = {
    "plain": _body(_part(), _part(filename="b.dcm", data=b"\r\n--b0undary4 x\r\n")),
    "one file": _body(_part(data=bytes(range(256)) * 10)),
    "empty file": _body(_part(data=b"")),
    "no final CRLF": _body(_part(), end=b"--"),
    "epilogue": _body(_part(), end=b"--\r\nepilogue"),
    "preamble": _body(_part(), preamble=b"preamble\r\n"),
    "a field too": _body(_part(), b'Content-Disposition: form-data; name="department"\r\n\r\nct'),
    "path in name": _body(_part(filename="C:\\\\x\\\\..\\\\a.dcm"), _part(filename="../../b.dcm")),
    "dot dot": _body(_part(filename="..")),
    "entities and unicode": _body(_part(filename="&amp;снимок.dcm")),
    "rfc 2231 name": _body(
        _part(
            headers=[
                "Content-Disposition: form-data; name=\"file\"; filename*=UTF-8''%D0%B0.dcm",
                "Content-Type: application/dicom; charset=utf-8",
            ]
        )
    ),
    "no content type": _body(_part(headers=[DISPOSITION])),
    "base64": _body(
        _part(
            headers=[
                'Content-Disposition: form-data; name="file"; filename="a.dcm"',
                "Content-Transfer-Encoding: base64",
            ],
            data=b"RElDTQ==",
        )
    ),
    "content length header": _body(
        _part(
            headers=[
                'Content-Disposition: form-data; name="file"; filename="a"',
                "Content-Length: 3",
            ]
        )
    ),
    "empty filename": _body(_part(filename="")),
    "LF framing": _body(_part()).replace(b"\r\n--", b"\n--"),
    "boundary without CRLF in data": _body(_part(data=b"xx--b0undary42yy")),
    "cut": _body(_part(), _part())[:-30],
    "no headers": _body(b"data"),
    "bad header": _body(_part(headers=[DISPOSITION, "junk"])),
    "twice the same header": _body(
        _part(headers=['Content-Disposition: form-data; name="x"; filename="a"'] * 2)
    ),
    "many files": _body(*[_part(filename=f"{i}.dcm") for i in range(5)]),
    "other field names": _body(_part(name="file"), _part(name=" other ")),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_whole_body_parser_gives_what_djangos_parser_gives(case, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 4 if case == "many files" else 100
    body = CASES[case]
    assert _parsed(body, whole_body=True) == _parsed(body, whole_body=False)


def test_plain_bodies_take_the_whole_body_path_and_others_do_not():
    from studies.uploads import _plain_multipart

    assert _plain_multipart(CASES["plain"], BOUNDARY.encode(), "utf-8") is not None
    for case in ("a field too", "preamble", "base64", "LF framing", "cut", "empty filename"):
        assert _plain_multipart(CASES[case], BOUNDARY.encode(), "utf-8") is None, case


def test_a_body_over_the_memory_limit_streams_as_before(settings):
    settings.STUDIES_UPLOAD_MEMORY_BYTES = 100
    body = _body(_part(data=b"a" * 300))
    parsed = _parsed(body, whole_body=True)
    assert parsed == _parsed(body, whole_body=False)
    assert parsed[1]["file"][0][0] == "TemporaryUploadedFile"
