import pytest
from django.core.exceptions import ValidationError

from patients.validators import snils_checksum, validate_oms, validate_snils


def test_snils_checksum_of_a_known_number():
    assert snils_checksum("112233445") == 95


@pytest.mark.parametrize("value", ["112-233-445 95", "11223344595", " 112 233 445 95 "])
def test_it_accepts_a_snils_in_any_usual_spelling(value):
    validate_snils(value)


def test_it_rejects_a_snils_with_a_wrong_control_number():
    with pytest.raises(ValidationError, match="control number"):
        validate_snils("112-233-445 96")


def test_it_rejects_a_snils_of_the_wrong_length():
    with pytest.raises(ValidationError, match="11 digits"):
        validate_snils("112-233-445")


def test_it_skips_the_checksum_for_the_low_numbers_that_have_none():
    validate_snils("001-001-997 00")


def test_it_accepts_a_16_digit_oms_policy():
    validate_oms("7700 0000 0000 0001")


@pytest.mark.parametrize("value", ["770000000000000", "77000000000000012", "77000000000000AB"])
def test_it_rejects_an_oms_policy_that_is_not_16_digits(value):
    with pytest.raises(ValidationError, match="16 digits"):
        validate_oms(value)
