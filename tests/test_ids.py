from __future__ import annotations

import pytest

from parley.ids import MAX_ID, new_id, parse_id


def test_a_minted_id_reads_back() -> None:
    minted = new_id()
    assert parse_id(str(minted)) == minted and parse_id(minted) == minted


@pytest.mark.parametrize("value", ["", " 1", "1_000", "-1", "1.0", "²", "١٢", str(MAX_ID + 1), "9" * 32, True, None, 1.0, [1]])
def test_what_cannot_be_an_id_is_none(value: object) -> None:
    assert parse_id(value) is None


def test_the_largest_id() -> None:
    assert parse_id(str(MAX_ID)) == MAX_ID
