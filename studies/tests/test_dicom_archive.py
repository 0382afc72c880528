"""ZIP extraction that refuses bad members one by one, and DICOMDIR reading."""

import io
import os
import shutil
import warnings
import zipfile

import pydicom
import pytest

from studies.dicom.archive import (
    ArchiveLimits,
    extract_zip,
    find_dicomdir,
    is_junk,
    read_dicomdir,
    safe_relative_path,
)
from studies.dicom.errors import ArchiveError, ArchiveMemberError, DicomdirError
from studies.tests.dicom_samples import TEST_FILES

DICOMDIR_TESTS = TEST_FILES / "dicomdirtests"


def make_zip(members, compression=zipfile.ZIP_DEFLATED) -> io.BytesIO:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are part of the test
        with zipfile.ZipFile(buffer, "w", compression) as archive:
            for member in members:
                if isinstance(member, zipfile.ZipInfo):
                    archive.writestr(member, member.comment or b"data")
                else:
                    name, data = member
                    archive.writestr(name, data)
    buffer.seek(0)
    return buffer


def by_name(results):
    return {member.name: member for member in results}


def test_good_members_come_through_beside_bad_ones(tmp_path):
    archive = make_zip(
        [
            ("study/one.dcm", b"first"),
            ("../escape.dcm", b"x"),
            ("/etc/cron.d/evil", b"x"),
            ("..\\..\\windows.dcm", b"x"),
            ("C:/temp/drive.dcm", b"x"),
            ("study/sub/../../up.dcm", b"x"),
            ("study/two.dcm", b"second"),
            ("study/", b""),
            ("__MACOSX/study/._one.dcm", b"junk"),
            ("study/.DS_Store", b"junk"),
            ("study/Thumbs.db", b"junk"),
        ]
    )
    results = by_name(extract_zip(archive, tmp_path))

    assert results["study/one.dcm"].ok and results["study/one.dcm"].path.read_bytes() == b"first"
    assert results["study/two.dcm"].path == tmp_path.resolve() / "study" / "two.dcm"
    for name in ("../escape.dcm", "..\\..\\windows.dcm", "study/sub/../../up.dcm"):
        assert isinstance(results[name].error, ArchiveMemberError)
        assert "climbs out" in str(results[name].error)
    assert "absolute path" in str(results["/etc/cron.d/evil"].error)
    assert "absolute path" in str(results["C:/temp/drive.dcm"].error)
    assert not any("MACOSX" in name or "DS_Store" in name or "Thumbs" in name for name in results)
    assert "study/" not in results
    on_disk = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert on_disk == ["study/one.dcm", "study/two.dcm"]


