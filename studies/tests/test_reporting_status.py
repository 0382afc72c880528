"""The reading status machine: unread → in progress → preliminary → final → amended."""

import pytest
from django.core.exceptions import ValidationError

from studies.models import ReadingStatus as S
from studies.reporting.status import can_transition, check_transition, status_after_signing

ALLOWED = [
    (S.UNREAD, S.IN_PROGRESS),
    (S.IN_PROGRESS, S.UNREAD),
    (S.IN_PROGRESS, S.PRELIMINARY),
    (S.IN_PROGRESS, S.FINAL),
    (S.PRELIMINARY, S.FINAL),
    (S.FINAL, S.AMENDED),
    (S.AMENDED, S.AMENDED),
]


@pytest.mark.parametrize("current,target", ALLOWED)
def test_allowed_moves(current, target):
    assert can_transition(current, target)
    check_transition(current, target)


def test_every_other_move_is_refused_with_a_message():
    allowed = set(ALLOWED) | {(S.PRELIMINARY, S.PRELIMINARY)}
    for current in S:
        for target in S:
            if (current, target) in allowed:
                continue
            with pytest.raises(ValidationError, match="cannot change from"):
                check_transition(current, target)


def test_a_signed_reading_never_returns_to_unread():
    for current in (S.PRELIMINARY, S.FINAL, S.AMENDED):
        assert not can_transition(current, S.UNREAD)
        assert not can_transition(current, S.IN_PROGRESS)


@pytest.mark.parametrize(
    "current,preliminary,amendment,expected",
    [
        (S.IN_PROGRESS, False, False, S.FINAL),
        (S.IN_PROGRESS, True, False, S.PRELIMINARY),
        (S.PRELIMINARY, False, True, S.FINAL),
        (S.FINAL, False, True, S.AMENDED),
        (S.AMENDED, False, True, S.AMENDED),
    ],
)
def test_status_after_signing(current, preliminary, amendment, expected):
    assert status_after_signing(current, preliminary=preliminary, amendment=amendment) == expected


def test_a_final_reading_cannot_be_signed_again_as_preliminary():
    with pytest.raises(ValidationError):
        status_after_signing(S.FINAL, preliminary=True, amendment=True)
