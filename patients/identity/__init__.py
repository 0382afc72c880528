"""Django-free name matching, shared by the registry and by ingest (``studies``).

- :mod:`patients.identity.personname`: parse and decode a DICOM PersonName (PN) value.
- :mod:`patients.identity.translit`: Cyrillic <-> Latin by GOST 7.79-2000 (system B) and ICAO 9303.
- :mod:`patients.identity.match`: normalise, score and compare names across both scripts.

Nothing here imports Django (import-linter enforces it), so it is tested without a database.
"""

from patients.identity.match import (
    latin_key,
    name_similarity,
    normalize_text,
    same_name,
    trigram_similarity,
)
from patients.identity.personname import PersonName, decode_person_name, parse_person_name
from patients.identity.translit import to_cyrillic_gost, to_latin_gost, to_latin_icao

__all__ = [
    "PersonName",
    "decode_person_name",
    "latin_key",
    "name_similarity",
    "normalize_text",
    "parse_person_name",
    "same_name",
    "to_cyrillic_gost",
    "to_latin_gost",
    "to_latin_icao",
    "trigram_similarity",
]
