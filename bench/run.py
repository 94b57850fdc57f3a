"""``make bench``: Teu side by side with podman and the raw OCI runtimes, alternating A B A B.

    .venv/bin/python bench/run.py [--quick]

Prints one Markdown table (Teu's median, each peer's, Teu/best-peer ratio, Teu's min-max) and writes
every sample to bench/results/<date>.json plus a PNG of the ratios. A scenario whose Teu feature is
not built yet is reported as n/a, never skipped silently. Timings never fail anything.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import peers
from measure import Result, alternate, pids_matching, rss_pss_kib, timed
from report import save, table

from teu.testing import PrivateEngine

REPO = Path(__file__).resolve().parents[1]
IMAGE_TAR = REPO / "build" / "busybox.tar"
TEU = str(REPO / ".venv" / "bin" / "teu")
LINE = b"x" * 99  # 100 bytes with the newline


class Bench:
    """Holds the contenders' set-ups for one run."""

    def __init__(self, base: Path, quick: bool) -> None:
        self.base, self.quick = base, quick
        self.engine = PrivateEngine(base / "teu").start()
        self.env = self.engine.env()
        subprocess.run(
            [TEU, "import", "-c", 'CMD ["sh"]', str(IMAGE_TAR), "busybox"], env=self.env, check=True, capture_output=True
        )
        self.podman: peers.Podman | None = None
        self.podman_why = "podman not installed"
        if peers.available("podman"):
            self.podman = peers.Podman(base / "podman")
            self.podman.setup(IMAGE_TAR)

    def teu(self, *args: str) -> list[str]:
        """argv of the teu CLI."""
        return [TEU, *args]

    def pod(self, *args: str) -> list[str]:
        """argv of the private podman."""
        assert self.podman
        return [*self.podman.argv(), *args]

    def pod_env(self) -> dict[str, str]:
        """Environment of the private podman."""
        assert self.podman
        import os

        return {**os.environ, **self.podman.conf()}

    def close(self) -> None:
        """Stops Teu and resets podman."""
        self.engine.stop()
        if self.podman:
            self.podman.cleanup()


def s1_run_true(b: Bench) -> Result:
    """`run --rm IMAGE true` end to end from the CLI, and the raw OCI runtime."""
    r = Result("run --rm true (CLI)")
    c = {"teu": lambda: timed(b.teu("run", "--rm", "busybox", "true"), b.env)}
    if b.podman:
        c["podman"] = lambda: timed(b.pod("run", "--rm", "--network", "none", "busybox", "true"), b.pod_env())
    else:
        r.na["podman"] = b.podman_why
    bundle = peers.oci_bundle(b.base, IMAGE_TAR, "runc")
    c["runc run"] = lambda: timed(
        ["runc", "--root", str(b.base / "runc-root"), "run", "--bundle", str(bundle), f"bench{time.monotonic_ns()}"]
    )
    ok, why = peers.crun_works_here()
    if ok:
        cb = peers.oci_bundle(b.base, IMAGE_TAR, "crun")
        c["crun run"] = lambda: timed(
            ["crun", "--root", str(b.base / "crun-root"), "run", "--bundle", str(cb), f"bench{time.monotonic_ns()}"]
        )
    else:
        r.na["crun run"] = why
    return alternate(r, c, runs=8 if b.quick else 20, warmup=3)


def _parallel(argvs: list[list[str]], env: dict[str, str], workers: int = 10) -> float:
    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda a: subprocess.run(a, env=env, check=True, capture_output=True), argvs))
    return time.perf_counter() - t0


def s2_many_detached(b: Bench) -> list[Result]:
    """N detached `sleep 300`, 10 at a time: time until all run; memory at rest; then `rm -f` of all."""
    n = 20 if b.quick else 50
    start, remove = Result(f"{n} x run -d sleep, 10 parallel"), Result(f"rm -f of {n}")
    mon, mon_pss, daemons = (
        Result("monitor RSS per container", "MiB"),
        Result("monitor PSS per container", "MiB"),
        Result("engine RSS at rest", "MiB"),
    )
    engines = [("teu", b.teu, b.env)] + ([("podman", b.pod, b.pod_env())] if b.podman else [])
    for round_ in range(1 if b.quick else 3):
        for who, argv, env in engines:
            names = [f"b{round_}-{who}-{i}" for i in range(n)]
            start.samples.setdefault(who, []).append(
                _parallel([argv("run", "-d", "--name", nm, "busybox", "sleep", "300") for nm in names], env)
            )
            if round_ == 0:
                marker = str(b.engine.run_dir).encode() if who == "teu" else str(b.base / "podman").encode()
                conmons = pids_matching(b"conmon", marker)
                sizes = [rss_pss_kib(p) for p in conmons]
                mon.samples[who] = [sum(s[0] for s in sizes) / len(sizes) / 1024] if sizes else []
                mon_pss.samples[who] = [sum(s[1] for s in sizes) / len(sizes) / 1024] if sizes else []
                if who == "teu":
                    daemons.samples[who] = [
                        sum(rss_pss_kib(b.engine.service_pid(s))[0] for s in ("gateway", "runtime", "storage", "logs")) / 1024
                    ]
                else:
                    daemons.na[who] = "podman has no daemon"
            remove.samples.setdefault(who, []).append(_parallel([argv("rm", "-f", nm) for nm in names], env))
    mon.note = mon_pss.note = f"{n} idle containers"
    return [start, remove, mon, mon_pss, daemons]


