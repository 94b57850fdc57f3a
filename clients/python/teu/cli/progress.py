"""Transfer progress on stderr: a live bar in a terminal, plain lines otherwise (logs, pipes, CI)."""

from __future__ import annotations

import sys
import time
from typing import BinaryIO, TextIO

from teu.cli import format as fmt


class Meter:
    """Counts bytes of one transfer and shows size, rate and (when known) a bar, at most 10 times a second."""

    def __init__(self, label: str, total: int = 0, out: TextIO | None = None) -> None:
        self.label, self.total, self.done = label, total, 0
        self.out = out or sys.stderr
        self.live = self.out.isatty()
        self.start = self._last = time.monotonic()

    def add(self, n: int) -> None:
        """Records ``n`` more bytes."""
        self.done += n
        now = time.monotonic()
        if self.live and now - self._last >= 0.1:
            self._last = now
            self.out.write("\r" + self.line(now) + "\x1b[K")
            self.out.flush()

    def line(self, now: float) -> str:
        """The progress as text."""
        rate = self.done / max(now - self.start, 1e-6)
        text = f"{self.label}: {fmt.size(self.done)}"
        if self.total:
            filled = int(20 * min(self.done / self.total, 1.0))
            text = f"{self.label}: [{'=' * filled}{' ' * (20 - filled)}] {fmt.size(self.done)}/{fmt.size(self.total)}"
        return f"{text} {fmt.size(int(rate))}/s"

    def finish(self, status: str = "done") -> None:
        """Ends the line (live) or prints the one summary line (not a terminal)."""
        now = time.monotonic()
        end = f"{self.line(now)} {status} in {now - self.start:.2f}s"
        self.out.write(("\r" + end + "\x1b[K\n") if self.live else end + "\n")
        self.out.flush()


class CountingReader:
    """A binary reader that reports what is read to a Meter."""

    def __init__(self, source: BinaryIO, meter: Meter) -> None:
        self.source, self.meter = source, meter

    def read(self, n: int = -1) -> bytes:
        """Reads like the wrapped file and counts."""
        data = self.source.read(n)
        self.meter.add(len(data))
        return data
