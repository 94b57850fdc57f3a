"""The form of a full container id."""

from __future__ import annotations

from teu_api.ids import is_full_id


def test_only_64_lowercase_hex_digits_are_a_full_id() -> None:
    assert is_full_id("0f" * 32)
    assert not any(is_full_id(t) for t in ("0f" * 31, "0f" * 33, "0F" * 32, "g" * 64, "web", "0f" * 32 + "\n", ""))
