"""ZIP archives and CD folders (DICOMDIR): what is inside, extracted safely, file by file.

:func:`extract_zip` streams each member to disk in chunks (a member is never held in memory)
and yields one :class:`ArchiveMember` per file: extracted, or refused with the reason. A bad
member (a path-traversal name, a ZIP bomb, an encrypted entry) never stops the others.
Directories and operating-system junk (``__MACOSX/``, ``.DS_Store``, ``Thumbs.db``) are skipped.

:func:`read_dicomdir` lists the files a DICOMDIR references, resolved under its folder (case-
insensitively: CDs copied on Linux often turn ``IM000001`` into ``im000001``).
"""

from __future__ import annotations

import os
import re
import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from studies.dicom.errors import ArchiveError, ArchiveMemberError, DicomdirError, DicomError

CHUNK = 1024 * 1024
_JUNK_NAMES = {".ds_store", "thumbs.db", "desktop.ini", ".localized", "ehthumbs.db"}
_JUNK_FOLDERS = {"__macosx", ".trashes", ".spotlight-v100", ".fseventsd", "$recycle.bin"}
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class ArchiveLimits:
    """Caps that keep an upload from filling the disk.

    ``max_ratio`` is uncompressed/compressed size per member, checked on the header and again
    on the bytes actually written; members under ``ratio_floor`` bytes are exempt (tiny text
    files compress well and harm nobody).
    """

    max_total_bytes: int = 8 * 1024**3
    max_member_bytes: int = 2 * 1024**3
    max_ratio: float = 100.0
    ratio_floor: int = 1024 * 1024
    max_members: int = 100_000


@dataclass(frozen=True)
class ArchiveMember:
    """One file of an archive: extracted to ``path``, or refused with ``error``."""

    name: str  # as shown to the user (the archive's name, decoded)
    path: Path | None
    size: int
    error: DicomError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def is_dicomdir(self) -> bool:
        """The CD index: read it with :func:`read_dicomdir`, do not import it as an instance."""
        return PurePosixPath(self.name).name.upper() == "DICOMDIR"


@dataclass(frozen=True)
class DicomdirEntry:
    """A file referenced by a DICOMDIR record, with the record's identifiers."""

    file_id: str  # as recorded, "/"-separated
    path: Path | None  # resolved under the DICOMDIR's folder; None when refused
    record_type: str = ""
    sop_instance_uid: str = ""
    sop_class_uid: str = ""
    transfer_syntax_uid: str = ""
    patient_id: str = ""
    study_instance_uid: str = ""
    series_instance_uid: str = ""
    error: DicomError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def is_junk(name: str) -> bool:
    """True for operating-system clutter (``__MACOSX/…``, ``.DS_Store``, ``._x``, ``Thumbs.db``)."""
    parts = [part for part in name.replace("\\", "/").split("/") if part]
    if not parts:
        return True
    if any(part.lower() in _JUNK_FOLDERS for part in parts[:-1]):
        return True
    last = parts[-1]
    return last.lower() in _JUNK_NAMES or last.startswith("._")


def safe_relative_path(name: str) -> PurePosixPath:
    """The relative path an archive name may be extracted to, or an error.

    Backslashes count as separators (archives made on Windows use them).

    Raises
    ------
    ArchiveMemberError
        An absolute name, a drive letter, ``..`` anywhere, or a control character.
    """
    if any(ord(character) < 32 for character in name):
        raise ArchiveMemberError(f"{name!r}: the name holds control characters; refused.")
    text = name.replace("\\", "/")
    if text.startswith("/") or _DRIVE.match(text):
        raise ArchiveMemberError(f"{name!r}: an absolute path in an archive is refused.")
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ArchiveMemberError(
            f"{name!r}: the name climbs out of the archive's folder ('..'); refused."
        )
    if not parts:
        raise ArchiveMemberError(f"{name!r}: an empty name; refused.")
    return PurePosixPath(*parts)


