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
