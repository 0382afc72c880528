"""The Django-free name helpers (no database): transliteration, DICOM PN decoding, matching."""

import pytest

from patients.identity import (
    decode_person_name,
    latin_key,
    name_similarity,
    parse_person_name,
    same_name,
    to_cyrillic_gost,
    to_latin_gost,
    to_latin_icao,
    trigram_similarity,
)
from patients.identity.errors import UnknownCharsetError


@pytest.mark.parametrize(
    "cyrillic, gost, icao",
    [
        ("Щукин", "Shhukin", "Shchukin"),
        ("Цой", "Czoj", "Tsoi"),
        ("Цицерон", "Ciceron", "Tsitseron"),
        ("Фёдоров", "Fyodorov", "Fedorov"),
        ("Юлия", "Yuliya", "Iuliia"),
        ("Хабибуллин", "Xabibullin", "Khabibullin"),
        ("Объедков", "Ob``edkov", "Obieedkov"),
        ("Мышкин", "My`shkin", "Myshkin"),
        ("Эрмитаж", "E`rmitazh", "Ermitazh"),
        ("Игорь", "Igor`", "Igor"),
    ],
)
def test_transliteration_by_gost_and_icao(cyrillic, gost, icao):
    assert to_latin_gost(cyrillic) == gost
    assert to_latin_icao(cyrillic) == icao


def test_all_caps_stay_all_caps():
    assert to_latin_icao("ЩУКИН") == "SHCHUKIN"
    assert to_latin_gost("ЩУКИН") == "SHHUKIN"


@pytest.mark.parametrize("name", ["Щукина", "Цицерон", "Фёдоров", "Объедков", "Мышкин", "Эрмитаж"])
def test_gost_system_b_is_reversible(name):
    assert to_cyrillic_gost(to_latin_gost(name)) == name


@pytest.mark.parametrize(
    "spellings",
    [
        ("Фёдоров", "Федоров", "Fyodorov", "Fedorov"),
        ("Юлия", "Yulia", "Iuliia", "Yuliya"),
        ("Евгений", "Yevgeny", "Evgenii"),
        ("Щукин", "Shchukin", "Shhukin"),
        ("Цой", "Tsoi", "Czoj"),
    ],
)
def test_latin_keys_agree_across_systems(spellings):
    assert len({latin_key(s) for s in spellings}) == 1


def test_trigram_similarity_matches_pg_trgm():
    # SELECT similarity('word', 'two words') = 0.363636 on PostgreSQL.
    assert trigram_similarity("word", "two words") == pytest.approx(0.363636, abs=1e-6)
    assert trigram_similarity("", "x") == 0.0


def test_name_similarity_across_scripts_and_word_order():
    assert name_similarity("Иванов Иван", "IVANOV IVAN") == 1.0
    assert name_similarity("Иванов Иван", "Ivan Ivanov") == 1.0
    assert name_similarity("Смирнова Анна", "Кузнецов Олег") < 0.2
    assert 0.5 < name_similarity("Петров Сергей", "Petrov Serguei") < 1.0


def test_same_name_accepts_fewer_parts_but_not_a_different_person():
    assert same_name("Ivanov^Ivan", "Иванов Иван Иванович")
    assert same_name("FEDOROV^PETR", "Фёдоров Пётр Ильич")
    assert not same_name("Ivanova^Anna", "Иванов Иван Иванович")
    assert not same_name("", "Иванов")


# --- DICOM PersonName -------------------------------------------------------------------------
RAW = "Иванов^Иван".encode("cp1251")


@pytest.mark.parametrize(
    "value, charset, expected",
    [
        (RAW, None, "Иванов^Иван"),  # missing: the cp1251 fallback
        (RAW, "ISO_IR 100", "Иванов^Иван"),  # wrong (Latin-1): mojibake detected, fallback
        ("Иванов^Иван".encode(), None, "Иванов^Иван"),  # UTF-8 without a declaration
        ("Иванов^Иван".encode(), "ISO_IR 192", "Иванов^Иван"),
        ("Иванов".encode("iso8859_5"), "ISO_IR 144", "Иванов"),
        (b"\x1b-L" + "Иванов".encode("iso8859_5"), ["", "ISO 2022 IR 144"], "Иванов"),
        ("Müller^Hans".encode("latin_1"), "ISO_IR 100", "Müller^Hans"),  # real Latin-1 kept
        (b"SMITH^JOHN ", None, "SMITH^JOHN"),
        (RAW.decode("latin_1"), None, "Иванов^Иван"),  # a reader already decoded it wrongly
    ],
)
def test_decode_person_name(value, charset, expected):
    assert decode_person_name(value, charset) == expected


def test_the_fallback_charset_is_configurable():
    raw = "Иванов".encode("koi8_r")
    assert decode_person_name(raw, None, fallback="koi8_r") == "Иванов"


def test_an_unknown_fallback_charset_is_a_clear_error():
    with pytest.raises(UnknownCharsetError, match="Unknown charset 'klingon'"):
        decode_person_name(RAW, None, fallback="klingon")


def test_parse_person_name_groups_and_components():
    name = parse_person_name("Ivanov^Ivan^Ivanovich=Иванов^Иван")
    assert (name.family, name.given, name.middle) == ("Ivanov", "Ivan", "Ivanovich")
    assert name.ideographic == "Иванов^Иван"
    assert parse_person_name("Ivanov Ivan Ivanovich").full == "Ivanov Ivan Ivanovich"
    assert parse_person_name("Иванов^Иван Иванович").middle == "Иванович"
    assert parse_person_name("").full == ""


# --- the registry's wrapper, with the configured charset ------------------------------------
@pytest.mark.django_db
def test_dicom_names_use_the_configured_fallback_and_match_the_registry(settings):
    from patients.dicom_names import dicom_person_name, patient_name_matches
    from patients.tests.factories import PatientFactory

    patient = PatientFactory(last_name="Фёдоров", first_name="Пётр", middle_name="Ильич")
    settings.DICOM_FALLBACK_CHARSET = "koi8_r"
    name = dicom_person_name("Федоров^Петр".encode("koi8_r"))
    assert name.family == "Федоров"
    assert patient_name_matches(patient, name)
    assert patient_name_matches(patient, dicom_person_name(b"FEDOROV^PETR"))
    assert not patient_name_matches(patient, dicom_person_name(b"PETROVA^ANNA"))


def test_a_bad_fallback_charset_stops_the_start():
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={
            **__import__("os").environ,
            "MIS_DICOM_FALLBACK_CHARSET": "klingon",
            "DJANGO_SETTINGS_MODULE": "mis.settings",
        },
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "MIS_DICOM_FALLBACK_CHARSET='klingon' is not a charset" in result.stderr
