"""Reading a container's upper dir while the container changes it: nothing outside it is ever read."""

from __future__ import annotations

import io
import os
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from teu_api.errors import FailedPrecondition
from teu_storage import safefs, tarwriter
from teu_storage.imagespec import ImageConfig
from teu_storage.merged import Node, View
from teu_storage.storage import Storage

SECRET = b"HOST-SECRET-4f1c"  # content and (as a name) marker of the host's files


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A host directory the container must never see: one file whose name and content carry SECRET."""
    host = tmp_path / "host"
    host.mkdir()
    (host / SECRET.decode()).write_bytes(SECRET)
    (host / "shadow").write_bytes(SECRET)
    return host


@pytest.fixture
def up(storage: Storage, tars: Any, kit: Any) -> Path:
    """The upper dir of a snapshot of busybox holding /a/f, /d/shadow (decoy) and /d/sub/x."""
    image = kit.import_tar(storage, tars.busybox())
    storage.prepare_snapshot(kit.KEY, image.id)
    upper = Path(kit.upper(storage))
    (upper / "a").mkdir()
    (upper / "a/f").write_text("a")
    (upper / "d/sub").mkdir(parents=True)
    (upper / "d/shadow").write_text("decoy")
    (upper / "d/sub/x").write_text("x")
    return upper


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _outputs(storage: Storage, key: str) -> Iterator[tuple[str, Callable[[io.BytesIO], object]]]:
    """Every reader of a snapshot, each writing what it produced to the buffer it is given."""
    yield "export", lambda buf: storage.export(key, buf)
    yield "cp /", lambda buf: storage.copy_from(key, "/", buf)
    yield "cp /d", lambda buf: storage.copy_from(key, "/d", buf)
    yield "diff", lambda buf: buf.write(repr(storage.diff(key)).encode())
    yield "layer", lambda buf: tarwriter.write_layer(str(storage.snapshots.dir / key / "upper"), buf)


_ENTRIES = safefs.Dir.entries
_FD = safefs.Dir.fd
_OPEN_FILE = safefs.Dir.open_file


def _in_upper(d: safefs.Dir, rel: str) -> bool:
    """Whether ``d`` is directory ``rel`` of the upper dir (lower layers have no such directories)."""
    return d.rel == rel and (d.parent is not None or d.name.endswith("/upper"))


def _after_listing(monkeypatch: pytest.MonkeyPatch, rel: str, action: Callable[[], None]) -> None:
    """Runs ``action`` once, right after a walk lists upper directory ``rel`` (and before it lstats
    the entries)."""
    done = False

    def entries(self: safefs.Dir) -> list[os.DirEntry[str]]:
        nonlocal done
        out = _ENTRIES(self)
        if not done and _in_upper(self, rel):
            done = True
            action()
        return out

    monkeypatch.setattr(safefs.Dir, "entries", entries)


def _before_opening(monkeypatch: pytest.MonkeyPatch, rel: str, action: Callable[[], None]) -> None:
    """Runs ``action`` once, right before upper directory ``rel`` is first opened (after the listing
    of its parent saw a directory there)."""
    done = False

    def fd(self: safefs.Dir) -> int:
        nonlocal done
        if not done and _in_upper(self, rel):
            done = True
            action()
        return cast(int, _FD.fget(self))  # type: ignore[attr-defined]

    monkeypatch.setattr(safefs.Dir, "fd", property(fd))


def _before_open_file(monkeypatch: pytest.MonkeyPatch, name: str, action: Callable[[], None]) -> None:
    """Runs ``action`` once, right before file ``name`` is opened (after its lstat)."""
    done = False

    def open_file(self: safefs.Dir, base: str) -> tuple[int, os.stat_result]:
        nonlocal done
        if not done and base == name:
            done = True
            action()
        return _OPEN_FILE(self, base)

    monkeypatch.setattr(safefs.Dir, "open_file", open_file)


def _dir_to_symlink(up: Path, name: str, target: Path) -> Callable[[], None]:
    def swap() -> None:
        os.rename(up / name, up / f"{name}.real")
        os.symlink(target, up / name)

    return swap


def _restore(up: Path, name: str) -> None:
    os.unlink(up / name)
    os.rename(up / f"{name}.real", up / name)


def test_dir_swapped_for_symlink_before_descent_is_refused_not_followed(
    storage: Storage, kit: Any, up: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory replaced by a symlink to a host dir between the listing that saw a directory and
    the descent into it stops every reader with FailedPrecondition; nothing of the host dir is produced."""
    for what, run in _outputs(storage, kit.KEY):
        _before_opening(monkeypatch, "d", _dir_to_symlink(up, "d", outside))
        fds = _open_fds()
        buf = io.BytesIO()
        with pytest.raises(FailedPrecondition, match="/d changed while being read; stop the container first"):
            run(buf)
        assert SECRET not in buf.getvalue(), what
        assert _open_fds() == fds, what
        _restore(up, "d")