def test_a_zip_bomb_member_is_refused(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("bomb.dcm", "w") as member:
            for _ in range(8):
                member.write(b"\0" * 1024 * 1024)
        archive.writestr("fine.dcm", os.urandom(2048))
    buffer.seek(0)
    results = by_name(extract_zip(buffer, tmp_path))
    assert "ZIP bomb" in str(results["bomb.dcm"].error)
    assert results["fine.dcm"].ok
    assert not (tmp_path / "bomb.dcm").exists()


def test_per_file_and_total_limits(tmp_path):
    archive = make_zip(
        [(f"{index}.dcm", os.urandom(300_000)) for index in range(4)]
        + [("big.dcm", os.urandom(600_000))],
        compression=zipfile.ZIP_STORED,
    )
    limits = ArchiveLimits(max_member_bytes=500_000, max_total_bytes=800_000)
    results = by_name(extract_zip(archive, tmp_path, limits=limits))
    assert results["0.dcm"].ok and results["1.dcm"].ok
    assert "total limit" in str(results["2.dcm"].error)
    assert "total limit" in str(results["3.dcm"].error)
    assert "per-file limit" in str(results["big.dcm"].error)


def test_links_and_duplicate_entries_are_refused(tmp_path):
    link = zipfile.ZipInfo("link.dcm")
    link.external_attr = 0o120777 << 16
    link.comment = b""
    archive = make_zip([link, ("same.dcm", b"1"), ("SAME.dcm", b"2")])
    results = list(extract_zip(archive, tmp_path))
    errors = [str(member.error) for member in results if not member.ok]
    assert any("symbolic link" in error for error in errors)
    assert any("same name" in error for error in errors)
    assert sum(member.ok for member in results) == 1


def test_an_encrypted_entry_is_refused(tmp_path):
    data = bytearray(make_zip([("locked.dcm", b"secret"), ("open.dcm", b"fine")]).getvalue())
    data[6] |= 0x1  # zipfile cannot write encrypted entries: set the flag of the first one
    data[data.index(b"PK\x01\x02") + 8] |= 0x1
    results = by_name(extract_zip(io.BytesIO(bytes(data)), tmp_path))
    assert "encrypted" in str(results["locked.dcm"].error)
    assert results["open.dcm"].ok


class _Cp866Name(zipfile.ZipInfo):
    """Writes its name as a Russian Windows archiver does: cp866, no UTF-8 flag."""

    def _encodeFilenameFlags(self):
        return self.filename.encode("cp866"), self.flag_bits


def test_russian_names_from_windows_zips_are_decoded(tmp_path):
    info = _Cp866Name("снимок.dcm")
    info.comment = b""
    (member,) = extract_zip(make_zip([info]), tmp_path)
    assert member.name == "снимок.dcm" and member.path.name == "снимок.dcm"


def test_a_file_that_is_not_a_zip(tmp_path):
    with pytest.raises(ArchiveError, match="not a ZIP archive"):
        list(extract_zip(io.BytesIO(b"%PDF-1.4 not a zip"), tmp_path))


def test_too_many_members(tmp_path):
    archive = make_zip([(f"{index}.dcm", b"x") for index in range(5)])
    with pytest.raises(ArchiveError, match="lists 5 entries; at most 3"):
        list(extract_zip(archive, tmp_path, limits=ArchiveLimits(max_members=3)))


@pytest.mark.parametrize(
    ("name", "junk"),
    [
        ("__MACOSX/a/b.dcm", True),
        ("a/.DS_Store", True),
        ("a/._IM0001", True),
        ("THUMBS.DB", True),
        ("a/IM0001", False),
        ("DICOMDIR", False),
    ],
)
def test_is_junk(name, junk):
    assert is_junk(name) is junk


def test_safe_relative_path():
    assert str(safe_relative_path("a\\b/./c.dcm")) == "a/b/c.dcm"
    with pytest.raises(ArchiveMemberError, match="control characters"):
        safe_relative_path("a\0b")


def test_a_dicomdir_lists_its_files():
    entries = read_dicomdir(DICOMDIR_TESTS / "DICOMDIR")
    assert len(entries) == 31 and all(entry.ok for entry in entries)
    first = entries[0]
    assert first.path.is_file() and first.record_type == "IMAGE"
    assert first.patient_id and first.study_instance_uid and first.series_instance_uid
    assert pydicom.dcmread(first.path).SOPInstanceUID == first.sop_instance_uid


@pytest.mark.parametrize(
    "name", ["DICOMDIR-bigEnd", "DICOMDIR-implicit", "DICOMDIR-reordered", "DICOMDIR-nooffset"]
)
def test_dicomdir_variants(name):
    entries = read_dicomdir(DICOMDIR_TESTS / name)
    assert len(entries) == 31 and all(entry.ok for entry in entries)


def test_an_empty_dicomdir_lists_nothing():
    assert read_dicomdir(DICOMDIR_TESTS / "DICOMDIR-empty.dcm") == []


def test_a_copied_cd_with_lower_case_names_and_a_missing_file(tmp_path):
    cd = tmp_path / "cd"
    shutil.copytree(DICOMDIR_TESTS / "TINY_ALPHA", cd)
    series = cd / "PT000000" / "ST000000" / "SE000000"
    (series / "IM000001").rename(series / "im000001")
    (series / "IM000002").unlink()
    (cd / "PT000000").rename(cd / "pt000000")

    entries = {entry.file_id: entry for entry in read_dicomdir(find_dicomdir(cd))}
    assert len(entries) == 50
    assert entries["PT000000/ST000000/SE000000/IM000001"].path.name == "im000001"
    missing = entries["PT000000/ST000000/SE000000/IM000002"]
    assert isinstance(missing.error, DicomdirError) and "not on the disc" in str(missing.error)
    assert sum(entry.ok for entry in entries.values()) == 49


def test_a_dicomdir_record_pointing_outside_is_refused(tmp_path):
    cd = tmp_path / "cd"
    shutil.copytree(DICOMDIR_TESTS / "TINY_ALPHA", cd)
    dataset = pydicom.dcmread(cd / "DICOMDIR")
    record = next(r for r in dataset.DirectoryRecordSequence if "ReferencedFileID" in r)
    record.ReferencedFileID = ["..", "..", "..", "ETC", "PASSWD0000000000000000"]  # same length
    dataset.save_as(cd / "DICOMDIR")
    entries = read_dicomdir(cd / "DICOMDIR")
    refused = [entry for entry in entries if not entry.ok]
    assert len(refused) == 1 and "climbs out" in str(refused[0].error)
    assert len(entries) == 50


def test_a_file_that_is_no_dicomdir(tmp_path):
    with pytest.raises(DicomdirError, match="not a DICOMDIR"):
        read_dicomdir(TEST_FILES / "CT_small.dcm")


def test_a_zipped_cd_extracts_and_its_dicomdir_resolves(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in (DICOMDIR_TESTS / "TINY_ALPHA").rglob("*"):
            if path.is_file():
                archive.write(path, "DISC/" + str(path.relative_to(DICOMDIR_TESTS / "TINY_ALPHA")))
    buffer.seek(0)
    members = list(extract_zip(buffer, tmp_path))
    assert all(member.ok for member in members)
    dicomdir = next(member for member in members if member.is_dicomdir)
    entries = read_dicomdir(dicomdir.path)
    assert len(entries) == 50 and all(entry.ok for entry in entries)
