"""Validators for typed patient identifiers; each type names one of these by key."""

import re

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from patients.normalize import normalize_identifier


def snils_checksum(digits: str) -> int:
    """Control number of a SNILS from its first nine digits (Pension Fund of Russia rules)."""
    total = sum(int(d) * (9 - i) for i, d in enumerate(digits[:9]))
    if total < 100:
        return total
    if total in (100, 101):
        return 0
    remainder = total % 101
    return 0 if remainder == 100 else remainder


def validate_snils(value: str) -> None:
    digits = normalize_identifier(value)
    if not re.fullmatch(r"\d{11}", digits):
        raise ValidationError(
            _("SNILS must have 11 digits, e.g. 112-233-445 95."), code="snils_format"
        )
    # Checksums are defined only for numbers above 001-001-998.
    if int(digits[:9]) > 1001998 and snils_checksum(digits) != int(digits[9:]):
        raise ValidationError(
            _("SNILS control number does not match; check the digits."), code="snils_checksum"
        )


def validate_oms(value: str) -> None:
    digits = normalize_identifier(value)
    if not re.fullmatch(r"\d{16}", digits):
        raise ValidationError(
            _("An OMS policy number of the unified type has 16 digits."), code="oms_format"
        )


def validate_none(value: str) -> None:
    if not normalize_identifier(value):
        raise ValidationError(_("Enter a value."), code="required")


VALIDATORS = {
    "none": validate_none,
    "snils": validate_snils,
    "oms": validate_oms,
}
