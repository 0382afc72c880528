"""Where the stored pixels of an uncompressed grey frame lie in its file, found without pydicom.

The viewer's signed frame URLs (``studies.frame_urls``) send such a frame as a byte copy of the
file: no decoding, no database. This module walks the data set's elements just far enough to
reach Pixel Data, reading the few header values a viewer needs on the way, and answers ``None``
for anything it does not handle exactly (compressed or big-endian syntaxes, colour, signed
values narrower than their bits, a Modality LUT Sequence, a bare data set without the preamble,
odd lengths); the caller then decodes the frame the ordinary way (:mod:`studies.dicom.raw`).

The bytes sent are *stored* values: the viewer applies ``rescale_slope`` and
``rescale_intercept`` (and, for unsigned values narrower than their bits, the ``bits_stored``
mask) itself, which gives exactly the modality values :func:`studies.dicom.raw.raw_frame` sends.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass

EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"

_LONG_VRS = {
    b"OB",
    b"OD",
    b"OF",
    b"OL",
    b"OV",
    b"OW",
    b"SQ",
    b"SV",
    b"UC",
    b"UN",
    b"UR",
    b"UT",
    b"UV",
}
# The version of the metadata's shape (``meta["version"]``): raw.FORMAT_VERSION, not imported
# from there because this module loads no pydicom.
META_VERSION = 1
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_PIXEL_DATA = 0x7FE00010

# Tag -> keyword of the values read on the way (all are short strings or US).
_WANTED = {
    0x00080060: "Modality",
    0x00181164: "ImagerPixelSpacing",
    0x00280002: "SamplesPerPixel",
    0x00280004: "PhotometricInterpretation",
    0x00280008: "NumberOfFrames",
    0x00280010: "Rows",
    0x00280011: "Columns",
    0x00280030: "PixelSpacing",
    0x00280100: "BitsAllocated",
    0x00280101: "BitsStored",
    0x00280103: "PixelRepresentation",
    0x00281050: "WindowCenter",
    0x00281051: "WindowWidth",
    0x00281052: "RescaleIntercept",
    0x00281053: "RescaleSlope",
    0x00281054: "RescaleType",
    0x00281056: "VOILUTFunction",
    0x00283000: "ModalityLUTSequence",
}
_CHUNK = 8 * 1024  # most headers fit; longer ones are read on
_MAX_HEADER = 16 * 1024 * 1024  # a header this long is not worth walking by hand


@dataclass(frozen=True)
class NativeFrames:
    """Where the frames lie (``offset`` of frame 0, ``frame_bytes`` each) and their metadata,
    in the shape of :func:`studies.dicom.raw.raw_frame`'s with ``rescaled`` false."""

    offset: int
    frame_bytes: int
    frames: int
    meta: dict

    def as_dict(self) -> dict:
        """A JSON-able form, kept with the instance (:func:`from_dict` reads it back)."""
        return {
            "offset": self.offset,
            "frame_bytes": self.frame_bytes,
            "frames": self.frames,
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, stored) -> NativeFrames | None:
        """:meth:`as_dict`'s output back, or ``None`` for anything else (written by another
        version of this module, damaged, absent)."""
        try:
            meta = stored["meta"]
            if meta.get("version") != META_VERSION:
                return None
            located = cls(
                offset=int(stored["offset"]),
                frame_bytes=int(stored["frame_bytes"]),
                frames=int(stored["frames"]),
                meta=dict(meta),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
        if located.offset < 0 or located.frame_bytes <= 0 or located.frames <= 0:
            return None
        return located

    def frame_meta(self, frame: int) -> dict:
        return {**self.meta, "frame": frame}

    def frame_json(self, frame: int) -> str:
        """:meth:`frame_meta` as compact JSON (frame 0's kept: most images have one frame)."""
        if frame == 0:
            cached = self.__dict__.get("_json0")
            if cached is None:
                cached = json.dumps(self.frame_meta(0), separators=(",", ":"))
                object.__setattr__(self, "_json0", cached)
            return cached
        return json.dumps(self.frame_meta(frame), separators=(",", ":"))


class _Unsupported(Exception):
    pass


class _Reader:
    """Bytes of an open file by absolute position, read ahead in chunks."""

    def __init__(self, fd: int):
        self.fd = fd
        self.start = 0
        self.buffer = b""

    def ensure(self, position: int, length: int) -> int:
        """Where ``length`` bytes from ``position`` start in ``self.buffer``."""
        if position < self.start or position + length > self.start + len(self.buffer):
            if position + length > _MAX_HEADER:
                raise _Unsupported
            self.start = position
            self.buffer = os.pread(self.fd, max(_CHUNK, length), position)
            if len(self.buffer) < length:
                raise _Unsupported  # the file ends inside an element
        return position - self.start

    def get(self, position: int, length: int) -> bytes:
        offset = self.ensure(position, length)
        return self.buffer[offset : offset + length]


class _BufferReader(_Reader):
    """The same over a file's bytes already in memory."""

    def __init__(self, data: bytes):
        self.fd = None
        self.start = 0
        self.buffer = data if isinstance(data, bytes) else bytes(data)

    def ensure(self, position: int, length: int) -> int:
        if position + length > len(self.buffer):
            raise _Unsupported  # the file ends inside an element
        if position + length > max(_CHUNK, _MAX_HEADER):
            raise _Unsupported
        return position


def locate_bytes(data: bytes) -> NativeFrames | None:
    """:func:`locate` on a file's bytes already in memory (ingest, before or while the file is
    written)."""
    try:
        return _locate(_BufferReader(data), len(data))
    except (_Unsupported, struct.error, ValueError, UnicodeDecodeError):
        return None


def locate(path: str | os.PathLike) -> NativeFrames | None:
    """Where the uncompressed grey frames of the file at ``path`` lie, or ``None``.

    Raises ``OSError`` when the file cannot be opened or read.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        return locate_fd(fd)
    finally:
        os.close(fd)


def locate_fd(fd: int) -> NativeFrames | None:
    """:func:`locate` on an open file descriptor (read with ``pread``: its offset is kept)."""
    try:
        return _locate(_Reader(fd), os.fstat(fd).st_size)
    except (_Unsupported, struct.error, ValueError, UnicodeDecodeError):
        return None


def _locate(reader: _Reader, size: int) -> NativeFrames | None:
    if reader.get(128, 4) != b"DICM":
        return None
    position, syntax = _file_meta(reader)
    if syntax not in (EXPLICIT_LE, IMPLICIT_LE):
        return None
    values: dict[str, bytes] = {}
    pixel = _walk(reader, position, syntax == EXPLICIT_LE, values)
    if pixel is None:
        return None
    offset, length = pixel
    return _frames(values, offset, length, size)


def _file_meta(reader: _Reader) -> tuple[int, str]:
    """Group 0002 (always explicit VR little endian): the end of it and the transfer syntax."""
    position, syntax = 132, ""
    while True:
        head = reader.get(position, 8)
        group, element = struct.unpack_from("<HH", head)
        if group != 0x0002:
            return position, syntax
        vr = head[4:6]
        if vr in _LONG_VRS:
            (length,) = struct.unpack_from("<I", reader.get(position + 8, 4))
            value_at = position + 12
        else:
            (length,) = struct.unpack_from("<H", head, 6)
            value_at = position + 8
        if length == _UNDEFINED:
            raise _Unsupported
        if element == 0x0010:
            syntax = reader.get(value_at, length).decode("ascii").strip("\x00 ")
        position = value_at + length


def _walk(reader: _Reader, position: int, explicit: bool, values: dict):
    """Top-level elements up to Pixel Data: ``(value offset, length)``, or ``None``."""
    unpack = struct.unpack_from
    while True:
        offset = reader.ensure(position, 12 if explicit else 8)
        buffer = reader.buffer
        group, element = unpack("<HH", buffer, offset)
        tag = group << 16 | element
        if explicit:
            if buffer[offset + 4 : offset + 6] in _LONG_VRS:
                (length,) = unpack("<I", buffer, offset + 8)
                value_at = position + 12
            else:
                (length,) = unpack("<H", buffer, offset + 6)
                value_at = position + 8
        else:
            (length,) = unpack("<I", buffer, offset + 4)
            value_at = position + 8
        if tag == _PIXEL_DATA:
            if length == _UNDEFINED:
                return None  # encapsulated: not native
            return value_at, length
        if tag > _PIXEL_DATA:
            return None  # no Pixel Data (Float/Double Float Pixel Data sort after it)
        keyword = _WANTED.get(tag)
        if keyword == "ModalityLUTSequence":
            raise _Unsupported  # a lookup table, not slope and intercept
        if length == _UNDEFINED:
            position = _skip_undefined(reader, value_at, explicit)
            continue
        if keyword:
            values[keyword] = reader.get(value_at, length)
        position = value_at + length


def _skip_undefined(reader: _Reader, position: int, explicit: bool) -> int:
    """Past a sequence (or an explicit UN) of undefined length: its items, then its end."""
    while True:
        tag, length = _item_head(reader, position)
        position += 8
        if tag == _SEQUENCE_END:
            return position
        if tag != _ITEM:
            raise _Unsupported
        if length != _UNDEFINED:
            position += length
            continue
        position = _skip_item(reader, position, explicit)


def _skip_item(reader: _Reader, position: int, explicit: bool) -> int:
    """Past the elements of an item of undefined length and its delimiter."""
    while True:
        tag, length = _item_head(reader, position)
        if tag == _ITEM_END:
            return position + 8
        head = reader.get(position, 8)
        if explicit:
            vr = head[4:6]
            if vr in _LONG_VRS:
                (length,) = struct.unpack_from("<I", reader.get(position + 8, 4))
                value_at = position + 12
            else:
                (length,) = struct.unpack_from("<H", head, 6)
                value_at = position + 8
        else:
            value_at = position + 8
        if length == _UNDEFINED:
            position = _skip_undefined(reader, value_at, explicit)
        else:
            position = value_at + length


def _item_head(reader: _Reader, position: int) -> tuple[int, int]:
    group, element, length = struct.unpack_from("<HHI", reader.get(position, 8))
    return group << 16 | element, length


def _frames(values: dict, offset: int, length: int, size: int) -> NativeFrames | None:
    def us(keyword, default=None):
        raw = values.get(keyword)
        if raw is None or len(raw) < 2:
            return default
        return struct.unpack_from("<H", raw)[0]

    def text(keyword, default=""):
        raw = values.get(keyword)
        return raw.decode("latin-1").strip("\x00 ") if raw is not None else default

    def numbers(keyword) -> list[float]:
        raw = text(keyword)
        return [float(part) for part in raw.split("\\") if part.strip()] if raw else []

    samples = us("SamplesPerPixel", 1)
    photometric = text("PhotometricInterpretation", "MONOCHROME2").upper()
    rows, columns = us("Rows"), us("Columns")
    allocated, representation = us("BitsAllocated"), us("PixelRepresentation", 0)
    stored = us("BitsStored") or allocated
    if samples != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        return None
    if not rows or not columns or allocated not in (8, 16) or representation not in (0, 1):
        return None
    if not 1 <= stored <= allocated:
        return None
    if representation == 1 and stored != allocated:
        return None  # would need sign extension
    try:
        frames = max(int(float(text("NumberOfFrames") or 1)), 1)
    except ValueError:
        return None
    frame_bytes = rows * columns * allocated // 8
    if length < frames * frame_bytes or offset + frames * frame_bytes > size:
        return None
    dtype = {(8, 0): "uint8", (8, 1): "int8", (16, 0): "uint16", (16, 1): "int16"}[
        (allocated, representation)
    ]
    slope = _first(numbers("RescaleSlope"), 1.0)
    intercept = _first(numbers("RescaleIntercept"), 0.0)
    if slope == 0:
        return None
    centres, widths = numbers("WindowCenter"), numbers("WindowWidth")
    windows = [[c, w] for c, w in zip(centres, widths, strict=False) if w > 0]
    spacing = None
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        pair = numbers(keyword)
        if len(pair) >= 2 and pair[0] > 0 and pair[1] > 0:
            spacing = [pair[0], pair[1]]
            break
    rescale_type = text("RescaleType") or ("HU" if text("Modality").upper() == "CT" else "")
    meta = {
        "version": META_VERSION,
        "rescaled": False,
        "rows": rows,
        "columns": columns,
        "original_rows": rows,
        "original_columns": columns,
        "scale": 1,
        "dtype": dtype,
        "bits_allocated": allocated,
        "min": None,
        "max": None,
        "bits_stored": stored,
        "signed": representation == 1 or intercept < 0 or slope < 0,
        "rescale_slope": slope,
        "rescale_intercept": intercept,
        "rescale_type": rescale_type,
        "windows": windows,
        "window": windows[0] if windows else None,
        "header_window": bool(windows),
        "voi_lut_function": text("VOILUTFunction").upper() or "LINEAR",
        "photometric": photometric,
        "is_color": False,
        "invert": photometric == "MONOCHROME1",
        "pixel_spacing": spacing,
        "frame": 0,
        "frames": frames,
    }
    return NativeFrames(offset=offset, frame_bytes=frame_bytes, frames=frames, meta=meta)


def _first(values: list[float], default: float) -> float:
    return values[0] if values else default


# -- the whole data set, for ingest ----------------------------------------------------------
#
# ``scan`` walks every element of a Part 10 file held in memory (or mapped) and returns the raw
# values of the top-level elements ingest reads, but only where it can tell that pydicom reads
# the file the same way and to its end: the preamble and file meta, an explicit or implicit VR
# little endian data set with native (not encapsulated) pixel data, elements in ascending
# order, known VRs, every length inside the file, sequences of undefined length walked item by
# item (as pydicom parses them) and ending exactly at their delimiters, the last element ending
# exactly at the end of the file. Anything else (big endian, deflated, encapsulated, a command
# set, a data set that switches VR encoding, trailing bytes, a damaged or cut file) answers
# ``None``, and the caller reads the file with pydicom as before: the fast path only ever
# accepts files that pydicom reads whole.

#: The VRs pydicom knows (``pydicom.filereader.ENCODED_VR``); an unknown one answers ``None``.
_KNOWN_VRS = frozenset(
    v.encode()
    for v in (
        "AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL "
        "UN UR US UT UV"
    ).split()
)
_SYNTAXES = {b"1.2.840.10008.1.2": False, b"1.2.840.10008.1.2.1": True}  # -> explicit VR


@dataclass(frozen=True)
class Scanned:
    """What :func:`scan` read: the transfer syntax UID, the file meta's raw values (tag ->
    bytes), the wanted top-level elements' ``(VR, raw value)`` (the VR as the file gives it,
    ``None`` under implicit VR), every top-level tag, and Pixel Data's length."""

    syntax: str
    explicit: bool
    meta: dict
    values: dict
    tags: frozenset
    pixel_length: int | None


