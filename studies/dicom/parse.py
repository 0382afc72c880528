"""Read what ingest needs from a DICOM file, safely and without loading its pixels.

:func:`parse_instance` takes a path or the file's bytes and returns an :class:`InstanceHeader`,
a plain frozen dataclass. Large values (pixel data, encapsulated documents) are *deferred*:
pydicom skips over them, so parsing a 1 GB multi-frame costs the same memory as parsing its
header. Every refusal is a :class:`~studies.dicom.errors.DicomError` with a message for the user.

What is checked, beyond pydicom's own reading:

* the file is DICOM at all (``DICM`` at offset 128, or a bare dataset without the preamble
  starting with a group 0002/0008 tag), with a hint of what it is otherwise (PDF, PNG, ZIP…);
* the file is complete: pydicom stops silently at the end of a cut file, so the read position
  must reach the end of the file, and native pixel data must be as long as the header needs;
* the four UIDs every stored instance needs are present.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from studies.dicom.datetimes import parse_date, to_aware
from studies.dicom.errors import (
    DicomCorruptError,
    DicomError,
    DicomValueError,
    MissingUIDError,
    NotAnInstanceError,
    NotDicomError,
)

Source = str | os.PathLike[str] | bytes | bytearray | memoryview

#: Values longer than this are skipped by position instead of read (pixels, PDFs, LUTs stay).
DEFER_SIZE = 64 * 1024

PIXEL_TAGS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
COLOR_PALETTE_STORAGE = "1.2.840.10008.5.1.4.39.1"

#: SOP class prefixes stored as instances and listed as documents, never rendered.
DOCUMENT_SOP_PREFIXES = {
    "1.2.840.10008.5.1.4.1.1.88.": "structured_report",  # SR, key objects, dose reports
    "1.2.840.10008.5.1.4.1.1.104.": "encapsulated_document",  # PDF, CDA, STL…
    "1.2.840.10008.5.1.4.1.1.9.": "waveform",  # ECG, audio, haemodynamics
    "1.2.840.10008.5.1.4.1.1.11.": "presentation_state",
}

_MAGIC = (
    (b"%PDF", "a PDF document"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"GIF8", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"BM", "a BMP image"),
    (b"{\\rtf", "an RTF document"),
    (b"\xd0\xcf\x11\xe0", "a Microsoft Office document"),
)
_BARE_DATASET_STARTS = (b"\x02\x00", b"\x08\x00", b"\x00\x02", b"\x00\x08")
_DT_OFFSET = re.compile(r"([+-]\d{4})$")


@dataclass(frozen=True)
class PatientHeader:
    """The patient as the file names it, before any matching against the registry.

    ``name`` is the PN value decoded by pydicom with ``specific_character_set``
    (``Family^Given^Middle^Prefix^Suffix``); ``name_raw`` keeps the undecoded bytes so a
    matcher can retry another character set or transliterate.
    """

    patient_id: str = ""
    issuer: str = ""
    name: str = ""
    name_raw: bytes = b""
    specific_character_set: tuple[str, ...] = ()
    birth_date: dt.date | None = None
    sex: str = ""

    @property
    def family_name(self) -> str:
        return _pn_component(self.name, 0)

    @property
    def given_name(self) -> str:
        return _pn_component(self.name, 1)

    @property
    def middle_name(self) -> str:
        return _pn_component(self.name, 2)


@dataclass(frozen=True)
class InstanceHeader:
    """Everything ingest needs from one DICOM instance, as plain Python values.

    Strings are stripped and empty when absent; numbers are ``None`` when absent. Date-times
    are aware (see :mod:`studies.dicom.datetimes`). ``warnings`` lists values that were
    unreadable and ignored (a malformed birth date must not refuse the whole file).
    """

    patient: PatientHeader
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    sop_class_name: str
    is_image: bool
    document_kind: str  # "" for images, else e.g. "structured_report", "encapsulated_document"
    transfer_syntax_uid: str
    transfer_syntax_name: str
    has_file_meta: bool
    modality: str = ""
    body_part: str = ""
    view_position: str = ""
    laterality: str = ""
    study_description: str = ""
    series_description: str = ""
    protocol_name: str = ""
    study_datetime: dt.datetime | None = None
    acquisition_datetime: dt.datetime | None = None
    institution: str = ""
    referring_physician: str = ""
    accession_number: str = ""
    study_id: str = ""
    series_number: int | None = None
    instance_number: int | None = None
    mime_type: str = ""  # of an encapsulated document
    rows: int | None = None
    columns: int | None = None
    frames: int = 0  # 0 for non-images
    samples_per_pixel: int | None = None
    bits_allocated: int | None = None
    bits_stored: int | None = None
    pixel_representation: int | None = None
    photometric_interpretation: str = ""
    pixel_spacing: tuple[float, float] | None = None  # (row, column) in mm
    pixel_spacing_source: str = ""  # "PixelSpacing" or "ImagerPixelSpacing"
    window_center: float | None = None
    window_width: float | None = None
    warnings: tuple[str, ...] = field(default=())


def sniff_format(head: bytes) -> str:
    """Tell what a file is from its first 132 bytes.

    Parameters
    ----------
    head : bytes
        The start of the file (at least 132 bytes when the file is that long).

    Returns
    -------
    str
        ``"dicom"`` (Part 10 with preamble), ``"dicom-bare"`` (a dataset without preamble),
        ``"png"``, ``"jpeg"``, ``"zip"``, ``"pdf"``, ``"empty"`` or ``"unknown"``.
    """
    if not head:
        return "empty"
    if head[128:132] == b"DICM":
        return "dicom"
    for magic, kind in (
        (b"\x89PNG\r\n\x1a\n", "png"),
        (b"\xff\xd8\xff", "jpeg"),
        (b"PK\x03\x04", "zip"),
        (b"%PDF", "pdf"),
    ):
        if head.startswith(magic):
            return kind
    if head[:2] in _BARE_DATASET_STARTS and len(head) >= 8:
        return "dicom-bare"
    return "unknown"


def describe_non_dicom(head: bytes) -> str:
    """A user-facing guess of what a non-DICOM file is (``"a PDF document"``)."""
    for magic, description in _MAGIC:
        if head.startswith(magic):
            return description
    return "not a DICOM file"


def read_dataset(source: Source | BinaryIO, *, stop_before_pixels: bool = False):
    """Read a DICOM file into a pydicom ``Dataset``, large values deferred, checked complete.

    Parameters
    ----------
    source : path, bytes or binary file object
        The file. A file object must be seekable; it is read from its current position.
    stop_before_pixels : bool
        Stop at the pixel data (no completeness check then: use it for a quick look only).

    Returns
    -------
    pydicom.dataset.FileDataset
        With ``PixelData`` (and any value over :data:`DEFER_SIZE`) deferred; read pixels with
        :mod:`studies.dicom.render`, which re-reads the source.

    Raises
    ------
    NotDicomError
        The file is empty or not DICOM; the message says what it looks like instead.
    DicomCorruptError
        The file is cut off or damaged.
    """
    with _open(source) as (fileobj, size):
        start = fileobj.tell()
        head = fileobj.read(132)
        fileobj.seek(start)
        kind = sniff_format(head)
        if kind == "empty":
            raise NotDicomError("The file is empty.")
        if kind not in ("dicom", "dicom-bare"):
            what = describe_non_dicom(head)
            raise NotDicomError(
                f"The file is not DICOM: it looks like {what}."
                if what != "not a DICOM file"
                else "The file is not DICOM (no 'DICM' marker at byte 128 and no DICOM "
                "dataset at its start)."
            )
        dataset = _dcmread(fileobj, force=kind == "dicom-bare", stop=stop_before_pixels)
        if not stop_before_pixels:
            _check_read_to_the_end(dataset, fileobj, start + size)
        return dataset


def parse_instance(source: Source | BinaryIO, *, default_zone: str) -> InstanceHeader:
    """Parse a DICOM file's header into an :class:`InstanceHeader` without loading pixels.

    Parameters
    ----------
    source : path, bytes or binary file object
        The file.
    default_zone : str
        The hospital's time zone (``settings.TIME_ZONE``) for DICOM's zone-less date-times.

    Returns
    -------
    InstanceHeader

    Raises
    ------
    NotDicomError, DicomCorruptError
        See :func:`read_dataset`.
    MissingUIDError
        Study, series or SOP instance UID, or the SOP class, is missing.
    NotAnInstanceError
        The file is a DICOMDIR or another DICOM file that is no storable instance.
    """
    dataset = _fast_dataset(source)
    if dataset is None:
        dataset = read_dataset(source)
    return header_from_dataset(dataset, default_zone=default_zone)


def header_from_dataset(dataset, *, default_zone: str) -> InstanceHeader:
    """Build an :class:`InstanceHeader` from an already read pydicom ``Dataset``.

    Raises
    ------
    MissingUIDError, NotAnInstanceError, DicomCorruptError
        As :func:`parse_instance`.
    """
    try:
        return _header(dataset, default_zone)
    except DicomError:
        raise
    except Exception as exc:  # a malformed value pydicom only trips over when converting
        raise DicomCorruptError(
            f"The DICOM header is damaged and cannot be read ({type(exc).__name__}: {exc})."
        ) from exc


def format_person_name(value: str) -> str:
    """``"Ivanov^Ivan^Ivanovich"`` → ``"Ivanov Ivan Ivanovich"`` (all name groups, readable)."""
    alphabetic = str(value or "").split("=")[0]
    return " ".join(part.strip() for part in alphabetic.split("^") if part.strip())


# --- reading ---------------------------------------------------------------------------------


class _open:
    """Context manager: (binary file, size from its current position) for any source."""

    def __init__(self, source):
        self.source = source
        self.owned = None

    def __enter__(self):
        source = self.source
        if isinstance(source, (bytes, bytearray, memoryview)):
            fileobj = io.BytesIO(bytes(source))
        elif isinstance(source, (str, os.PathLike)):
            try:
                fileobj = self.owned = open(source, "rb")  # closed in __exit__
            except IsADirectoryError:
                raise NotDicomError(f"{Path(source).name!r} is a folder, not a file.") from None
        else:
            fileobj = source
        self.fileobj, self.position = fileobj, fileobj.tell()
        size = fileobj.seek(0, io.SEEK_END) - self.position
        fileobj.seek(self.position)
        return fileobj, size

    def __exit__(self, *exc):
        if self.owned is not None:
            self.owned.close()
        else:  # a caller's file object is left where it was found
            self.fileobj.seek(self.position)


def _dcmread(fileobj: BinaryIO, *, force: bool, stop: bool):
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(fileobj, force=force, defer_size=DEFER_SIZE, stop_before_pixels=stop)
    except InvalidDicomError as exc:
        raise NotDicomError(f"The file is not valid DICOM: {exc}") from exc
    except Exception as exc:  # pydicom raises many kinds on damaged bytes: all mean "damaged"
        raise DicomCorruptError(
            f"The DICOM file is damaged or truncated and cannot be read ({exc})."
        ) from exc


def _check_read_to_the_end(dataset, fileobj, end: int) -> None:
    # pydicom stops quietly at a cut-off element: an undefined-length value (encapsulated
    # pixels, sequences) rewinds before it, a deferred value is seeked past the end, and a
    # cut inside an element's header leaves a few bytes unread (zero padding is tolerated).
    position = fileobj.tell()
    leftover = fileobj.read(65) if position < end else b""
    if position > end or len(leftover) > 64 or leftover.strip(b"\0"):
        raise DicomCorruptError(
            f"The DICOM file is truncated or damaged: reading stopped at byte {position} of "
            f"{end}. Copy the file again from its source."
        )
    if len(dataset):
        last = dataset.get_item(list(dataset.keys())[-1], keep_deferred=True)  # file order
        value = getattr(last, "value", None)
        length = getattr(last, "length", None)
        if isinstance(value, bytes) and length not in (None, 0xFFFFFFFF) and len(value) < length:
            raise DicomCorruptError(
                "The DICOM file is truncated: its last element is shorter than declared. "
                "Copy the file again from its source."
            )
    _check_pixel_data_length(dataset)


def _check_pixel_data_length(dataset) -> None:
    if "PixelData" not in dataset:
        return
    raw = dataset.get_item(0x7FE00010, keep_deferred=True)
    length = getattr(raw, "length", None)
    value = getattr(raw, "value", None)
    if isinstance(value, bytes):
        length = len(value)  # read, not deferred: what the file really holds
    syntax = getattr(getattr(dataset, "file_meta", None), "TransferSyntaxUID", None)
    if length in (None, 0xFFFFFFFF) or (syntax is not None and syntax.is_compressed):
        return
    try:
        from pydicom.pixels.utils import get_expected_length

        expected = int(get_expected_length(dataset, unit="bytes"))
    except Exception:  # attributes missing or odd: the renderer reports it if asked for pixels
        return
    if length < expected:
        raise DicomCorruptError(
            f"The DICOM file is truncated: its pixel data holds {length} bytes, but "
            f"{dataset.get('Rows')}×{dataset.get('Columns')} pixels need {expected}. "
            "Copy the file again from its source."
        )


# --- the fast path ---------------------------------------------------------------------------
#
# Most files ingest sees are plain: explicit or implicit VR little endian, native pixels, ASCII
# values. For those, ``native.scan`` walks the elements in a fraction of pydicom's time and the
# few values ``_header`` reads are converted here exactly as pydicom converts them. Whatever is
# not provably read the same way (another syntax, a damaged or odd file, a value that is not
# plain ASCII or not in its VR's strict form, another character set) takes pydicom's path, as
# every file did before; ``test_dicom_fast_parse`` compares both on every pydicom test file and
# on generated variations.

#: keyword -> (tag, dictionary VR) of the data set's elements ``_header`` reads.
_FAST_ELEMENTS = {
    "SpecificCharacterSet": (0x00080005, b"CS"),
    "SOPClassUID": (0x00080016, b"UI"),
    "SOPInstanceUID": (0x00080018, b"UI"),
    "StudyDate": (0x00080020, b"DA"),
    "AcquisitionDate": (0x00080022, b"DA"),
    "AcquisitionDateTime": (0x0008002A, b"DT"),
    "StudyTime": (0x00080030, b"TM"),
    "AcquisitionTime": (0x00080032, b"TM"),
    "AccessionNumber": (0x00080050, b"SH"),
    "Modality": (0x00080060, b"CS"),
    "InstitutionName": (0x00080080, b"LO"),
    "ReferringPhysicianName": (0x00080090, b"PN"),
    "TimezoneOffsetFromUTC": (0x00080201, b"SH"),
    "StudyDescription": (0x00081030, b"LO"),
    "SeriesDescription": (0x0008103E, b"LO"),
    "PatientName": (0x00100010, b"PN"),
    "PatientID": (0x00100020, b"LO"),
    "IssuerOfPatientID": (0x00100021, b"LO"),
    "PatientBirthDate": (0x00100030, b"DA"),
    "PatientSex": (0x00100040, b"CS"),
    "BodyPartExamined": (0x00180015, b"CS"),
    "ProtocolName": (0x00181030, b"LO"),
    "ImagerPixelSpacing": (0x00181164, b"DS"),
    "ViewPosition": (0x00185101, b"CS"),
    "StudyInstanceUID": (0x0020000D, b"UI"),
    "SeriesInstanceUID": (0x0020000E, b"UI"),
    "StudyID": (0x00200010, b"SH"),
    "SeriesNumber": (0x00200011, b"IS"),
    "InstanceNumber": (0x00200013, b"IS"),
    "Laterality": (0x00200060, b"CS"),
    "ImageLaterality": (0x00200062, b"CS"),
    "SamplesPerPixel": (0x00280002, b"US"),
    "PhotometricInterpretation": (0x00280004, b"CS"),
    "NumberOfFrames": (0x00280008, b"IS"),
    "Rows": (0x00280010, b"US"),
    "Columns": (0x00280011, b"US"),
    "PixelSpacing": (0x00280030, b"DS"),
    "BitsAllocated": (0x00280100, b"US"),
    "BitsStored": (0x00280101, b"US"),
    "PixelRepresentation": (0x00280103, b"US"),
    "WindowCenter": (0x00281050, b"DS"),
    "WindowWidth": (0x00281051, b"DS"),
    "MIMETypeOfEncapsulatedDocument": (0x00420012, b"LO"),
}
_FAST_BY_TAG = {tag: (keyword, vr) for keyword, (tag, vr) in _FAST_ELEMENTS.items()}
_FAST_META = {
    0x00020002: "MediaStorageSOPClassUID",
    0x00020003: "MediaStorageSOPInstanceUID",
    0x00020010: "TransferSyntaxUID",
}
#: Single character sets pydicom decodes with one Python codec and no code extensions (the
#: codec: ``pydicom.charset.python_encoding``); others (several values, ISO 2022, JIS) take
#: pydicom's path.
_CHARSETS = frozenset(
    {
        "ISO_IR 6",
        "ISO_IR 100",
        "ISO_IR 101",
        "ISO_IR 109",
        "ISO_IR 110",
        "ISO_IR 126",
        "ISO_IR 127",
        "ISO_IR 138",
        "ISO_IR 144",
        "ISO_IR 148",
        "ISO_IR 166",
        "ISO_IR 192",
        "GB18030",
        "GBK",
    }
)
_IS = re.compile(r" *[+-]?[0-9]{1,12}")
_DS = re.compile(r" *[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})? *")


class _NotFast(Exception):
    """A value pydicom might read differently: the file takes pydicom's path."""


