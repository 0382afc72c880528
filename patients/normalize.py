"""Normalisation shared by storage and search, so that what is stored and what is typed meet."""

import re

_SPACES = re.compile(r"\s+")
_NOT_ALNUM = re.compile(r"[^0-9A-ZА-ЯЁ]")


def normalize_name(value: str) -> str:
    """Case-folded, ё → е, single spaces: the form names are searched in."""
    return _SPACES.sub(" ", (value or "").casefold().replace("ё", "е")).strip()


def normalize_mrn(value: str) -> str:
    return _SPACES.sub("", (value or "")).upper()


def normalize_identifier(value: str) -> str:
    """Identifiers compare without spaces, dashes or case (SNILS 112-233-445 95 == 11223344595)."""
    return _NOT_ALNUM.sub("", (value or "").upper())