def scan(buffer, wanted) -> Scanned | None:
    """Walk a whole Part 10 file (bytes, memoryview or mmap) as described above; ``wanted``:
    the top-level tags whose raw values to keep. ``None`` where pydicom must read it."""
    try:
        return _scan(buffer, len(buffer), wanted)
    except (_Unsupported, struct.error, IndexError, ValueError):
        return None


def _scan(buf, size: int, wanted) -> Scanned | None:
    if size < 144 or buf[128:132] != b"DICM":
        return None
    unpack = struct.unpack_from
    position, meta = 132, {}
    while True:  # the file meta group: explicit VR little endian, defined lengths
        if position + 8 > size:
            return None
        group, element = unpack("<HH", buf, position)
        if group != 0x0002:
            break
        vr = buf[position + 4 : position + 6]
        if vr not in _KNOWN_VRS:
            return None
        if vr in _LONG_VRS:
            (length,) = unpack("<I", buf, position + 8)
            value_at = position + 12
        else:
            (length,) = unpack("<H", buf, position + 6)
            value_at = position + 8
        if length == _UNDEFINED or value_at + length > size:
            return None
        meta[0x00020000 | element] = (vr, buf[value_at : value_at + length])
        position = value_at + length
    syntax_vr, syntax = meta.get(0x00020010, (None, b""))
    explicit = _SYNTAXES.get(bytes(syntax).rstrip(b"\x00 "))
    if syntax_vr != b"UI" or explicit is None:
        return None
    values: dict = {}
    tags: set = set()
    pixel = _Top(values, tags, wanted)
    end = _elements(buf, position, size, explicit, top=pixel)
    if end != size or not tags:
        return None
    return Scanned(
        syntax=bytes(syntax).rstrip(b"\x00 ").decode("ascii"),
        explicit=explicit,
        meta={tag: bytes(value) for tag, (_vr, value) in meta.items()},
        values=values,
        tags=frozenset(tags),
        pixel_length=pixel.pixel_length,
    )