def _verify(out: Path, lines: int) -> None:
    data = out.read_bytes()
    if data != (LINE + b"\n") * lines:
        raise SystemExit(f"output mismatch: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()[:12]}")


def s4_logs(b: Bench) -> list[Result]:
    """A container writes N lines of 100 bytes: time to exit, `logs` read-back, attached run; every byte checked."""
    lines = 100_000 if b.quick else 1_000_000
    mb = lines * 100 // 1_000_000
    script = f"yes {LINE.decode()} | head -n {lines}"
    to_exit, read_back, attached = (
        Result(f"logs: run -d {mb} MB until exit"),
        Result(f"logs: read back {mb} MB"),
        Result(f"attached run of {mb} MB"),
    )
    out = b.base / "out.bin"
    engines = [("teu", b.teu, b.env)] + ([("podman", b.pod, b.pod_env())] if b.podman else [])
    for round_ in range(1 if b.quick else 3):
        for who, argv, env in engines:
            name = f"log{round_}{who}"
            t0 = time.perf_counter()
            subprocess.run(
                argv("run", "-d", "--name", name, "busybox", "sh", "-c", script), env=env, check=True, capture_output=True
            )
            subprocess.run(argv("wait", name), env=env, check=True, capture_output=True)
            to_exit.samples.setdefault(who, []).append(time.perf_counter() - t0)
            with out.open("wb") as f:
                read_back.samples.setdefault(who, []).append(timed(argv("logs", name), env, stdout=f.fileno()))
            _verify(out, lines)
            subprocess.run(argv("rm", "-f", name), env=env, check=True, capture_output=True)
            with out.open("wb") as f:
                attached.samples.setdefault(who, []).append(
                    timed(argv("run", "--rm", "busybox", "sh", "-c", script), env, stdout=f.fileno())
                )
            _verify(out, lines)
    return [to_exit, read_back, attached]


def s5_filesystem(b: Bench) -> list[Result]:
    """Image and filesystem operations: import of a ~100 MB rootfs tar; the rest is not built yet."""
    big = b.base / "big.tar"
    root = b.base / "bigroot"
    subprocess.run(["tar", "-xf", str(IMAGE_TAR), "-C", str(root)] if root.mkdir() is None else [], check=True)
    (root / "data").mkdir()
    for i in range(10 if b.quick else 100):
        (root / "data" / f"f{i}").write_bytes(__import__("os").urandom(1 << 20))
    subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(big), "."], check=True)
    imp = Result(f"import {big.stat().st_size // 1_000_000} MB rootfs tar")
    c = {"teu": lambda: timed(b.teu("import", str(big), "bigimg"), b.env)}
    if b.podman:
        c["podman"] = lambda: timed(b.pod("import", str(big), "bigimg"), b.pod_env())
    alternate(imp, c, runs=2 if b.quick else 5, warmup=1)
    results = [imp]
    for op in ("diff after 1000 files", "commit", "export", "save"):
        r = Result(op)
        r.na["teu"] = "not built yet (issue 4)"
        results.append(r)
    return results


def s6_scale(b: Bench) -> list[Result]:
    """`ps -a` and `inspect` latency with 0, 100 and 500 containers present (created, not running)."""
    sizes = (0, 50) if b.quick else (0, 100, 500)
    results = []
    engines = [("teu", b.teu, b.env)] + ([("podman", b.pod, b.pod_env())] if b.podman else [])
    present = 0
    for size in sizes:
        for _, argv, env in engines:
            _parallel([argv("create", "--name", f"s{i}", "busybox", "true") for i in range(present, size)], env, workers=4)
        present = size
        ps, insp = Result(f"ps -a with {size} containers"), Result(f"inspect with {size} containers")
        subprocess.run(b.teu("create", "--name", "probe", "busybox", "true"), env=b.env, check=True, capture_output=True)
        if b.podman:
            b.podman.run(["create", "--name", "probe", "busybox", "true"])
        alternate(ps, {w: (lambda a=a, e=e: timed(a("ps", "-a"), e)) for w, a, e in engines}, runs=5, warmup=1)
        alternate(insp, {w: (lambda a=a, e=e: timed(a("inspect", "probe"), e)) for w, a, e in engines}, runs=5, warmup=1)
        for _, argv, env in engines:
            subprocess.run(argv("rm", "probe"), env=env, check=True, capture_output=True)
        results += [ps, insp]
    return results


def main() -> None:
    """Runs every scenario and reports."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="about 2 minutes, smaller sizes")
    parser.add_argument("--only", default="", help="comma-separated scenario numbers, e.g. 1,4")
    args = parser.parse_args()
    wanted = set(args.only.split(",")) - {""}
    base = Path(tempfile.mkdtemp(prefix="teu-bench-"))
    bench = Bench(base, args.quick)
    results: list[Result] = []
    try:
        for num, fn in (("1", s1_run_true), ("2", s2_many_detached), ("4", s4_logs), ("5", s5_filesystem), ("6", s6_scale)):
            if wanted and num not in wanted:
                continue
            print(f"scenario {num}: {fn.__doc__}", file=sys.stderr, flush=True)
            out = fn(bench)
            results += out if isinstance(out, list) else [out]
    finally:
        bench.close()
        shutil.rmtree(base, ignore_errors=True)
    print(table(results))
    path = save(results, REPO / "bench" / "results", {"quick": args.quick, "argv": sys.argv})
    print(f"\nsamples: {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
