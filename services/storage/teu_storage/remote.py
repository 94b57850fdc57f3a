"""What registry pulls (pull.py) and pushes (push.py) share: remote references, progress, and running
a few blob transfers at a time.

What a caller may rely on: :func:`parse_remote` applies Docker's reference rules (refs.py) and
refuses what it cannot fetch (InvalidArgument); :func:`connect` gives a client that holds the
credentials for that reference's registry only; :func:`run_all` returns only once every transfer
has stopped, so no thread is left writing into the store after a failure.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import TypeVar

from teu_api.errors import Cancelled, InvalidArgument
from teu_storage import imagespec, refs
from teu_storage.credentials import Credentials
from teu_storage.distribution import Client

__all__ = ["CHUNK", "Aborted", "Emit", "Meter", "Progress", "Remote", "connect", "parse_remote", "run_all"]

CHUNK = 1 << 20
_CONCURRENCY = 3  # Docker's default for downloads: enough to fill a link, few enough to be polite
_REPORT_EVERY = 0.1  # seconds between progress messages of one blob

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Progress:
    """Progress of one blob (``digest``; empty for the image as a whole): bytes done of total, and what."""

    digest: str
    done: int
    total: int
    status: str


Emit = Callable[[Progress], None]


@dataclass(frozen=True)
class Remote:
    """A reference into a registry: ``repository`` on ``registry``, by ``tag`` and/or ``digest``."""

    registry: str  # as written: "localhost:5000"; Docker Hub is "docker.io"
    repository: str  # "app", "library/busybox"
    name: str  # the familiar name stored locally: "localhost:5000/app", "busybox"
    tag: str  # "" for a pull by digest alone
    digest: str  # "" unless "@sha256:..."

    @property
    def reference(self) -> str:
        """What the manifest is fetched by: the digest if there is one (it wins over a tag)."""
        return self.digest or self.tag

    @property
    def local_ref(self) -> str | None:
        """The stored reference ("name:tag") a pull tags; None for a pull by digest alone."""
        return f"{self.name}:{self.tag}" if self.tag else None

    def __str__(self) -> str:
        return f"{self.name}{':' + self.tag if self.tag else ''}{'@' + self.digest if self.digest else ''}"


def parse_remote(ref: str, *, allow_digest: bool) -> Remote:
    """Parses "[registry/]name[:tag][@sha256:...]" (Docker's rules: see refs.py).

    The registry and repository are as :func:`refs.split_name` gives them. InvalidArgument for a
    malformed reference, or a digest when ``allow_digest`` is False.
    """
    name_tag, at, digest = ref.partition("@")
    if at:
        if not allow_digest:
            raise InvalidArgument(f"cannot push to a digest reference: {ref}")
        if not imagespec.DIGEST.fullmatch(digest):
            raise InvalidArgument(f"invalid digest in reference (only sha256 is supported): {ref}")
    has_tag = name_tag.rfind(":") > name_tag.rfind("/")
    parsed = refs.parse(name_tag)
    tag = parsed.tag if has_tag or not at else ""
    registry, repository = refs.split_name(parsed.name)
    return Remote(registry, repository, parsed.name, tag, digest)


def connect(remote: Remote, insecure: bool, credentials: Credentials | None) -> Client:
    """The client of ``remote``'s registry, holding the credentials given for that registry only."""
    return Client(remote.registry, insecure=insecure, credentials=credentials)


class Aborted(Exception):
    """A sibling transfer failed: this one stops (its own cleanup runs), the sibling's error is reported."""


class Meter:
    """Throttled progress of one blob; raises Aborted once a sibling transfer failed."""

    def __init__(self, emit: Emit, digest: str, total: int, status: str, abort: threading.Event) -> None:
        self.emit, self.digest, self.total, self.status, self.abort = emit, digest, total, status, abort
        self.done = 0
        self._last = 0.0

    def add(self, n: int) -> None:
        """Counts ``n`` more bytes."""
        self.done += n
        self.report(force=self.done >= self.total)

    def report(self, force: bool = False) -> None:
        """Emits progress if it is time to (or ``force``)."""
        if self.abort.is_set():
            raise Aborted()
        now = time.monotonic()
        if force or now - self._last >= _REPORT_EVERY:
            self._last = now
            self.emit(Progress(self.digest, self.done, self.total, self.status))


def run_all(items: Sequence[T], work: Callable[[T, threading.Event], R]) -> list[R]:
    """``work(item, abort)`` for every item, _CONCURRENCY at a time; results in order.

    The first failure sets ``abort`` (transfers check it as they go) and is raised once every
    worker has stopped, so no thread is left writing into the store.
    """
    abort = threading.Event()
    results: dict[int, R] = {}
    error: BaseException | None = None

    def guarded(item: T) -> R:
        if abort.is_set():
            raise Aborted()
        return work(item, abort)

    with ThreadPoolExecutor(max_workers=_CONCURRENCY, thread_name_prefix="registry") as pool:
        futures: dict[Future[R], int] = {pool.submit(guarded, item): i for i, item in enumerate(items)}
        for future in as_completed(futures):
            try:
                results[futures[future]] = future.result()
            except BaseException as exc:  # re-raised below, once the others have stopped
                abort.set()
                if error is None or (isinstance(error, Aborted) and not isinstance(exc, Aborted)):
                    error = exc
    if error is not None:
        if isinstance(error, Aborted):  # pragma: no cover - only siblings raise it, after an error
            raise Cancelled("transfer aborted")
        raise error
    return [results[i] for i in range(len(items))]