class _Top:
    """The top level's bookkeeping during :func:`_elements`."""

    def __init__(self, values: dict, tags: set, wanted):
        self.values, self.tags, self.wanted = values, tags, wanted
        self.last = 0x0002FFFF  # tags ascend, after the file meta (no command set)
        self.pixel_length: int | None = None


def _elements(buf, position: int, end: int, explicit: bool, *, top=None, until_end=False) -> int:
    """Elements from ``position``: up to exactly ``end`` (a data set of defined length, or the
    file), or, with ``until_end``, up to an item delimiter. Where the walk stopped."""
    unpack = struct.unpack_from
    first = True
    while True:
        if position == end and not until_end:
            return position
        if position + 8 > end:
            raise _Unsupported
        group, element = unpack("<HH", buf, position)
        tag = group << 16 | element
        if group == 0xFFFE:
            if until_end and tag == _ITEM_END and buf[position + 4 : position + 8] == b"\0\0\0\0":
                return position + 8
            raise _Unsupported
        if explicit:
            vr = buf[position + 4 : position + 6]
            if vr not in _KNOWN_VRS:
                raise _Unsupported  # pydicom would switch to implicit VR here
            if vr in _LONG_VRS:
                if position + 12 > end:
                    raise _Unsupported
                (length,) = unpack("<I", buf, position + 8)
                value_at = position + 12
            else:
                (length,) = unpack("<H", buf, position + 6)
                value_at = position + 8
        else:
            if first and top is not None and 0x40 < buf[position + 4] < 0x5B:
                if 0x40 < buf[position + 5] < 0x5B:
                    raise _Unsupported  # looks explicit: pydicom would switch
            vr = None
            (length,) = unpack("<I", buf, position + 4)
            value_at = position + 8
        first = False
        if top is not None:
            if tag <= top.last:
                raise _Unsupported
            top.last = tag
            top.tags.add(tag)
        if length == _UNDEFINED:
            if not _is_sequence(buf, tag, vr, value_at, end):
                raise _Unsupported  # encapsulated pixel data or an odd value: pydicom's way
            position = _sequence(buf, value_at, end, explicit)
            continue
        if value_at + length > end:
            raise _Unsupported
        if top is not None:
            if tag == _PIXEL_DATA:
                top.pixel_length = length
            elif tag in top.wanted:
                top.values[tag] = (vr, bytes(buf[value_at : value_at + length]))
        position = value_at + length


