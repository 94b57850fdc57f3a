"""Timing primitives: alternate contenders (A B A B ...) after a warm-up, keep every sample."""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

Sample = Callable[[], float]


@dataclass
class Result:
    """One scenario's samples per contender, in seconds (or a reason it could not run)."""

    scenario: str
    unit: str = "s"
    samples: dict[str, list[float]] = field(default_factory=dict)
    na: dict[str, str] = field(default_factory=dict)
    note: str = ""

    def median(self, who: str) -> float | None:
        """Median of ``who``'s samples."""
        s = self.samples.get(who)
        return statistics.median(s) if s else None


def timed(argv: list[str], env: dict[str, str] | None = None, stdout: int | None = subprocess.DEVNULL) -> float:
    """Seconds one command takes; raises if it fails."""
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=stdout, stderr=subprocess.PIPE)
    return time.perf_counter() - t0


def alternate(result: Result, contenders: dict[str, Sample], runs: int, warmup: int) -> Result:
    """Runs each contender ``warmup`` times, then ``runs`` rounds of one sample each, in turn."""
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    for _ in range(runs):
        for who, fn in contenders.items():
            result.samples.setdefault(who, []).append(fn())
    return result


def rss_pss_kib(pid: int) -> tuple[int, int]:
    """(Rss, Pss) of a process in KiB, from smaps_rollup."""
    values = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, rest = line.partition(":")
        values[key] = int(rest.split()[0])
    return values.get("Rss", 0), values.get("Pss", 0)


def pids_matching(*needles: bytes) -> list[int]:
    """Pids whose command line contains every needle."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if all(n in cmd for n in needles):
                found.append(int(proc.name))
    return found
