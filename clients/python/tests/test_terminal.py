"""The CLI's local terminal handling: detach keys, the detach scanner, raw mode."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from collections.abc import Iterator

import pytest

from teu.cli.main import build_parser
from teu.cli.terminal import DetachScanner, parse_detach_keys, raw_mode, window_size

CTRL_P, CTRL_Q = b"\x10", b"\x11"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("ctrl-p,ctrl-q", CTRL_P + CTRL_Q),
        ("", CTRL_P + CTRL_Q),
        ("ctrl-@,ctrl-a,ctrl-z", b"\x00\x01\x1a"),
        ("ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_", b"\x1b\x1c\x1d\x1e\x1f"),
        ("ctrl-\\\\", b"\x1c"),
        ("ctrl-P,ctrl-Q", CTRL_P + CTRL_Q),
        ("a,b", b"ab"),
        ("ctrl-x,DEL", b"\x18\x7f"),
    ],
)
def test_detach_keys_parse(spec: str, expected: bytes) -> None:
    """Docker's names of the detach keys become their control bytes."""
    assert parse_detach_keys(spec) == expected


@pytest.mark.parametrize("spec", ["ctrl-", "ctrl-pp", "ctrl-1", "foo", "ctrl-p,,ctrl-q", ",", "é", "alt-p"])
def test_detach_keys_invalid(spec: str) -> None:
    """Anything but a single ASCII character, DEL or ctrl-<key> is rejected."""
    with pytest.raises(ValueError):
        parse_detach_keys(spec)


def feed_all(scanner: DetachScanner, reads: list[bytes]) -> tuple[bytes, bool]:
    """Feeds reads one by one until a detach; returns what was forwarded and whether it detached."""
    out = b""
    for data in reads:
        forwarded, detach = scanner.feed(data)
        out += forwarded
        if detach:
            return out, True
    return out, False


def test_scanner_full_sequence_detaches() -> None:
    """The whole sequence detaches; what came before it is forwarded, the keys themselves are not."""
    assert feed_all(DetachScanner(CTRL_P + CTRL_Q), [b"ls\r" + CTRL_P + CTRL_Q + b"after"]) == (b"ls\r", True)


def test_scanner_partial_then_other_bytes_forwards_all() -> None:
    """A partial sequence followed by other input is forwarded intact, in order."""
    assert feed_all(DetachScanner(CTRL_P + CTRL_Q), [b"a" + CTRL_P, b"x", b"b"]) == (b"a" + CTRL_P + b"xb", False)


def test_scanner_holds_partial_until_decided() -> None:
    """The first detach key is held back until the next byte shows whether it is a detach."""
    scanner = DetachScanner(CTRL_P + CTRL_Q)
    assert scanner.feed(CTRL_P) == (b"", False)
    assert scanner.feed(b"z") == (CTRL_P + b"z", False)


def test_scanner_sequence_split_across_reads() -> None:
    """The sequence is found when each key arrives in its own read (keystrokes)."""
    assert feed_all(DetachScanner(CTRL_P + CTRL_Q), [b"echo", CTRL_P, CTRL_Q]) == (b"echo", True)


def test_scanner_repeated_first_key() -> None:
    """ctrl-p ctrl-p ctrl-q forwards one ctrl-p and detaches on the rest."""
    assert feed_all(DetachScanner(CTRL_P + CTRL_Q), [CTRL_P, CTRL_P, CTRL_Q]) == (CTRL_P, True)


def test_scanner_overlapping_sequence() -> None:
    """A self-overlapping sequence (a,a,b) is still found after a false start (a,a,a,b)."""
    assert feed_all(DetachScanner(b"aab"), [b"xaaab"]) == (b"xa", True)


def test_scanner_binary_without_keys_passes() -> None:
    """Bytes that hold no detach key pass unchanged; an empty sequence never detaches."""
    data = bytes(b for b in range(256) if b != 0x10)
    assert DetachScanner(CTRL_P + CTRL_Q).feed(data) == (data, False)
    assert DetachScanner(b"").feed(CTRL_P + CTRL_Q) == (CTRL_P + CTRL_Q, False)


@pytest.fixture()
def pty_pair() -> Iterator[tuple[int, int]]:
    """A pseudo-terminal (master, slave), closed afterwards."""
    master, slave = pty.openpty()
    yield master, slave
    os.close(master)
    os.close(slave)


def test_raw_mode_set_then_restored_after_exception(pty_pair: tuple[int, int]) -> None:
    """Inside raw_mode the terminal has no echo, no line editing and no signals; an exception restores it."""
    _, slave = pty_pair
    before = termios.tcgetattr(slave)
    with pytest.raises(RuntimeError), raw_mode(slave):
        lflag = termios.tcgetattr(slave)[3]
        assert not lflag & (termios.ECHO | termios.ICANON | termios.ISIG)
        raise RuntimeError("boom")
    assert termios.tcgetattr(slave) == before


def test_window_size_of_first_terminal(pty_pair: tuple[int, int]) -> None:
    """The size comes from the first fd that is a terminal; none is None."""
    master, slave = pty_pair
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 111, 0, 0))
    r, w = os.pipe()
    try:
        assert window_size(r, slave) == (33, 111)
        assert window_size(r) is None
    finally:
        os.close(r)
        os.close(w)


def test_parser_attach_and_exec_flags() -> None:
    """attach takes Docker's --sig-proxy=false and --detach-keys; exec keeps the command's own flags."""
    a = build_parser().parse_args(["attach", "--sig-proxy=false", "--detach-keys", "ctrl-a", "--no-stdin", "web"])
    assert (a.sig_proxy, a.detach_keys, a.no_stdin, a.container) == (False, "ctrl-a", True, "web")
    assert build_parser().parse_args(["attach", "--sig-proxy", "web"]).sig_proxy is True
    e = build_parser().parse_args(["exec", "-it", "-e", "K=V", "-u", "nobody", "-w", "/tmp", "w", "ls", "-l", "-e"])
    assert (e.interactive, e.tty, e.env, e.user, e.workdir, e.container, e.command) == (
        True, True, ["K=V"], "nobody", "/tmp", "w", ["ls", "-l", "-e"]
    )  # fmt: skip
    r = build_parser().parse_args(["run", "-it", "--rm", "--detach-keys=ctrl-x,x", "busybox", "sh"])
    assert (r.interactive, r.tty, r.rm, r.detach_keys, r.sig_proxy, r.command) == (True, True, True, "ctrl-x,x", True, ["sh"])


def test_invalid_detach_keys_one_line_exit_1() -> None:
    """Invalid --detach-keys is one error line and exit 1, before the engine is contacted."""
    env = {**os.environ, "TEU_HOST": "unix:/nonexistent/teu.sock"}
    for argv in (["attach", "--detach-keys", "ctrl-pp", "w"], ["run", "-it", "--detach-keys=bogus", "busybox"]):
        p = subprocess.run([sys.executable, "-m", "teu.cli", *argv], capture_output=True, env=env, timeout=30)
        assert p.returncode == 1, p.stderr
        lines = p.stderr.decode().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: Invalid detach keys"), lines
