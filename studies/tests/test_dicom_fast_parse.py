"""parse_instance's fast path (``native.scan`` + ``parse._fast_dataset``) gives exactly what
pydicom's reading gives, or steps aside: compared on every pydicom test file, on cut and
damaged files and on generated values, VRs, character sets and sequences."""

import random
import struct

import pytest
from pydicom.uid import ImplicitVRLittleEndian

from studies.dicom import parse
from studies.dicom.errors import DicomError
from studies.tests.dicom_samples import PYDICOM_DATA, TEST_FILES, make_dataset, ramp, to_bytes

ZONE = "Europe/Moscow"
ALL_FILES = sorted(PYDICOM_DATA.rglob("*.dcm")) + sorted(
    path
    for path in (TEST_FILES / "dicomdirtests").rglob("*")
    if path.is_file() and "DICOMDIR" not in path.name and not path.name.startswith("README")
)


def _outcome(read):
    try:
        return ("ok", parse.header_from_dataset(read(), default_zone=ZONE))
    except DicomError as exc:
        return (type(exc).__name__, str(exc))


def _compare(data) -> bool:
    """True where the fast path took the file (and agreed with pydicom's reading)."""
    fast = parse._fast_dataset(data)
    if fast is None:
        return False
    expected = _outcome(lambda: parse.read_dataset(data))
    assert _outcome(lambda: fast) == expected
    return True


def test_every_pydicom_test_file_reads_the_same_on_the_fast_path():
    taken = [path.name for path in ALL_FILES if _compare(path.read_bytes())]
    assert len(taken) >= 40, taken  # the plain ones do take it
    for path in ALL_FILES[:20]:
        _compare(path)  # from a path (mapped) too


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "test-SR.dcm"])
def test_cut_and_damaged_files_step_aside_or_agree(name):
    original = (TEST_FILES / name).read_bytes()
    assert _compare(original) or name == "test-SR.dcm"
    for cut in range(0, len(original), max(len(original) // 150, 1)):
        _compare(original[:cut])
    rng = random.Random(name)
    for _ in range(150):
        data = bytearray(original)
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(0, min(len(data), 4096))] = rng.randrange(256)
        _compare(bytes(data))
    _compare(original + b"\0" * 10)
    _compare(original + b"\0" * 100)


def test_the_bench_and_sample_files_take_the_fast_path():
    plain = make_dataset(ramp(16, 16), PatientName="Иванов^Иван")  # UTF-8 names too
    assert _compare(to_bytes(plain))
    implicit = make_dataset(ramp(16, 16))
    implicit.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    assert _compare(to_bytes(implicit))
    short = make_dataset(ramp(16, 16))
    short.PixelData = short.PixelData[:-8]
    data = to_bytes(short)
    assert parse._fast_dataset(data) is None  # pydicom's path says it is truncated
    with pytest.raises(DicomError, match="truncated"):
        parse.parse_instance(data, default_zone=ZONE)


_TEXT = [
    b"",
    b" ",
    b"CT",
    b"CT ",
    b" CT",
    b"A\\B",
    b"A \\B ",
    b"\\",
    b"a\x00",
    b"x\x00\x00",
    b"\x00",
    b"1.5",
    b"-3",
    b" 12 ",
    b"+7",
    b"007",
    b"1e5",
    b"1E-2",
    b"1e400",
    b"nan",
    b"1.0",
    b".5",
    b"5.",
    b"12\\13",
    b"0.5\\0.25",
    b"0.5\\",
    b"abc",
    b"20201122",
    b"101500.123",
    b"20201122101500+0300",
    b"+0300",
    b"Doe^John^^^",
    b"Doe^John=Ideo",
    "Иванов^Иван".encode(),
    "Иванов".encode("iso8859_5"),
    "Müller".encode("latin-1"),
    b"\xff\xfe",
    b"x\x1b$B",
    b"1.2.840.10008.5.1.4.1.1.2",
    b"1.2.3\\1.2.4",
    b"1.2.3\x00",
    b"\tTAB\n",
    b"A" * 70,
]
_US = [b"", b"\x01\x00", b"\x00\x02", b"\x01\x00\x02\x00", b"\x01"]
_CHARSETS = [
    None,
    b"",
    b"ISO_IR 100",
    b"ISO_IR 192",
    b"ISO_IR 144",
    b"ISO_IR 6",
    b"GB18030",
    b"ISO 2022 IR 6",
    b"ISO_IR 100\\ISO 2022 IR 144",
    b"ISO_IR 13",
    b"ISO-IR 100",
    b"ISO_IR 100 ",
]
_OTHER_VRS = {"US": ["SS", "UN", "OW"], "DS": ["IS", "UN", "LO"], "PN": ["LO", "UN"]}


_LONG = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}


