"""The benchmark's bookkeeping: alternation order, medians, and the ratio table."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from measure import Result, alternate
from report import table


def test_alternate_interleaves_after_warmup() -> None:
    """Contenders take turns (A B A B), after their warm-up runs, and every sample is kept."""
    calls: list[str] = []

    def sample(name: str) -> float:
        calls.append(name)
        return float(len(calls))

    r = alternate(Result("x"), {"a": lambda: sample("a"), "b": lambda: sample("b")}, runs=2, warmup=1)
    assert calls == ["a", "b", "a", "b", "a", "b"]
    assert r.samples == {"a": [3.0, 5.0], "b": [4.0, 6.0]}


def test_table_ratio_against_best_engine_not_raw_runtime() -> None:
    """The ratio compares Teu with the best engine; raw runtimes and n/a peers are shown, not compared."""
    r = Result("run", samples={"teu": [0.2, 0.1, 0.3], "podman": [0.1], "runc run": [0.01]}, na={"docker": "not installed"})
    text = table([r])
    assert "| run | 200.0 ms | n/a (not installed) | 100.0 ms | 10.0 ms | 2.00 | 100.0 ms – 300.0 ms |" in text