class _PersonName(str):
    """A PN value as ``_header`` reads pydicom's ``PersonName``: its text and raw bytes."""

    original_string: bytes


class _FastDataset:
    """The elements ``_header`` reads, as pydicom's ``Dataset.get`` gives them; ``in`` by
    keyword for any top-level element."""

    def __init__(self, values: dict, tags, file_meta=None):
        self._values, self._tags, self.file_meta = values, tags, file_meta

    def get(self, keyword: str, default=None):
        return self._values.get(keyword, default)

    def __contains__(self, keyword: str) -> bool:
        from pydicom.datadict import tag_for_keyword

        return tag_for_keyword(keyword) in self._tags

    def __bool__(self) -> bool:
        return True


def _fast_dataset(source) -> _FastDataset | None:
    """The file's header read by ``native.scan`` where that is exactly pydicom's reading,
    else ``None``."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _fast_from_buffer(source)
    if isinstance(source, (str, os.PathLike)):
        import mmap

        try:
            with open(source, "rb") as handle:
                if os.fstat(handle.fileno()).st_size < 144:
                    return None
                with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                    return _fast_from_buffer(mapped)
        except (OSError, ValueError):
            return None
    return None


def _fast_from_buffer(buffer) -> _FastDataset | None:
    from studies.dicom import native

    scanned = native.scan(buffer, _FAST_BY_TAG)
    if scanned is None:
        return None
    try:
        codec = _fast_codec(scanned.values.get(0x00080005))
        values = {}
        for tag, (vr, raw) in scanned.values.items():
            keyword, expected = _FAST_BY_TAG[tag]
            if vr is not None and vr != expected:
                raise _NotFast  # pydicom reads the file's VR (or the dictionary's for UN)
            if len(raw) > DEFER_SIZE:
                raise _NotFast  # pydicom defers it
            values[keyword] = _fast_value(expected, raw, codec)
        meta = {}
        for tag, keyword in _FAST_META.items():
            if tag in scanned.meta:
                meta[keyword] = _fast_value(b"UI", scanned.meta[tag], "")
        if not _fast_pixels_complete(values, scanned.pixel_length):
            raise _NotFast  # pydicom's path says what is missing
    except _NotFast:
        return None
    meta_tags = {tag for tag in _FAST_META if tag in scanned.meta}
    return _FastDataset(values, scanned.tags, _FastDataset(meta, meta_tags))


def _fast_codec(element) -> str:
    """The Python codec pydicom decodes SH, LO and PN values with (one character set of
    :data:`_CHARSETS`, or none: pydicom's default)."""
    from pydicom.charset import default_encoding, python_encoding

    if element is None:
        return default_encoding
    vr, raw = element
    charset = _fast_value(b"CS", raw, default_encoding) if vr in (None, b"CS") else None
    if charset == "":
        return default_encoding
    if charset not in _CHARSETS:
        raise _NotFast  # several, ISO 2022 code extensions, JIS, unknown or misspelt
    return python_encoding[charset]


def _fast_value(vr: bytes, raw: bytes, codec: str):
    """``raw`` converted as pydicom converts a value of this VR (pydicom 3, default config);
    SH, LO and PN values decoded with ``codec``."""
    if vr == b"US":
        if not raw:
            return None
        if len(raw) != 2:
            raise _NotFast  # several values: pydicom's MultiValue
        return raw[0] | raw[1] << 8
    if vr in (b"LO", b"SH", b"PN"):
        if b"\x1b" in raw:
            raise _NotFast  # code extensions
        try:
            text = raw.decode(codec)  # pydicom decodes strictly first
        except UnicodeError:
            raise _NotFast from None  # pydicom replaces what does not decode, with a warning
    elif raw.isascii():
        text = raw.decode("ascii")
    else:
        raise _NotFast
    if vr in (b"CS", b"DA", b"TM", b"DT"):
        return text.rstrip(" \x00")  # several values: ``_text`` joins them back the same
    if vr in (b"LO", b"SH"):
        parts = [part.rstrip("\x00 ") for part in text.split("\\")]
        return parts[0] if len(parts) == 1 else parts
    if vr == b"UI":
        text = text.rstrip("\x00 ")
        if "\\" in text:
            raise _NotFast
        return text
    if vr == b"PN":
        text = raw.rstrip(b"\x00 ").decode(codec)
        if "\\" in text or "=" in text or b"\\" in raw or b"=" in raw:
            raise _NotFast  # several values, or ideographic/phonetic groups
        name = _PersonName(text)
        try:
            name.original_string = text.encode(codec)  # as PersonName.encode() sets it
        except UnicodeError:
            raise _NotFast from None
        return name
    if vr in (b"IS", b"DS"):
        if not raw:
            return None
        text = text.rstrip(" \x00")
        if not text:
            return text
        parts = text.split("\\")
        if vr == b"IS":
            if len(parts) != 1 or not _IS.fullmatch(text):
                raise _NotFast
            return int(text)
        if not all(_DS.fullmatch(part) for part in parts):
            raise _NotFast
        numbers = [float(part) for part in parts]
        if not all(math.isfinite(number) for number in numbers):
            raise _NotFast
        return numbers[0] if len(numbers) == 1 else numbers
    raise _NotFast


def _fast_pixels_complete(values: dict, length: int | None) -> bool:
    """``_check_pixel_data_length`` on the fast path's values: False where it would refuse."""
    if length is None:
        return True
    try:
        rows, columns = values["Rows"], values["Columns"]
        samples, allocated = values["SamplesPerPixel"], values["BitsAllocated"]
        photometric = values["PhotometricInterpretation"]
        expected = rows * columns * samples * (values.get("NumberOfFrames", 1) or 1)
    except (KeyError, TypeError):
        return True  # pydicom cannot tell either
    if allocated is None:
        return True
    if allocated == 1:
        expected = expected // 8 + (expected % 8 > 0)
    else:
        expected *= allocated // 8
    if photometric == "YBR_FULL_422":
        expected = expected // 3 * 2
    return length >= expected


# --- the header --------------------------------------------------------------------------------


def _header(dataset, default_zone: str) -> InstanceHeader:
    from pydicom.uid import UID

    meta = getattr(dataset, "file_meta", None)
    has_meta = bool(meta) and "TransferSyntaxUID" in meta
    sop_class = _uid(dataset, "SOPClassUID") or _uid(meta, "MediaStorageSOPClassUID")
    if sop_class == MEDIA_STORAGE_DIRECTORY or "DirectoryRecordSequence" in dataset:
        raise NotAnInstanceError(
            "This is a DICOMDIR (the index of a CD or folder), not an image: import the "
            "folder or ZIP that holds it, and its referenced files are read."
        )
    if sop_class == COLOR_PALETTE_STORAGE:
        raise NotAnInstanceError("This is a DICOM colour palette definition, not a study.")
    uids = {
        "StudyInstanceUID": _uid(dataset, "StudyInstanceUID"),
        "SeriesInstanceUID": _uid(dataset, "SeriesInstanceUID"),
        "SOPInstanceUID": (
            _uid(dataset, "SOPInstanceUID") or _uid(meta, "MediaStorageSOPInstanceUID")
        ),
        "SOPClassUID": sop_class,
    }
    missing = [name for name, value in uids.items() if not value]
    if missing:
        raise MissingUIDError(
            f"The DICOM file lacks {', '.join(missing)}: it cannot be filed under a study. "
            "Export it again from the modality or PACS."
        )

    notes: list[str] = []
    syntax = UID(_uid(meta, "TransferSyntaxUID")) if has_meta else None
    has_pixels = any(tag in dataset for tag in PIXEL_TAGS)
    if not has_pixels and "Image Storage" in UID(sop_class).name:
        raise DicomCorruptError(
            f"The file is a {UID(sop_class).name} instance without pixel data: it is probably "
            "truncated. Copy the file again from its source."
        )
    document_kind = next(
        (kind for prefix, kind in DOCUMENT_SOP_PREFIXES.items() if sop_class.startswith(prefix)),
        "",
    )
    if not has_pixels and not document_kind:
        document_kind = "non_image"
    is_image = has_pixels and not document_kind
    frames = (_int(dataset, "NumberOfFrames", notes) or 1) if is_image else 0
    spacing, spacing_source = pixel_spacing_of(dataset)
    return InstanceHeader(
        patient=_patient(dataset, notes),
        study_instance_uid=uids["StudyInstanceUID"],
        series_instance_uid=uids["SeriesInstanceUID"],
        sop_instance_uid=uids["SOPInstanceUID"],
        sop_class_uid=sop_class,
        sop_class_name=UID(sop_class).name,
        is_image=is_image,
        document_kind=document_kind,
        transfer_syntax_uid=str(syntax or ""),
        transfer_syntax_name=syntax.name if syntax else "",
        has_file_meta=has_meta,
        modality=_text(dataset, "Modality").upper(),
        body_part=_text(dataset, "BodyPartExamined"),
        view_position=_text(dataset, "ViewPosition"),
        laterality=_text(dataset, "ImageLaterality") or _text(dataset, "Laterality"),
        study_description=_text(dataset, "StudyDescription"),
        series_description=_text(dataset, "SeriesDescription"),
        protocol_name=_text(dataset, "ProtocolName"),
        study_datetime=_datetime(dataset, "StudyDate", "StudyTime", default_zone, notes),
        acquisition_datetime=_acquisition_datetime(dataset, default_zone, notes),
        institution=_text(dataset, "InstitutionName"),
        referring_physician=format_person_name(_text(dataset, "ReferringPhysicianName")),
        accession_number=_text(dataset, "AccessionNumber"),
        study_id=_text(dataset, "StudyID"),
        series_number=_int(dataset, "SeriesNumber", notes),
        instance_number=_int(dataset, "InstanceNumber", notes),
        mime_type=_text(dataset, "MIMETypeOfEncapsulatedDocument"),
        rows=_int(dataset, "Rows", notes) if has_pixels else None,
        columns=_int(dataset, "Columns", notes) if has_pixels else None,
        frames=frames,
        samples_per_pixel=_int(dataset, "SamplesPerPixel", notes) if has_pixels else None,
        bits_allocated=_int(dataset, "BitsAllocated", notes) if has_pixels else None,
        bits_stored=_int(dataset, "BitsStored", notes) if has_pixels else None,
        pixel_representation=_int(dataset, "PixelRepresentation", notes) if has_pixels else None,
        photometric_interpretation=_text(dataset, "PhotometricInterpretation").upper(),
        pixel_spacing=spacing,
        pixel_spacing_source=spacing_source,
        window_center=_first_float(dataset, "WindowCenter"),
        window_width=_first_float(dataset, "WindowWidth"),
        warnings=tuple(notes),
    )


def _patient(dataset, notes: list[str]) -> PatientHeader:
    name = dataset.get("PatientName")
    raw = getattr(name, "original_string", None) if name is not None else None
    if isinstance(raw, str):
        raw = raw.encode("utf-8")
    charset = dataset.get("SpecificCharacterSet") or ()
    if isinstance(charset, str):
        charset = (charset,)
    birth = None
    try:
        birth = parse_date(_text(dataset, "PatientBirthDate"))
    except DicomValueError as exc:
        notes.append(f"PatientBirthDate ignored: {exc}")
    return PatientHeader(
        patient_id=_text(dataset, "PatientID"),
        issuer=_text(dataset, "IssuerOfPatientID"),
        name=str(name or "").strip(),
        name_raw=raw or b"",
        specific_character_set=tuple(str(value).strip() for value in charset),
        birth_date=birth,
        sex=_text(dataset, "PatientSex").upper(),
    )


def _datetime(dataset, date_key, time_key, zone, notes) -> dt.datetime | None:
    try:
        return to_aware(
            _text(dataset, date_key),
            _text(dataset, time_key),
            default_zone=zone,
            offset=_text(dataset, "TimezoneOffsetFromUTC"),
        )
    except DicomValueError as exc:
        notes.append(f"{date_key}/{time_key} ignored: {exc}")
        return None


def _acquisition_datetime(dataset, zone, notes) -> dt.datetime | None:
    value = _text(dataset, "AcquisitionDateTime")
    if not value:
        return _datetime(dataset, "AcquisitionDate", "AcquisitionTime", zone, notes)
    match = _DT_OFFSET.search(value)
    offset = match.group(1) if match else _text(dataset, "TimezoneOffsetFromUTC")
    body = value[: match.start()] if match else value
    try:
        return to_aware(body[:8], body[8:], default_zone=zone, offset=offset)
    except DicomValueError as exc:
        notes.append(f"AcquisitionDateTime ignored: {exc}")
        return None


def pixel_spacing_of(dataset) -> tuple[tuple[float, float] | None, str]:
    """(row, column) spacing in mm from PixelSpacing, else ImagerPixelSpacing, and its source."""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        try:
            value = dataset.get(keyword)
            if value is not None and len(value) >= 2:
                row, column = float(value[0]), float(value[1])
                if row > 0 and column > 0:
                    return (row, column), keyword
        except (TypeError, ValueError):
            continue
    return None, ""


def _uid(dataset, keyword: str) -> str:
    if dataset is None:
        return ""
    value = dataset.get(keyword)
    return str(value or "").strip().rstrip("\x00").strip()


def _text(dataset, keyword: str) -> str:
    from pydicom.multival import MultiValue

    value = dataset.get(keyword)
    if value is None:
        return ""
    if isinstance(value, (MultiValue, list, tuple)):
        value = "\\".join(str(part) for part in value)
    return str(value).strip().rstrip("\x00").strip()


def _int(dataset, keyword: str, notes: list[str]) -> int | None:
    value = dataset.get(keyword)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        notes.append(f"{keyword} ignored: {value!r} is not a number")
        return None


def _first_float(dataset, keyword: str) -> float | None:
    value = dataset.get(keyword)
    if value in (None, ""):
        return None
    try:
        if not isinstance(value, (str, bytes)) and hasattr(value, "__len__"):
            value = value[0]
        return float(value)
    except (TypeError, ValueError, IndexError):
        return None


def _pn_component(name: str, index: int) -> str:
    parts = name.split("=")[0].split("^")
    return parts[index].strip() if len(parts) > index else ""