def _element(tag: int, vr: str, value, explicit: bool) -> bytes:
    """One element as written bytes; ``value``: bytes, or ``(items, undefined, item_flags)``
    for a sequence (items are lists of elements)."""
    undefined = False
    if vr == "SQ":
        items, undefined, flags = value
        body = b""
        for item, item_undefined in zip(items, flags, strict=True):
            content = b"".join(_element(*element, explicit) for element in sorted(item))
            if item_undefined:
                body += struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF) + content
                body += struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
            else:
                body += struct.pack("<HHI", 0xFFFE, 0xE000, len(content)) + content
        if undefined:
            body += struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
        value = body
    length = 0xFFFFFFFF if undefined else len(value)
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF)
    if not explicit:
        return head + struct.pack("<I", length) + value
    if vr in _LONG:
        return head + vr.encode() + b"\0\0" + struct.pack("<I", length) + value
    return head + vr.encode() + struct.pack("<H", length) + value


def _file(elements: dict, explicit: bool) -> bytes:
    syntax = b"1.2.840.10008.1.2.1\0" if explicit else b"1.2.840.10008.1.2\0"
    meta = _element(0x00020010, "UI", syntax, True)
    meta += _element(0x00020002, "UI", b"1.2.840.10008.5.1.4.1.1.2\0", True)
    meta = _element(0x00020000, "UL", struct.pack("<I", len(meta)), True) + meta
    body = b"".join(
        _element(tag, vr, value, explicit) for tag, (vr, value) in sorted(elements.items())
    )
    return b"\0" * 128 + b"DICM" + meta + body


def _random_file(rng: random.Random) -> bytes:
    uid = "1.2.826.0.1.3680043.8.498."
    elements = {
        0x00080016: ("UI", b"1.2.840.10008.5.1.4.1.1.2\0"),
        0x00080018: ("UI", f"{uid}{rng.randrange(10**9)}".encode()),
        0x0020000D: ("UI", f"{uid}1{rng.randrange(10**9)}".encode()),
        0x0020000E: ("UI", f"{uid}2{rng.randrange(10**9)}".encode()),
        0x00100010: ("PN", b"Doe^John"),
    }
    charset = rng.choice(_CHARSETS)
    if charset is not None:
        elements[0x00080005] = ("CS", charset)
    if rng.random() < 0.7:
        elements.update(
            {
                0x00280002: ("US", b"\x01\x00"),
                0x00280004: ("CS", b"MONOCHROME2 "),
                0x00280010: ("US", b"\x04\x00"),
                0x00280011: ("US", b"\x04\x00"),
                0x00280100: ("US", b"\x10\x00"),
                0x00280101: ("US", b"\x0c\x00"),
                0x00280103: ("US", b"\x00\x00"),
                0x7FE00010: ("OW", b"\x01\x00" * rng.choice([16, 16, 16, 15, 40])),
            }
        )
    for _keyword, (tag, vr) in rng.sample(sorted(parse._FAST_ELEMENTS.items()), 3):
        vr = vr.decode()
        if rng.random() < 0.15:
            vr = rng.choice(_OTHER_VRS.get(vr, ["UN", "LO"]))
        pool = _US if vr in ("US", "SS", "OW") else _TEXT
        elements[tag] = (vr, rng.choice(pool))
    if rng.random() < 0.4:
        inner = [(0x00080100, "SH", b"T-1 "), (0x00080104, "LO", rng.choice(_TEXT))]
        nested = [(0x0040A043, "SQ", ([inner], rng.random() < 0.5, [rng.random() < 0.5]))]
        flags = [rng.random() < 0.5, rng.random() < 0.5]
        elements[0x0040A730] = ("SQ", ([nested, []], rng.random() < 0.7, flags))
    if rng.random() < 0.3:
        elements[0x00091010] = ("LO", b"private ")
    if rng.random() < 0.1:
        elements[0x00091011] = ("ZZ", b"odd VR")
    data = _file(elements, explicit=rng.random() < 0.7)
    if rng.random() < 0.1:
        data += rng.choice([b"\0\0", b"\0" * 70, b"junk"])
    return data


def test_generated_values_read_the_same_or_step_aside():
    rng = random.Random(5)
    taken = 0
    with _quiet():
        for _ in range(600):
            taken += _compare(_random_file(rng))
    assert taken >= 80  # a good share is compared on the fast path itself


class _quiet:
    def __enter__(self):
        import warnings

        self.context = warnings.catch_warnings()
        self.context.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc):
        self.context.__exit__(*exc)