def test_dir_swapped_while_a_sibling_is_walked_is_refused(
    storage: Storage, kit: Any, up: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory replaced by a symlink while an earlier sibling is walked (after the directory was
    seen, and for a commit opened once already for its attributes) is refused when its turn comes."""
    for what, run in _outputs(storage, kit.KEY):
        if what in ("diff", "cp /d"):
            continue  # diff walks in on-disk order; cp /d never lists /a
        _after_listing(monkeypatch, "a", _dir_to_symlink(up, "d", outside))
        fds = _open_fds()
        buf = io.BytesIO()
        with pytest.raises(FailedPrecondition, match="/d changed while being read"):
            run(buf)
        assert SECRET not in buf.getvalue(), what
        assert _open_fds() == fds, what
        _restore(up, "d")


def test_symlink_to_a_host_dir_is_recorded_as_a_symlink(storage: Storage, kit: Any, up: Path, outside: Path) -> None:
    """A symlink to a host directory in the upper dir is written as a symlink by every reader, and cp
    through it resolves inside the container, where it leads nowhere."""
    os.symlink(outside, up / "hostdir")
    os.symlink("/", up / "root")
    for what, run in _outputs(storage, kit.KEY):
        buf = io.BytesIO()
        run(buf)
        assert SECRET not in buf.getvalue(), what
        if what in ("export", "cp /", "layer"):
            members = kit.tar_members(buf.getvalue())
            assert members["hostdir"].issym() and members["hostdir"].linkname == str(outside), what
            assert members["root"].issym() and members["root"].linkname == "/", what
    assert kit.tar_members(_copy(storage, kit.KEY, "/hostdir"))["hostdir"].issym()
    with pytest.raises(Exception, match="Could not find"):
        _copy(storage, kit.KEY, f"/hostdir/{SECRET.decode()}")
    assert SECRET not in _copy(storage, kit.KEY, "/root/d/shadow")  # the container's /d/shadow


def _copy(storage: Storage, key: str, path: str) -> bytes:
    buf = io.BytesIO()
    storage.copy_from(key, path, buf)
    return buf.getvalue()


def test_cp_path_swapped_while_being_resolved_is_refused(
    storage: Storage, kit: Any, up: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cp of /d/shadow where /d turns into a symlink to a host dir right after resolution looked it up
    fails with FailedPrecondition instead of reading the host's file of that name."""
    original = View.child
    swapped = False

    def child(self: View, parent: Node, name: str) -> Node | None:
        nonlocal swapped
        node = original(self, parent, name)
        if name == "d" and not swapped:
            swapped = True
            _dir_to_symlink(up, "d", outside)()
        return node

    monkeypatch.setattr(View, "child", child)
    fds = _open_fds()
    buf = io.BytesIO()
    with pytest.raises(FailedPrecondition, match="changed while being read"):
        storage.copy_from(kit.KEY, "/d/shadow", buf)
    assert SECRET not in buf.getvalue() and _open_fds() == fds


def test_fifo_swapped_for_a_file_does_not_block(storage: Storage, kit: Any, up: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A FIFO put in place of a regular file after its lstat is refused at once, not waited on."""

    def swap() -> None:
        os.unlink(up / "a/f")
        os.mkfifo(up / "a/f")

    for what, run in _outputs(storage, kit.KEY):
        if what in ("diff", "cp /d"):
            continue  # they open no file in /a
        if not (up / "a/f").is_file():
            os.unlink(up / "a/f")
            (up / "a/f").write_text("a")
        _before_open_file(monkeypatch, "f", swap)
        errors: list[BaseException] = []

        def target(run: Callable[[io.BytesIO], object] = run, errors: list[BaseException] = errors) -> None:
            try:
                run(io.BytesIO())
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        thread.join(timeout=10)
        assert not thread.is_alive(), f"{what} blocked on a FIFO"
        assert len(errors) == 1 and isinstance(errors[0], FailedPrecondition), (what, errors)
        assert "/a/f changed while being read" in str(errors[0])


def test_special_file_swapped_for_a_file_is_never_opened(
    storage: Storage, kit: Any, up: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A FIFO (or device node) put in place of a file is refused without being opened: a writer
    waiting on the FIFO stays blocked (opening a device has effects of its own, e.g. a watchdog)."""
    opened = threading.Event()
    tid: list[int] = []

    def writer() -> None:
        tid.append(threading.get_native_id())
        with open(up / "a/f", "wb"):  # returns only once someone opened the FIFO for reading
            opened.set()

    def swap() -> None:  # the FIFO, and a writer blocked in its open() before storage gets there
        os.unlink(up / "a/f")
        os.mkfifo(up / "a/f")
        threading.Thread(target=writer, daemon=True).start()
        for _ in range(500):
            if tid and Path(f"/proc/self/task/{tid[0]}/syscall").read_text().startswith("257 "):  # openat
                return
            threading.Event().wait(0.01)

    _before_open_file(monkeypatch, "f", swap)
    with pytest.raises(FailedPrecondition):
        storage.export(kit.KEY, io.BytesIO())
    assert not opened.wait(0.5), "storage opened the FIFO"
    with open(up / "a/f", "rb"):  # let the writer go
        assert opened.wait(5)


def test_file_swapped_for_a_symlink_is_refused(
    storage: Storage, kit: Any, up: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A regular file replaced by a symlink to a host file after its lstat is refused, never read."""

    def swap() -> None:
        os.unlink(up / "d/shadow")
        os.symlink(outside / "shadow", up / "d/shadow")

    for what, run in _outputs(storage, kit.KEY):
        if what == "diff":
            continue  # reads no file
        os.unlink(up / "d/shadow")
        (up / "d/shadow").write_text("decoy")
        _before_open_file(monkeypatch, "shadow", swap)
        buf = io.BytesIO()
        with pytest.raises(FailedPrecondition, match="/d/shadow changed while being read"):
            run(buf)
        assert SECRET not in buf.getvalue(), what


@pytest.mark.parametrize("when", ["after the listing", "before the open"])
def test_entries_removed_mid_walk_are_left_out(
    storage: Storage, kit: Any, up: Path, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    """Files and directories deleted after the listing that saw them are left out, as if deleted before."""

    def remove() -> None:
        os.unlink(up / "d/shadow")
        os.unlink(up / "d/sub/x")
        os.rmdir(up / "d/sub")

    if when == "after the listing":
        _after_listing(monkeypatch, "d", remove)
        assert kit.tar_names(_copy(storage, kit.KEY, "/d")) == ["d"]
    else:
        _before_open_file(monkeypatch, "shadow", lambda: os.unlink(up / "d/shadow"))
        assert kit.tar_names(_copy(storage, kit.KEY, "/d")) == ["d", "d/sub", "d/sub/x"]


def test_commit_of_a_swapped_dir_records_nothing(
    storage: Storage, kit: Any, up: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit whose walk meets a swapped directory fails and leaves no image behind."""
    before = {i.id for i in storage.list_images()}
    _before_opening(monkeypatch, "d", _dir_to_symlink(up, "d", outside))
    with pytest.raises(FailedPrecondition):
        storage.commit(kit.KEY, "leak:1", ImageConfig(), "", "")
    assert {i.id for i in storage.list_images()} == before
    assert os.listdir(storage.tmp) == []


def test_dir_handles_refuse_what_is_not_what_they_open(tmp_path: Path) -> None:
    """open_file takes regular files only, a Dir never opens a symlink or a file, names are one component."""
    (tmp_path / "f").write_text("f")
    os.mkfifo(tmp_path / "fifo")
    os.mkdir(tmp_path / "sub")
    os.symlink("sub", tmp_path / "link")
    os.mknod(tmp_path / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    with safefs.Dir.root(str(tmp_path)) as root:
        fd, st = root.open_file("f")
        os.close(fd)
        assert stat.S_ISREG(st.st_mode)
        for name in ("fifo", "sub", "link", "null"):
            with pytest.raises(FailedPrecondition, match=f"/{name} changed"):
                root.open_file(name)
        for name in ("link", "f"):
            with pytest.raises(FailedPrecondition):
                _ = root.child(name).fd
        with pytest.raises(FileNotFoundError):
            _ = root.child("gone").fd
        with pytest.raises(FailedPrecondition):
            root.readlink("f")
        assert root.readlink("link") == "sub"
        for bad in ("..", ".", "", "a/b"):
            with pytest.raises(ValueError):
                root.child(bad)
        assert root.lstat("gone") is None
    assert root._open == set()
