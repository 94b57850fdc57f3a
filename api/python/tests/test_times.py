"""Docker's time and duration spellings."""

from __future__ import annotations

import pytest

from teu_api.errors import InvalidArgument
from teu_api.times import duration_ns, time_ns

NOW = 1_800_000_000 * 10**9


def test_durations_and_times() -> None:
    assert duration_ns("1m30s") == 90 * 10**9 and duration_ns("500ms") == 500_000_000 and duration_ns("2d") == 2 * 86400 * 10**9
    assert time_ns("10m", NOW) == NOW - 600 * 10**9 and time_ns("1h30m", NOW) == NOW - 5400 * 10**9
    assert time_ns("1700000000", NOW) == 1_700_000_000 * 10**9
    assert time_ns("2026-11-30T10:00:00Z", NOW) == time_ns("2026-11-30T11:00:00+01:00", NOW)
    for bad in ("soon", "10x", "", "1m30"):
        with pytest.raises(InvalidArgument):
            time_ns(bad, NOW) if bad else duration_ns(bad)
