"""Name comparison across Cyrillic and Latin: the scores the duplicate queue and ingest use.

Both names are reduced to a Latin *key*: case-folded, ё -> е, Cyrillic transliterated by ICAO,
and the spellings that GOST, ICAO and older passport systems disagree on folded together
(``shch``/``shh``/``sch``, ``kh``/``h``/``x``, ``ts``/``cz``/``tz``, ``yu``/``iu``/``ju``,
``y``/``i``
...). Keys are compared by trigram similarity computed as PostgreSQL's pg_trgm does, so scores
agree between the two databases.
"""

from __future__ import annotations

import re
import unicodedata

from patients.identity.translit import to_latin_icao

_SPACES = re.compile(r"\s+")
_NOT_LETTER = re.compile(r"[^a-zа-я ]")

# Order matters: longer spellings first.
_FOLD = [
    ("shch", "sh"),
    ("shh", "sh"),
    ("sch", "sh"),
    ("kh", "h"),
    ("x", "h"),
    ("tz", "c"),
    ("ts", "c"),
    ("cz", "c"),
    ("ck", "k"),
    ("yo", "e"),
    ("jo", "e"),
    ("ye", "e"),
    ("ie", "e"),
    ("je", "e"),
    ("yu", "iu"),
    ("ju", "iu"),
    ("ya", "ia"),
    ("ja", "ia"),
    ("w", "v"),
    ("y", "i"),
    ("j", "i"),
    ("ii", "i"),
]


def _strip_accent(char: str) -> str:
    if "\u0400" <= char <= "\u04ff":  # й keeps its breve
        return char
    return "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))


def normalize_text(value: str) -> str:
    """Case-folded, ё -> е, accents removed from Latin letters, single spaces, no punctuation."""
    text = (value or "").casefold().replace("ё", "е").replace("^", " ")
    text = "".join(_strip_accent(c) for c in unicodedata.normalize("NFC", text))
    text = _NOT_LETTER.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def latin_key(value: str) -> str:
    """The comparison key: ``Фёдоров``, ``Fyodorov`` and ``Fedorov`` all give ``fedorov``."""
    text = to_latin_icao(normalize_text(value)).lower()
    for spelling, folded in _FOLD:
        text = text.replace(spelling, folded)
    return _SPACES.sub(" ", re.sub(r"[^a-z ]", "", text)).strip()


def _trigrams(text: str) -> set[str]:
    grams = set()
    for word in text.split():
        padded = f"  {word} "
        grams.update(padded[i : i + 3] for i in range(len(padded) - 2))
    return grams


def trigram_similarity(a: str, b: str) -> float:
    """pg_trgm's ``similarity()``: shared trigrams over all trigrams of both strings."""
    ta, tb = _trigrams(a), _trigrams(b)
    if not ta or not tb:
        return 0.0
    return len(ta & tb) / len(ta | tb)


def name_similarity(a: str, b: str) -> float:
    """0..1: how alike two full names are, whatever script each is written in.

    The best of the plain similarity (same script) and of the Latin keys (across scripts);
    word order does not matter (``Ivanov Ivan`` = ``Иван Иванов``).
    """
    plain_a, plain_b = normalize_text(a), normalize_text(b)
    if not plain_a or not plain_b:
        return 0.0
    if plain_a == plain_b:
        return 1.0
    key_a, key_b = latin_key(plain_a), latin_key(plain_b)
    if sorted(key_a.split()) == sorted(key_b.split()):
        return 1.0
    return max(trigram_similarity(plain_a, plain_b), trigram_similarity(key_a, key_b))


def same_name(a: str, b: str, *, threshold: float = 0.75) -> bool:
    """Whether two names are very probably the same person's (``Ivanov^Ivan`` vs ``Иванов Иван``).

    A name given with fewer parts matches when its parts match (``Ivanov^Ivan`` against the
    registry's ``Иванов Иван Иванович``).
    """
    if name_similarity(a, b) >= threshold:
        return True
    key_a, key_b = latin_key(a).split(), latin_key(b).split()
    if not key_a or not key_b:
        return False
    shorter, longer = sorted((key_a, key_b), key=len)
    return len(shorter) < len(longer) and all(part in longer for part in shorter)