def extract_zip(
    archive: str | os.PathLike[str] | BinaryIO,
    destination: str | os.PathLike[str],
    *,
    limits: ArchiveLimits | None = None,
) -> Iterator[ArchiveMember]:
    """Extract a ZIP's files one by one under ``destination``, yielding a result per file.

    Parameters
    ----------
    archive : path or seekable binary file
        The ZIP (an uploaded temporary file, never read whole into memory).
    destination : path
        An existing, empty folder; files keep their relative paths under it, so a CD's
        DICOMDIR still finds its files.
    limits : ArchiveLimits, optional
        Size caps (the defaults suit a CD or a few thousand CT slices).

    Yields
    ------
    ArchiveMember
        Extracted (``path`` set) or refused (``error`` set, nothing left on disk).

    Raises
    ------
    ArchiveError
        The file is not a ZIP, its directory is damaged, or it lists too many members
        (raised when iteration starts, before anything is written).
    """
    limits = limits or ArchiveLimits()
    root = Path(destination).resolve()
    try:
        zip_file = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise ArchiveError(f"The file is not a ZIP archive or it is damaged ({exc}).") from exc
    with zip_file:
        members = zip_file.infolist()
        if len(members) > limits.max_members:
            raise ArchiveError(
                f"The archive lists {len(members)} entries; at most {limits.max_members} are "
                "accepted. Split it into smaller archives."
            )
        written = 0
        seen: set[str] = set()
        for info in members:
            name = _display_name(info)
            if info.is_dir() or is_junk(name):
                continue
            try:
                target = _target(info, name, root, seen)
                remaining = limits.max_total_bytes - written
                size = _extract(zip_file, info, name, target, limits, remaining)
            except ArchiveMemberError as exc:
                yield ArchiveMember(name=name, path=None, size=info.file_size, error=exc)
                continue
            written += size
            yield ArchiveMember(name=name, path=target, size=size)


def find_dicomdir(folder: str | os.PathLike[str]) -> Path | None:
    """The DICOMDIR at the top of a folder (any letter case), or None."""
    for entry in Path(folder).iterdir():
        if entry.name.upper() == "DICOMDIR" and entry.is_file():
            return entry
    return None


