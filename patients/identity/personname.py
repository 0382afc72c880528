"""DICOM PersonName (PN): decoding by SpecificCharacterSet and parsing of the caret format.

Files from other hospitals often carry Cyrillic names in Windows-1251 with no
SpecificCharacterSet, or with a wrong one (ISO_IR 100 for what is really cp1251). The decoder tries
the declared charset, then UTF-8, then a fallback (cp1251 unless the caller says otherwise), and
keeps the first result that looks like a name rather than mojibake.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from patients.identity.errors import UnknownCharsetError

# DICOM defined terms (PS3.3 C.12.1.1.2) -> Python codecs.
DICOM_CHARSETS = {
    "": "ascii",
    "ISO_IR 6": "ascii",
    "ISO 2022 IR 6": "ascii",
    "ISO_IR 100": "latin_1",
    "ISO 2022 IR 100": "latin_1",
    "ISO_IR 101": "iso8859_2",
    "ISO 2022 IR 101": "iso8859_2",
    "ISO_IR 109": "iso8859_3",
    "ISO_IR 110": "iso8859_4",
    "ISO_IR 144": "iso8859_5",
    "ISO 2022 IR 144": "iso8859_5",
    "ISO_IR 127": "iso8859_6",
    "ISO_IR 126": "iso8859_7",
    "ISO_IR 138": "iso8859_8",
    "ISO_IR 148": "iso8859_9",
    "ISO_IR 203": "iso8859_15",
    "ISO_IR 13": "shift_jis",
    "ISO_IR 166": "tis_620",
    "ISO_IR 192": "utf_8",
    "GB18030": "gb18030",
    "GBK": "gbk",
}
DEFAULT_FALLBACK = "cp1251"

# ISO 2022 escape sequences (ESC + intermediate bytes + final byte) switch character sets
# inside a value; after stripping them the G1 set's bytes decode with the declared codec.
_ESCAPES = re.compile(rb"\x1b[\x20-\x2f]+[\x30-\x7e]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def check_charset(name: str) -> str:
    """Return the Python codec name for a fallback charset, or raise a readable error."""
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise UnknownCharsetError(
            f"Unknown charset {name!r}: use a Python codec name such as cp1251, koi8_r or utf-8."
        ) from None


def _codecs_for(specific_character_set) -> list[str]:
    if specific_character_set is None:
        return []
    if isinstance(specific_character_set, str):
        terms = specific_character_set.split("\\")
    else:
        terms = list(specific_character_set)
    found = []
    for term in terms:
        codec = DICOM_CHARSETS.get(str(term).strip().upper())
        if codec and codec not in found:
            found.append(codec)
    # A lone "ISO_IR 6" (or nothing) says "ASCII": treat it as missing for non-ASCII bytes.
    return [c for c in found if c != "ascii"]


def looks_like_text(text: str) -> bool:
    """True unless the text looks like bytes decoded with the wrong charset (mojibake).

    Mojibake from a Cyrillic or UTF-8 name read as Latin-1 is mostly accented Latin letters
    (``Èâàíîâ``) or C1 control characters; a real name is mostly ASCII or Cyrillic letters.
    """
    if _CONTROL.search(text) or "\ufffd" in text:
        return False
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return True
    plain = sum(1 for c in letters if c.isascii() or "\u0400" <= c <= "\u04ff")
    return plain / len(letters) >= 0.6


def decode_person_name(
    value: bytes | str,
    specific_character_set=None,
    *,
    fallback: str = DEFAULT_FALLBACK,
) -> str:
    """Decode a raw PN value.

    Parameters
    ----------
    value : bytes or str
        The raw bytes of the element; a ``str`` already decoded (perhaps wrongly, by a reader
        that trusted a wrong SpecificCharacterSet) is repaired when it looks like mojibake.
    specific_character_set : str, list of str or None
        The dataset's (0008,0005) value, e.g. ``"ISO_IR 192"`` or ``["", "ISO 2022 IR 144"]``.
    fallback : str
        The charset to try when the declared one is missing or gives mojibake (default cp1251).

    Returns
    -------
    str
        The decoded value, trailing padding removed. Undecodable bytes become U+FFFD only when
        no candidate decodes cleanly.
    """
    fallback = check_charset(fallback)
    if isinstance(value, str):
        if looks_like_text(value):
            return value.strip(" \x00")
        try:
            value = value.encode("latin_1")
        except UnicodeEncodeError:
            return value.strip(" \x00")
    raw = _ESCAPES.sub(b"", value).rstrip(b" \x00")
    if raw.isascii():
        return raw.decode("ascii")
    candidates = [*_codecs_for(specific_character_set), "utf_8", fallback]
    for codec in dict.fromkeys(candidates):
        try:
            text = raw.decode(codec)
        except UnicodeDecodeError:
            continue
        if looks_like_text(text):
            return text
    return raw.decode(fallback, errors="replace")


@dataclass(frozen=True)
class PersonName:
    """The alphabetic component group of a PN: ``Family^Given^Middle^Prefix^Suffix``."""

    family: str = ""
    given: str = ""
    middle: str = ""
    prefix: str = ""
    suffix: str = ""
    ideographic: str = ""
    phonetic: str = ""

    @property
    def full(self) -> str:
        """``Family Given Middle``, as the registry writes a name."""
        return " ".join(p for p in (self.family, self.given, self.middle) if p)


def parse_person_name(text: str) -> PersonName:
    """Split a decoded PN value (``Иванов^Иван^Иванович``, ``Ivanov^Ivan=Иванов^Иван``).

    A value without carets but with spaces (``Ivanov Ivan``, common from old modalities) is
    read as family, given and middle name in that order.
    """
    groups = (text or "").split("=")
    alphabetic = groups[0].strip()
    if "^" not in alphabetic and " " in alphabetic:
        parts = alphabetic.split()
    else:
        parts = [p.strip() for p in alphabetic.split("^")]
    parts = (parts + [""] * 5)[:5]
    family, given, middle, prefix, suffix = parts
    if middle == "" and " " in given:
        given, _, middle = given.partition(" ")
    return PersonName(
        family=family,
        given=given,
        middle=middle.strip(),
        prefix=prefix,
        suffix=suffix,
        ideographic=groups[1] if len(groups) > 1 else "",
        phonetic=groups[2] if len(groups) > 2 else "",
    )