def _is_sequence(buf, tag: int, vr, value_at: int, end: int) -> bool:
    """Whether pydicom parses an undefined-length element as a sequence (explicit SQ; under
    implicit VR a dictionary SQ, or an unknown tag whose value starts with an item)."""
    if vr is not None:
        return vr == b"SQ"
    from pydicom.datadict import _dictionary_vr_fast

    try:
        return _dictionary_vr_fast(tag) == "SQ"
    except KeyError:
        if value_at + 4 > end:
            raise _Unsupported from None
        group, element = struct.unpack_from("<HH", buf, value_at)
        return (group << 16 | element) == _ITEM


def _sequence(buf, position: int, end: int, explicit: bool) -> int:
    """The items of a sequence of undefined length and its delimiter; past it."""
    unpack = struct.unpack_from
    while True:
        if position + 8 > end:
            raise _Unsupported
        group, element, length = unpack("<HHI", buf, position)
        tag = group << 16 | element
        position += 8
        if tag == _SEQUENCE_END:
            if length != 0:
                raise _Unsupported
            return position
        if tag != _ITEM:
            raise _Unsupported
        if length == _UNDEFINED:
            position = _elements(buf, position, end, explicit, until_end=True)
        else:
            if position + length > end:
                raise _Unsupported
            _elements(buf, position, position + length, explicit)
            position += length
