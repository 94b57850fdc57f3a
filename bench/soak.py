"""``make soak``: mixed load on a private engine while a random service is SIGKILLed every minute, then
a leak audit that must read zero.

Workers loop over run --rm, run -d + exec + logs + commit + rm -f; every ``--kill-every`` seconds one
of the four services (chosen at random) is SIGKILLed and the supervisor brings it back. Failures are
counted by kind: a call that was in flight when its service died may fail with UNAVAILABLE, nothing
else may. At the end every container is removed and the engine's host-side state is audited
(teu_engine.audit): mounts, runtime states, init processes, cgroups, bundles, snapshots, logs. The
exit status is 0 only if nothing leaked and no failure other than UNAVAILABLE occurred.

    .venv/bin/python bench/soak.py [--minutes 30] [--workers 6] [--kill-every 60]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from teu.client import Client, ContainerOptions
from teu.errors import TeuError
from teu.testing import PrivateEngine, wait_until
from teu_api.types.v1 import types_pb2
from teu_engine import audit

REPO = Path(__file__).resolve().parents[1]
SERVICES = ("runtime", "storage", "logs", "gateway")


class Tally:
    """Operations and failures, by kind, shared by the workers."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: collections.Counter[str] = collections.Counter()

    def add(self, key: str) -> None:
        with self.lock:
            self.counts[key] += 1


def one_round(c: Client, worker: int, i: int, tally: Tally) -> None:
    """One run --rm, then one long-lived container: exec, logs, commit, forced removal."""
    r = c.run(ContainerOptions(image="busybox", cmd=["echo", f"w{worker}-{i}"], remove=True, labels={"soak": "1"}))
    tally.add("run ok" if (r.exit_code, r.stdout) == (0, f"w{worker}-{i}\n".encode()) else "run WRONG")
    cid = c.run_detached(ContainerOptions(image="busybox", cmd=["sh", "-c", "echo up; sleep 30"], labels={"soak": "1"}))
    try:
        tally.add("exec ok" if c.exec_run(cid, ["echo", "hi"]).stdout == b"hi\n" else "exec WRONG")
        wait_until(lambda: [line.data for line in c.logs(cid)] == [b"up\n"], timeout=30, what="the log")
        tally.add("logs ok")
        image = c.commit(cid, f"soak/w{worker}:latest")
        tally.add("commit ok" if image.id else "commit WRONG")
    finally:
        c.remove(cid, force=True)


def worker(engine: PrivateEngine, n: int, stop: threading.Event, tally: Tally) -> None:
    """Rounds until ``stop``; each failure is counted by its error class."""
    i = 0
    with Client(engine.target) as c:
        while not stop.is_set():
            i += 1
            try:
                one_round(c, n, i, tally)
            except (TeuError, TimeoutError) as exc:
                tally.add(f"failed: {type(exc).__name__}")
                stop.wait(0.5)  # a service restarts: do not count one outage a thousand times


def killer(engine: PrivateEngine, every: float, stop: threading.Event, tally: Tally) -> None:
    """SIGKILLs a random service every ``every`` seconds."""
    while not stop.wait(every):
        name = random.choice(SERVICES)
        try:
            os.kill(engine.service_pid(name), signal.SIGKILL)
            tally.add(f"killed {name}")
        except (LookupError, ProcessLookupError):
            tally.add(f"kill missed {name}")


def settle(engine: PrivateEngine) -> dict[str, list[str]]:
    """Removes every soak container and image, then audits what the engine still holds."""
    with Client(engine.target) as c:
        wait_until(lambda: _answers(c), timeout=60, what="the engine")
        for summary in c.list(all=True):
            c.remove(summary.id, force=True)
        c.prune_images(all=True)
        wait_until(lambda: not leaks(engine), timeout=60)
        return leaks(engine)


def leaks(engine: PrivateEngine) -> dict[str, list[str]]:
    """What the engine holds on the host for containers it does not know any more (it should know none)."""
    return audit.leftovers(engine.root, engine.run_dir, set(), engine.service_pid("runtime"), engine.cgroup_parent)


def _answers(c: Client) -> bool:
    try:
        c.info()
        return True
    except TeuError:
        return False


def main() -> int:
    """Runs the soak and prints its tally and audit as JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--workers", type=int, default=6)
    ap.add_argument("--kill-every", type=float, default=60.0)
    a = ap.parse_args()
    tally, stop = Tally(), threading.Event()
    with tempfile.TemporaryDirectory(prefix="teu-soak-") as base, PrivateEngine(Path(base)) as engine:
        with Client(engine.target) as c, (REPO / "build" / "busybox.tar").open("rb") as f:
            c.import_image(f, "busybox", types_pb2.ImageConfig(cmd=["sh"]))
        threads = [threading.Thread(target=worker, args=(engine, n, stop, tally)) for n in range(a.workers)]
        threads.append(threading.Thread(target=killer, args=(engine, a.kill_every, stop, tally)))
        for t in threads:
            t.start()
        time.sleep(a.minutes * 60)
        stop.set()
        for t in threads:
            t.join()
        try:
            leaked = settle(engine)
        except TimeoutError:
            leaked = leaks(engine)
    bad = {k: v for k, v in tally.counts.items() if "WRONG" in k or (k.startswith("failed") and "Unavailable" not in k)}
    print(json.dumps({"tally": dict(sorted(tally.counts.items())), "leaks": leaked, "bad": bad}, indent=2))
    return 0 if not leaked and not bad else 1


if __name__ == "__main__":
    sys.exit(main())