def read_dicomdir(path: str | os.PathLike[str]) -> list[DicomdirEntry]:
    """List the files a DICOMDIR references, each resolved under the DICOMDIR's folder.

    Parameters
    ----------
    path : path
        The DICOMDIR file.

    Returns
    -------
    list of DicomdirEntry
        One per referenced file; a reference outside the folder, or to a missing file, is an
        entry with ``error`` set, while the other entries come through.

    Raises
    ------
    DicomdirError
        The file is no readable DICOMDIR.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    try:
        dataset = pydicom.dcmread(path, force=True)
    except (InvalidDicomError, OSError, EOFError, ValueError) as exc:
        raise DicomdirError(f"{path.name}: the DICOMDIR cannot be read ({exc}).") from exc
    if "DirectoryRecordSequence" not in dataset:
        raise DicomdirError(f"{path.name}: not a DICOMDIR (no directory records).")
    records = _records_in_order(dataset)
    try:  # the record tree (by offsets) knows each file's patient, study and series for sure
        context = _context_by_hierarchy(dataset)
    except Exception:  # broken offsets are common on burnt CDs: file order then tells
        context = {}
    for values in records:
        values.update(context.get(values["sop_instance_uid"], {}))
    root = path.parent.resolve()
    return [_entry(root, values) for values in records]


# --- ZIP internals ----------------------------------------------------------------------------


def _display_name(info: zipfile.ZipInfo) -> str:
    name = info.filename
    if not info.flag_bits & 0x800 and not name.isascii():
        try:  # zipfile decodes names without the UTF-8 flag as cp437; Russian Windows wrote cp866
            return name.encode("cp437").decode("cp866")
        except (UnicodeEncodeError, UnicodeDecodeError):
            return name
    return name


def _target(info: zipfile.ZipInfo, name: str, root: Path, seen: set[str]) -> Path:
    relative = safe_relative_path(name)
    if stat.S_ISLNK(info.external_attr >> 16):
        raise ArchiveMemberError(f"{name!r}: a symbolic link; refused.")
    if info.flag_bits & 0x1:
        raise ArchiveMemberError(f"{name!r}: the entry is encrypted; unpack it yourself first.")
    key = str(relative).lower()
    if key in seen:
        raise ArchiveMemberError(f"{name!r}: a second entry with the same name; refused.")
    seen.add(key)
    target = root.joinpath(*relative.parts)
    if not target.resolve().is_relative_to(root):  # a folder replaced by a link, say
        raise ArchiveMemberError(f"{name!r}: resolves outside the extraction folder; refused.")
    return target


def _extract(zip_file, info, name: str, target: Path, limits: ArchiveLimits, remaining: int):
    cap = min(limits.max_member_bytes, remaining)
    if info.file_size > limits.max_member_bytes:
        raise ArchiveMemberError(
            f"{name!r}: {_mb(info.file_size)} unpacked exceeds the per-file limit of "
            f"{_mb(limits.max_member_bytes)}."
        )
    if info.file_size > remaining:
        raise ArchiveMemberError(
            f"{name!r}: the archive unpacks to more than the total limit of "
            f"{_mb(limits.max_total_bytes)}; this file and the ones after it are refused."
        )
    ratio_cap = max(limits.ratio_floor, int(info.compress_size * limits.max_ratio))
    if info.file_size > ratio_cap:
        raise _bomb(name, limits)
    size = 0
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with zip_file.open(info) as source, open(target, "xb") as sink:
            while chunk := source.read(CHUNK):
                size += len(chunk)
                if size > ratio_cap:  # the header lied about the size
                    raise _bomb(name, limits)
                if size > cap:
                    raise ArchiveMemberError(
                        f"{name!r}: unpacks to more than {_mb(cap)}, beyond the limits."
                    )
                sink.write(chunk)
    except ArchiveMemberError:
        target.unlink(missing_ok=True)
        raise
    except FileExistsError as exc:
        raise ArchiveMemberError(f"{name!r}: a file of that name is already there.") from exc
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
        target.unlink(missing_ok=True)
        raise ArchiveMemberError(f"{name!r}: cannot be unpacked ({exc}).") from exc
    return size


def _bomb(name: str, limits: ArchiveLimits) -> ArchiveMemberError:
    return ArchiveMemberError(
        f"{name!r}: compressed more than {limits.max_ratio:g} times (a ZIP bomb?); refused."
    )


def _mb(size: int) -> str:
    return f"{size / 1024**2:.0f} MB"


# --- DICOMDIR internals -----------------------------------------------------------------------


def _context_by_hierarchy(dataset) -> dict[str, dict]:
    from pydicom.fileset import FileSet

    context = {}
    for instance in FileSet(dataset):

        def value(keyword, instance=instance):
            return str(instance[keyword].value or "") if keyword in instance else ""

        context[instance.SOPInstanceUID] = {
            "patient_id": value("PatientID"),
            "study_instance_uid": value("StudyInstanceUID"),
            "series_instance_uid": value("SeriesInstanceUID"),
        }
    return context


def _records_in_order(dataset) -> list[dict]:
    """The flat record list in file order: patient, study, series, then their files."""
    result, context = [], {}
    levels = {
        "PATIENT": "patient_id",
        "STUDY": "study_instance_uid",
        "SERIES": "series_instance_uid",
    }
    keywords = {"PATIENT": "PatientID", "STUDY": "StudyInstanceUID", "SERIES": "SeriesInstanceUID"}
    for record in dataset.DirectoryRecordSequence:
        record_type = str(record.get("DirectoryRecordType", "")).strip().upper()
        if record_type in levels:
            if record_type == "PATIENT":
                context = {}
            context[levels[record_type]] = str(record.get(keywords[record_type]) or "")
        if "ReferencedFileID" not in record:
            continue
        file_id = record.ReferencedFileID
        parts = [file_id] if isinstance(file_id, str) else list(file_id or [])
        result.append(
            {
                **context,
                "file_id": "/".join(str(part).strip() for part in parts),
                "record_type": record_type,
                "sop_instance_uid": str(record.get("ReferencedSOPInstanceUIDInFile") or ""),
                "sop_class_uid": str(record.get("ReferencedSOPClassUIDInFile") or ""),
                "transfer_syntax_uid": str(record.get("ReferencedTransferSyntaxUIDInFile") or ""),
            }
        )
    return result


def _entry(root: Path, values: dict) -> DicomdirEntry:
    file_id = values["file_id"]
    try:
        relative = safe_relative_path(file_id)
    except ArchiveMemberError as exc:
        return DicomdirEntry(path=None, error=DicomdirError(f"DICOMDIR record {exc}"), **values)
    path = _find_case_insensitive(root, relative.parts)
    if path is None:
        return DicomdirEntry(
            path=None,
            error=DicomdirError(
                f"The DICOMDIR lists {file_id!r}, but the file is not on the disc or in the "
                "folder. Copy the whole disc."
            ),
            **values,
        )
    if not path.resolve().is_relative_to(root):
        return DicomdirEntry(
            path=None,
            error=DicomdirError(f"The DICOMDIR record {file_id!r} points outside its folder."),
            **values,
        )
    return DicomdirEntry(path=path, **values)


def _find_case_insensitive(root: Path, parts: tuple[str, ...]) -> Path | None:
    current = root
    for part in parts:
        candidate = current / part
        if not candidate.exists():
            try:
                matches = [
                    entry for entry in current.iterdir() if entry.name.upper() == part.upper()
                ]
            except OSError:
                return None
            if not matches:
                return None
            candidate = matches[0]
        current = candidate
    return current if current.is_file() else None
