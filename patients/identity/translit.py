"""Cyrillic <-> Latin transliteration of Russian names.

- GOST 7.79-2000, system B (ASCII only, reversible): ``Щукин`` -> ``Shhukin``, ``Цой`` -> ``Czoj``.
- ICAO Doc 9303 (machine-readable travel documents, Russian passports since 2013):
  ``Щукин`` -> ``Shchukin``, ``Цой`` -> ``Tsoi``. Not reversible.
"""

_GOST_B = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "yo", "ж": "zh",
    "з": "z", "и": "i", "й": "j", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o",
    "п": "p", "р": "r", "с": "s", "т": "t", "у": "u", "ф": "f", "х": "x", "ц": "cz",
    "ч": "ch", "ш": "sh", "щ": "shh", "ъ": "``", "ы": "y`", "ь": "`", "э": "e`", "ю": "yu",
    "я": "ya",
    # Ukrainian and Belarusian letters of the same system.
    "і": "i`", "ї": "yi", "є": "ye", "ґ": "g`", "ў": "u`",
}  # fmt: skip

_ICAO = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh",
    "з": "z", "и": "i", "й": "i", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o",
    "п": "p", "р": "r", "с": "s", "т": "t", "у": "u", "ф": "f", "х": "kh", "ц": "ts",
    "ч": "ch", "ш": "sh", "щ": "shch", "ъ": "ie", "ы": "y", "ь": "", "э": "e", "ю": "iu",
    "я": "ia",
    "і": "i", "ї": "i", "є": "ie", "ґ": "g", "ў": "u",
}  # fmt: skip

# GOST B writes ц as "c" before i, e, y and j; "cz" elsewhere.
_C_BEFORE = set("иеыйіє")


def _apply(text: str, table: dict[str, str], *, gost: bool) -> str:
    out = []
    for i, char in enumerate(text):
        lower = char.lower()
        latin = table.get(lower)
        if latin is None:
            out.append(char)
            continue
        if gost and lower == "ц":
            nxt = text[i + 1].lower() if i + 1 < len(text) else ""
            latin = "c" if nxt in _C_BEFORE else "cz"
        if char != lower and latin:
            # Capital: "Щ" -> "Shh", or all caps when the next letter is a capital too.
            nxt = text[i + 1] if i + 1 < len(text) else ""
            latin = latin.upper() if nxt.isupper() else latin[0].upper() + latin[1:]
        out.append(latin)
    return "".join(out)


def to_latin_gost(text: str) -> str:
    """Transliterate by GOST 7.79-2000 system B (``Фёдоров`` -> ``Fyodorov``)."""
    return _apply(text, _GOST_B, gost=True)


def to_latin_icao(text: str) -> str:
    """Transliterate by ICAO Doc 9303 (``Фёдоров`` -> ``Fedorov``, ``Юлия`` -> ``Iuliia``)."""
    return _apply(text, _ICAO, gost=False)


# Reverse GOST B: longest match first.
_GOST_REVERSE = sorted(
    [(latin, cyr) for cyr, latin in _GOST_B.items() if cyr in "абвгдеёжзийклмнопрстуфхцчшщъыьэюя"]
    + [("c", "ц")],
    key=lambda pair: -len(pair[0]),
)


def to_cyrillic_gost(text: str) -> str:
    """Reverse GOST 7.79 system B (``Shhukin`` -> ``Щукин``). Letters it does not know stay."""
    out = []
    i = 0
    while i < len(text):
        for latin, cyr in _GOST_REVERSE:
            chunk = text[i : i + len(latin)]
            if chunk.lower() == latin:
                out.append(cyr.upper() if chunk[:1].isupper() else cyr)
                i += len(latin)
                break
        else:
            out.append(text[i])
            i += 1
    return "".join(out)
