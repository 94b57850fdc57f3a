"""``make bench``: Teu side by side with podman and the raw OCI runtimes, alternating A B A B.

    .venv/bin/python bench/run.py [--quick]

Prints one Markdown table (Teu's median, each peer's, Teu/best-peer ratio, Teu's min-max) and writes
every sample to bench/results/<date>.json plus a PNG of the ratios. A scenario whose Teu feature is
not built yet is reported as n/a, never skipped silently. Timings never fail anything.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import pty
import select
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import peers
from measure import Result, alternate, pids_matching, rss_pss_kib, timed
from report import save, table

from teu.client import Client, ContainerOptions
from teu.testing import PrivateEngine, cri_tool, import_pause, wait_until
from teu_api.types.v1 import types_pb2

REPO = Path(__file__).resolve().parents[1]
IMAGE_TAR = REPO / "build" / "busybox.tar"
TEU = str(REPO / ".venv" / "bin" / "teu")
LINE = b"x" * 99  # 100 bytes with the newline


@dataclass
class Engine:
    """One contender driven through its CLI."""

    name: str
    argv: Callable[..., list[str]]
    env: dict[str, str]
    run_flags: tuple[str, ...] = ()

    def cmd(self, *args: str) -> list[str]:
        """argv of a subcommand (``run`` gets the engine's no-network flags)."""
        extra = self.run_flags if args and args[0] in ("run", "create") else ()
        return self.argv(args[0], *extra, *args[1:]) if args else self.argv()


class Bench:
    """Holds the contenders' set-ups for one run."""

    def __init__(self, base: Path, quick: bool) -> None:
        self.base, self.quick = base, quick
        self.engine = PrivateEngine(base / "teu").start()
        env = self.engine.env()
        subprocess.run([TEU, "import", "-c", 'CMD ["sh"]', str(IMAGE_TAR), "busybox"], env=env, check=True, capture_output=True)
        self.teu = Engine("teu", lambda *a: [TEU, *a], env)
        self.engines = [self.teu]
        self.missing: dict[str, str] = {}
        self.podman: peers.Podman | None = None
        self.docker: peers.Docker | None = None
        if peers.available("podman"):
            self.podman = peers.Podman(base / "podman")
            self.podman.setup(IMAGE_TAR)
            pod = self.podman
            self.engines.append(
                Engine("podman", lambda *a: [*pod.argv(), *a], {**os.environ, **pod.conf()}, ("--network", "none"))
            )
        else:
            self.missing["podman"] = "podman not installed"
        if Path("/usr/sbin/dockerd").exists():
            self.docker = peers.Docker(base / "docker")
            try:
                self.docker.setup(IMAGE_TAR)
                dock = self.docker
                self.engines.append(Engine("docker", lambda *a: [*dock.argv(), *a], dict(os.environ), ("--network", "none")))
            except (RuntimeError, subprocess.CalledProcessError) as exc:
                self.missing["docker"] = f"dockerd did not start: {exc}"
        else:
            self.missing["docker"] = "docker.io not installed"

    def result(self, scenario: str, unit: str = "s") -> Result:
        """A result that already names the peers that could not run."""
        return Result(scenario, unit, na=dict(self.missing))

    def close(self) -> None:
        """Stops Teu and the peers."""
        self.engine.stop()
        if self.podman:
            self.podman.cleanup()
        if self.docker:
            self.docker.cleanup()


def s1_run_true(b: Bench) -> Result:
    """`run --rm IMAGE true` end to end from the CLI, and the raw OCI runtime."""
    r = b.result("run --rm true (CLI)")
    c: dict[str, Callable[[], float]] = {
        e.name: (lambda e=e: timed(e.cmd("run", "--rm", "busybox", "true"), e.env)) for e in b.engines
    }
    bundle = peers.oci_bundle(b.base, IMAGE_TAR, "runc")
    runc_root = str(b.base / "runc-root")
    c["runc run"] = lambda: timed(["runc", "--root", runc_root, "run", "--bundle", str(bundle), f"b{time.monotonic_ns()}"])
    ok, why = peers.crun_works_here()
    if ok:
        cb, crun_root = peers.oci_bundle(b.base, IMAGE_TAR, "crun"), str(b.base / "crun-root")
        c["crun run"] = lambda: timed(["crun", "--root", crun_root, "run", "--bundle", str(cb), f"b{time.monotonic_ns()}"])
    else:
        r.na["crun run"] = why
    return alternate(r, c, runs=8 if b.quick else 20, warmup=3)


def s3_confinement(b: Bench) -> Result:
    """`run --rm true` with the default confinement (seccomp profile, capabilities) and without it:
    what confinement costs Teu, side by side with what it costs podman (which applies the same profile)."""
    r = b.result("run --rm true: default vs seccomp=unconfined")
    c: dict[str, Callable[[], float]] = {}
    for e in b.engines:
        if e.name == "docker":
            r.na["docker"] = "not measured"
            continue
        c[e.name] = lambda e=e: timed(e.cmd("run", "--rm", "busybox", "true"), e.env)
        c[f"{e.name} unconfined"] = lambda e=e: timed(
            e.cmd("run", "--rm", "--security-opt", "seccomp=unconfined", "busybox", "true"), e.env
        )
    return alternate(r, c, runs=8 if b.quick else 20, warmup=3)


def _parallel(argvs: list[list[str]], env: dict[str, str], workers: int = 10) -> float:
    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda a: subprocess.run(a, env=env, check=True, capture_output=True), argvs))
    return time.perf_counter() - t0


def _monitors(b: Bench, e: Engine) -> list[int]:
    if e.name == "teu":
        return pids_matching(b"conmon", str(b.engine.run_dir).encode())
    if e.name == "podman":
        return pids_matching(b"conmon", str(b.base / "podman").encode())
    return pids_matching(b"containerd-shim", str(b.base / "docker").encode())


def s2_many_detached(b: Bench) -> list[Result]:
    """N detached `sleep 300`, 10 at a time: time until all run; memory at rest; then `rm -f` of all."""
    n = 20 if b.quick else 50
    start, remove = b.result(f"{n} x run -d sleep, 10 parallel"), b.result(f"rm -f of {n}")
    mon, mon_pss = b.result("monitor RSS per container", "MiB"), b.result("monitor PSS per container", "MiB")
    daemons = b.result("engine daemons RSS at rest", "MiB")
    daemons_pss = b.result("engine daemons PSS at rest (shared pages counted once)", "MiB")
    floor = b.result("4 x (python3 + import grpc) RSS: the four services' floor", "MiB")
    for round_ in range(1 if b.quick else 3):
        for e in b.engines:
            names = [f"b{round_}-{e.name}-{i}" for i in range(n)]
            start.samples.setdefault(e.name, []).append(
                _parallel([e.cmd("run", "-d", "--name", nm, "busybox", "sleep", "300") for nm in names], e.env)
            )
            if round_ == 0:
                sizes = [rss_pss_kib(p) for p in _monitors(b, e)]
                if sizes:
                    mon.samples[e.name] = [sum(x[0] for x in sizes) / len(sizes) / 1024]
                    mon_pss.samples[e.name] = [sum(x[1] for x in sizes) / len(sizes) / 1024]
                if e.name == "teu":
                    services = [b.engine.service_pid(s) for s in ("gateway", "runtime", "storage", "logs")]
                    daemons.samples["teu"] = [sum(rss_pss_kib(p)[0] for p in services) / 1024]
                    daemons_pss.samples["teu"] = [sum(rss_pss_kib(p)[1] for p in services) / 1024]
                    floor.samples["teu"] = [4 * _grpc_floor_kib() / 1024]
                elif e.name == "docker" and b.docker and b.docker.proc:
                    pids = [b.docker.proc.pid, *pids_matching(b"containerd", str(b.base / "docker").encode())]
                    daemons.samples["docker"] = [sum(rss_pss_kib(p)[0] for p in set(pids) if p not in _monitors(b, e)) / 1024]
                    daemons_pss.samples["docker"] = [sum(rss_pss_kib(p)[1] for p in set(pids) if p not in _monitors(b, e)) / 1024]
                else:
                    daemons.na[e.name] = daemons_pss.na[e.name] = "no daemon"
            remove.samples.setdefault(e.name, []).append(_parallel([e.cmd("rm", "-f", nm) for nm in names], e.env))
    mon.note = mon_pss.note = f"{n} idle containers"
    floor.na = {e.name: "a Teu reference line" for e in b.engines if e.name != "teu"}
    return [start, remove, mon, mon_pss, daemons, daemons_pss, floor]


def _grpc_floor_kib() -> int:
    """RSS of a bare interpreter that imported grpc: what each Python gRPC service holds before any
    code of its own (the shared libraries' pages count in every process's RSS, once in PSS)."""
    code = "import grpc, re; print(re.search(r'VmRSS:\\s+(\\d+)', open('/proc/self/status').read())[1])"
    return int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def _verify(out: Path, lines: int) -> None:
    data = out.read_bytes()
    if data != (LINE + b"\n") * lines:
        raise SystemExit(f"output mismatch: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()[:12]}")


def s4_logs(b: Bench) -> list[Result]:
    """A container writes N lines of 100 bytes: time to exit, `logs` read-back, attached run; every byte checked."""
    lines = 100_000 if b.quick else 1_000_000
    mb = lines * 100 // 1_000_000
    script = f"yes {LINE.decode()} | head -n {lines}"
    to_exit, read_back = b.result(f"logs: run -d {mb} MB until exit"), b.result(f"logs: read back {mb} MB")
    attached = b.result(f"attached run of {mb} MB")
    out = b.base / "out.bin"
    for round_ in range(1 if b.quick else 3):
        for e in b.engines:
            name = f"log{round_}{e.name}"
            t0 = time.perf_counter()
            subprocess.run(
                e.cmd("run", "-d", "--name", name, "busybox", "sh", "-c", script), env=e.env, check=True, capture_output=True
            )
            subprocess.run(e.cmd("wait", name), env=e.env, check=True, capture_output=True)
            to_exit.samples.setdefault(e.name, []).append(time.perf_counter() - t0)
            with out.open("wb") as f:
                read_back.samples.setdefault(e.name, []).append(timed(e.cmd("logs", name), e.env, stdout=f.fileno()))
            _verify(out, lines)
            subprocess.run(e.cmd("rm", "-f", name), env=e.env, check=True, capture_output=True)
            with out.open("wb") as f:
                attached.samples.setdefault(e.name, []).append(
                    timed(e.cmd("run", "--rm", "busybox", "sh", "-c", script), e.env, stdout=f.fileno())
                )
            _verify(out, lines)
    return [to_exit, read_back, attached]


def s5_filesystem(b: Bench) -> list[Result]:
    """Image and filesystem operations: import of a ~100 MB rootfs tar; diff, commit, export after 1000 files; save."""
    big, root = b.base / "big.tar", b.base / "bigroot"
    root.mkdir()
    subprocess.run(["tar", "-xf", str(IMAGE_TAR), "-C", str(root)], check=True)
    (root / "data").mkdir()
    for i in range(10 if b.quick else 100):
        (root / "data" / f"f{i}").write_bytes(os.urandom(1 << 20))
    subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(big), "."], check=True)
    imp = b.result(f"import {big.stat().st_size // 1_000_000} MB rootfs tar")
    alternate(imp, {e.name: (lambda e=e: timed(e.cmd("import", str(big), "bigimg"), e.env)) for e in b.engines},
              runs=2 if b.quick else 5, warmup=1)  # fmt: skip
    make_files = "mkdir /data && i=0; while [ $i -lt 1000 ]; do i=$((i+1)); echo $i > /data/f$i; done"
    for e in b.engines:
        subprocess.run(
            e.cmd("run", "--name", "fs1000", "busybox", "sh", "-c", make_files), env=e.env, check=True, capture_output=True
        )

    def out() -> str:
        """A fresh output path each time: podman refuses to overwrite an existing archive."""
        path = b.base / f"fs-{time.monotonic_ns()}.out"
        return str(path)

    ops = {
        "diff after 1000 files": lambda e: timed(e.cmd("diff", "fs1000"), e.env),
        "commit of 1000 files": lambda e: timed(e.cmd("commit", "fs1000", f"fsimg:{time.monotonic_ns()}"), e.env),
        "export of the container": lambda e: timed(e.cmd("export", "-o", out(), "fs1000"), e.env),
        "save of busybox": lambda e: timed(e.cmd("save", "-o", out(), "busybox"), e.env),
    }
    results = [imp]
    for name, op in ops.items():
        r = b.result(name)
        alternate(r, {e.name: (lambda e=e, op=op: op(e)) for e in b.engines}, runs=3 if b.quick else 10, warmup=1)
        results.append(r)
    return results


def s6_scale(b: Bench) -> list[Result]:
    """`ps -a` and `inspect` latency with 0, 100 and 500 containers present (created, not running)."""
    sizes = (0, 50) if b.quick else (0, 100, 500)
    results, present = [], 0
    for size in sizes:
        for e in b.engines:
            _parallel([e.cmd("create", "--name", f"s{i}", "busybox", "true") for i in range(present, size)], e.env, workers=4)
            subprocess.run(e.cmd("create", "--name", "probe", "-l", "bench=probe", "busybox", "true"), env=e.env, check=True,
                           capture_output=True)  # fmt: skip
        present = size
        ps, insp = b.result(f"ps -a with {size} containers"), b.result(f"inspect with {size} containers")
        labelled = b.result(f"ps -a --filter label=bench=probe with {size} containers")
        alternate(ps, {e.name: (lambda e=e: timed(e.cmd("ps", "-a"), e.env)) for e in b.engines}, runs=5, warmup=1)
        alternate(labelled, {e.name: (lambda e=e: timed(e.cmd("ps", "-a", "--filter", "label=bench=probe"), e.env))
                             for e in b.engines}, runs=5, warmup=1)  # fmt: skip
        alternate(insp, {e.name: (lambda e=e: timed(e.cmd("inspect", "probe"), e.env)) for e in b.engines}, runs=5, warmup=1)
        for e in b.engines:
            subprocess.run(e.cmd("rm", "probe"), env=e.env, check=True, capture_output=True)
        results += [ps, labelled, insp]
    return results


def s7_network(b: Bench) -> list[Result]:
    """Extra latency of bridge networking over `--network none` for `run --rm true`, Teu and podman
    (netavark) each run inside a network namespace made here, so no bridge or rule touches the host."""
    if not b.podman:
        r = b.result("bridge overhead")
        r.na["teu"] = "needs podman for the side-by-side"
        return [r]
    ns = f"teubench{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    wrap = ["nsenter", f"--net=/run/netns/{ns}"]
    engine = None
    try:
        subprocess.run([*wrap, "ip", "link", "set", "lo", "up"], check=True)
        engine = PrivateEngine(b.base / "teu-net", wrap=wrap, env={"TEU_BRIDGE_SUBNET": "10.77.0.0/16"}).start()
        env = engine.env()
        subprocess.run([TEU, "import", str(IMAGE_TAR), "busybox"], env=env, check=True, capture_output=True)
        pod = b.podman
        pod_env = {**os.environ, **pod.conf()}
        runs = {
            "none": (["--network", "none"], ["--network", "none"]),
            "bridge": (["--network", "bridge"], ["--network", "podman"]),
        }
        host_dir = b.base / "bind-source"
        host_dir.mkdir(exist_ok=True)
        rich = [*(f for i in (1, 2) for f in ("-v", f"benchvol{i}:/v{i}")), "-v", f"{host_dir}:/v3",
                "-p", "127.0.0.1::80", "-p", "127.0.0.1::81"]  # fmt: skip
        runs["bridge, 3 volumes + 2 published ports"] = (["--network", "bridge", *rich], ["--network", "podman", *rich])
        results = []
        for mode, (teu_flags, pod_flags) in runs.items():
            r = b.result(f"run --rm true, --network {mode} (in a netns)")
            r.na.pop("docker", None)
            r.na["docker"] = "not measured in a netns"
            alternate(r, {
                "teu": lambda f=teu_flags: timed([TEU, "run", "--rm", *f, "busybox", "true"], env),
                "podman": lambda f=pod_flags: timed([*wrap, *pod.argv(), "run", "--rm", *f, "busybox", "true"], pod_env),
            }, runs=8 if b.quick else 20, warmup=2)  # fmt: skip
            results.append(r)
        over = b.result("bridge overhead over none (median difference)")
        extra = b.result("3 volumes + 2 ports over a plain bridge run (median ratio)", unit="x")
        for r in (over, extra):
            r.na["docker"] = "not measured in a netns"
        for who in ("teu", "podman"):
            over.samples[who] = [(results[1].median(who) or 0) - (results[0].median(who) or 0)]
            extra.samples[who] = [(results[2].median(who) or 0) / (results[1].median(who) or 1)]
        return [*results, over, extra]
    finally:
        if engine:
            engine.stop()
        subprocess.run(
            [*wrap, *b.podman.argv(), "rm", "-af"], env={**os.environ, **b.podman.conf()}, capture_output=True, check=False
        )
        subprocess.run(["ip", "netns", "delete", ns], check=False)


def _echo_latency(argv: list[str], env: dict[str, str], keys: int) -> list[float]:
    """Seconds from writing one key to the pty of an interactive `cat` until its echo comes back.

    The echo is made by the container's own terminal (cooked mode), so it crosses the whole path:
    our pty, the CLI, the engine, the container's pty, and back.
    """
    pid, fd = pty.fork()
    if pid == 0:  # the child: the CLI on the pty, as a user's terminal would run it
        os.execvpe(argv[0], argv, env)
    deadline = time.monotonic() + 30
    seen = b""
    while b"ready" not in seen and time.monotonic() < deadline:  # typed until the container echoes it
        os.write(fd, b"ready\r")
        if select.select([fd], [], [], 0.5)[0]:
            seen += os.read(fd, 65536)
    time.sleep(0.2)
    while select.select([fd], [], [], 0.1)[0]:
        os.read(fd, 65536)
    samples = []
    for i in range(keys):
        key = b"abcdefghij"[i % 10 : i % 10 + 1]
        t0 = time.perf_counter()
        os.write(fd, key)
        got = b""
        while key not in got and select.select([fd], [], [], 5)[0]:
            got += os.read(fd, 4096)
        samples.append(time.perf_counter() - t0)
    os.write(fd, b"\r\x04")
    os.waitpid(pid, 0)
    os.close(fd)
    return samples


def s8_echo(b: Bench) -> Result:
    """Interactive echo: a key typed into `run -it --rm busybox cat` until its echo comes back."""
    r = b.result("interactive echo latency (run -it)")
    for e in b.engines:
        if e.name == "docker":
            r.na["docker"] = "not measured"
            continue
        r.samples[e.name] = _echo_latency(e.cmd("run", "-it", "--rm", "busybox", "cat"), e.env, 30 if b.quick else 100)
    return r


def _cpu_seconds(pids: list[int]) -> float:
    """CPU time of ``pids`` and their reaped children (user + system), in seconds."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        total += sum(int(x) for x in fields[11:15])  # utime, stime, cutime, cstime
    return total / os.sysconf("SC_CLK_TCK")


def s9_lifecycle(b: Bench) -> list[Result]:
    """Teu's lifecycle costs: the engine's CPU with a healthcheck every second on 50 containers (and,
    apart, what the checks cost inside the containers: the prober's forks and the checks themselves),
    and how long after its back-off a crashed on-failure container is running again."""
    n, seconds = 50, (8.0 if b.quick else 20.0)
    env, e = b.teu.env, b.engine
    checked = ["--health-cmd", "true", "--health-interval", "1s", "busybox", "sleep", "600"]
    _parallel([[TEU, "run", "-d", "--name", f"hc{i}", *checked] for i in range(n)], env, workers=4)
    time.sleep(3.0)
    assert e.proc is not None
    pids = [e.proc.pid, *(e.service_pid(s) for s in ("gateway", "runtime", "storage", "logs"))]
    with Client(e.target) as c:
        wait_until(lambda: all(d.health.status == "healthy" for d in (c.inspect(f"hc{i}") for i in range(n))), timeout=60)

        def used() -> int:
            return sum(u.stats.cpu_ns for u in next(iter(c.stats(one_shot=True))).containers if u.stats.name.startswith("hc"))

        inside, t_in = used(), time.monotonic()  # the stats calls stay out of the engine's window
        before, t0 = _cpu_seconds(pids), time.monotonic()
        time.sleep(seconds)
        share = (_cpu_seconds(pids) - before) / (time.monotonic() - t0)
        inside_share = (used() - inside) / 1e9 / (time.monotonic() - t_in)
    _parallel([[TEU, "rm", "-f", f"hc{i}"] for i in range(n)], env, workers=4)
    time.sleep(5.0)  # what the removals leave to finish (conmon exits, cgroups) settles first
    cpu = b.result(f"engine CPU, a healthcheck every second on {n} containers", unit="% of a core")
    cpu.samples["teu"] = [share * 100]
    checks = b.result(f"CPU inside the {n} containers for those checks (prober and `true`)", unit="% of a core")
    checks.samples["teu"] = [inside_share * 100]
    late = b.result("on-failure restart: running again after the 100 ms back-off")
    samples = []
    with Client(e.target) as c:
        for i in range(3 if b.quick else 8):
            cid = c.run_detached(ContainerOptions(image="busybox", cmd=["sh", "-c", "sleep 0.3; exit 1"], restart="on-failure:1",
                                                  name=f"crash{i}"))  # fmt: skip
            finished = 0
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                d = c.inspect(cid)
                if d.summary.state == types_pb2.CONTAINER_STATE_EXITED and d.restart_count == 0:
                    finished = d.summary.finished_at
                if d.restart_count == 1 and d.summary.started_at and finished:
                    samples.append((d.summary.started_at - finished) / 1e9 - 0.1)
                    break
                time.sleep(0.005)
            c.remove(cid, force=True)
    late.samples["teu"] = samples
    for r in (cpu, checks, late):
        for peer in ("podman", "docker"):
            r.na[peer] = "no counterpart measured"
    return [cpu, checks, late]


def s10_observability(b: Bench) -> list[Result]:
    """Observability with N running containers: stats in one call, the CPU of scraping every metrics
    endpoint every 15 s, and `run --rm true` with 50 `events` subscribers against none."""
    n = 30 if b.quick else 100
    env, e = b.teu.env, b.engine
    for eng in b.engines:
        _parallel([eng.cmd("run", "-d", "--name", f"ob{i}", "busybox", "sleep", "600") for i in range(n)], eng.env, workers=4)
    one = b.result(f"stats of {n} running containers, one API call (one-shot)")
    cli = b.result(f"stats --no-stream of {n} running containers (CLI)")
    scrape = b.result(f"metrics of {n} containers scraped every 15 s: engine CPU", unit="% of a core")
    quiet, busy = b.result("run --rm true, no events subscriber"), b.result("run --rm true, 50 events subscribers")
    with Client(e.target) as c:
        for _ in range(3):
            list(c.stats(one_shot=True))
        for _ in range(5 if b.quick else 15):
            t0 = time.perf_counter()
            (reading,) = list(c.stats(one_shot=True))
            one.samples.setdefault("teu", []).append(time.perf_counter() - t0)
            assert len(reading.containers) >= n
    alternate(cli, {eng.name: (lambda eng=eng: timed(eng.cmd("stats", "--no-stream"), eng.env)) for eng in b.engines},
              runs=3 if b.quick else 5, warmup=1)  # fmt: skip
    urls = [(e.run_dir / f"{svc}.metrics").read_text().strip() for svc in ("gateway", "runtime", "storage", "logs")]
    pids = [e.service_pid(svc) for svc in ("gateway", "runtime", "storage", "logs")]
    scrapes = 5 if b.quick else 20
    before = _cpu_seconds(pids)
    for _ in range(scrapes):
        for url in urls:
            urllib.request.urlopen(url, timeout=10).read()
    scrape.samples["teu"] = [(_cpu_seconds(pids) - before) / scrapes / 15 * 100]
    runs = 6 if b.quick else 15
    quiet.samples["teu"] = [timed([TEU, "run", "--rm", "busybox", "true"], env) for _ in range(runs)]
    stop = threading.Event()

    def subscriber(client: Client) -> None:
        for _ in client.events():
            if stop.is_set():
                return

    with Client(e.target) as c:
        threads = [threading.Thread(target=subscriber, args=(c,), daemon=True) for _ in range(50)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        busy.samples["teu"] = [timed([TEU, "run", "--rm", "busybox", "true"], env) for _ in range(runs)]
        stop.set()
        timed([TEU, "run", "--rm", "busybox", "true"], env)  # one more event wakes every subscriber
        for t in threads:
            t.join(timeout=10)
    for eng in b.engines:
        _parallel([eng.cmd("rm", "-f", f"ob{i}") for i in range(n)], eng.env, workers=4)
    one.na = dict.fromkeys(("podman", "docker"), "no one-shot reading of every container in one call")
    for r in (scrape, quiet, busy):
        for peer in ("podman", "docker"):
            r.na[peer] = "no counterpart measured"
    busy.note = "compare with the row above: the target is at most 5 % slower"
    cli.note = "teu and docker read twice, 0.5 s apart, for the CPU % of now; podman reads once (its CPU % is since the start)"
    return [one, cli, scrape, quiet, busy]


@contextlib.contextmanager
def _docker_py_peers(b: Bench) -> Iterator[tuple[dict[str, tuple[Any, str]], dict[str, str]]]:
    """docker-py clients of the peers, with the image name each knows busybox by: podman's API
    service (``podman system service``, started here on its own socket) and dockerd; and the peers
    that could not be reached, with why."""
    import docker  # docker-py: a test dependency (requirements-dev.txt)

    clients: dict[str, tuple[Any, str]] = {}
    missing: dict[str, str] = {}
    service = None
    if b.podman is not None:
        sock = b.base / "podman" / "api.sock"
        argv = [*b.podman.argv(), "system", "service", "--time=0", f"unix://{sock}"]
        env = {**os.environ, **b.podman.conf()}
        service = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        clients["podman"] = (docker.DockerClient(base_url=f"unix://{sock}", version="1.41", timeout=30), "localhost/busybox")
    if b.docker is not None and "docker" not in b.missing:
        clients["docker"] = (docker.DockerClient(base_url=b.docker.sock, version="auto", timeout=30), "busybox")
    else:
        missing["docker"] = "no dockerd measured here"
    for who in list(clients):  # a peer that cannot run a container once is n/a, the others go on
        client, image = clients[who]
        try:
            client.containers.run(image, "true", remove=True)
        except docker.errors.DockerException as exc:
            missing[who] = f"failed: {str(exc)[:160]}"
            clients.pop(who)[0].close()
    try:
        yield clients, missing
    finally:
        for client, _ in clients.values():
            client.close()
        if service is not None:
            service.terminate()
            service.wait(timeout=30)


def s11_docker_api(b: Bench) -> Result:
    """docker-py's `containers.run("busybox", "true", remove=True)` against Teu's Docker API and podman's
    API service (`podman system service`), each on its own unix socket."""
    import docker

    r = b.result("docker-py containers.run true, remove=True (Docker API)")
    teu = docker.DockerClient(base_url=f"unix://{b.engine.run_dir}/docker.sock", version="auto", timeout=30)
    with _docker_py_peers(b) as (peers, missing):
        clients = {"teu": (teu, "busybox"), **peers}
        r.na.update(missing)

        def one(who: str) -> float:
            client, image = clients[who]
            t0 = time.perf_counter()
            client.containers.run(image, "true", remove=True)
            return time.perf_counter() - t0

        try:
            alternate(r, {who: (lambda who=who: one(who)) for who in clients}, runs=8 if b.quick else 20, warmup=3)
        finally:
            teu.close()
    return r


def s15_api_path(b: Bench) -> list[Result]:
    """The API path from one long-lived process: Teu's SDK (gRPC) against docker-py -> dockerd and
    docker-py -> podman's API service: run --rm true, inspect a container, list 20 containers."""
    n = 20
    run, inspect, listing = (
        b.result("API path: run --rm true"),
        b.result("API path: inspect"),
        b.result(f"API path: list {n} containers"),
    )
    with Client(b.engine.target) as teu, _docker_py_peers(b) as (peers, missing):
        for r in (run, inspect, listing):
            r.na.update(missing)
        teu_ids = [teu.create(ContainerOptions(image="busybox", cmd=["true"], name=f"api{i}")).id for i in range(n)]
        peer_made = {
            who: [c.containers.create(image, "true", name=f"api{i}") for i in range(n)] for who, (c, image) in peers.items()
        }
        ops: dict[str, tuple[Callable[[], object], ...]] = {
            "teu": (
                lambda: teu.run(ContainerOptions(image="busybox", cmd=["true"], remove=True)),
                lambda: teu.inspect("api0"),
                lambda: teu.list(all=True),
            )
        }
        for who, (c, image) in peers.items():
            ops[who] = (
                lambda c=c, image=image: c.containers.run(image, "true", remove=True),
                lambda c=c: c.containers.get("api0"),
                lambda c=c: c.containers.list(all=True, sparse=True),
            )

        def timed_op(fn: Callable[[], object]) -> float:
            t0 = time.perf_counter()
            fn()
            return time.perf_counter() - t0

        try:
            for i, r in enumerate((run, inspect, listing)):
                alternate(
                    r, {who: (lambda f=fns[i]: timed_op(f)) for who, fns in ops.items()}, runs=8 if b.quick else 20, warmup=2
                )
        finally:
            for cid in teu_ids:
                teu.remove(cid, force=True)
            for made in peer_made.values():
                for c in made:
                    c.remove(force=True)
    return [run, inspect, listing]


def s12_docker_cli(b: Bench) -> Result:
    """Debian's docker CLI (`docker ps -a`, 20 containers) pointed at Teu's Docker API and at dockerd."""
    r = b.result("docker CLI: docker ps -a with 20 containers (DOCKER_HOST at each)")
    hosts = {"teu": f"unix://{b.engine.run_dir}/docker.sock"}
    if b.docker is not None and "docker" not in b.missing:
        hosts["docker"] = b.docker.sock
    r.na.setdefault("podman", "not measured: podman's own CLI is scenario 6's")
    made: dict[str, list[str]] = {}
    for who, host in hosts.items():
        env = {**os.environ, "DOCKER_HOST": host}
        made[who] = [subprocess.run(["/usr/bin/docker", "create", "--network", "none", "busybox", "true"], env=env, check=True,
                                    capture_output=True, text=True).stdout.strip() for _ in range(20)]  # fmt: skip
    try:
        alternate(r, {who: (lambda host=host: timed(["/usr/bin/docker", "ps", "-a"], {**os.environ, "DOCKER_HOST": host}))
                      for who, host in hosts.items()}, runs=8 if b.quick else 20, warmup=2)  # fmt: skip
    finally:
        for who, ids in made.items():
            subprocess.run(["/usr/bin/docker", "rm", *ids], env={**os.environ, "DOCKER_HOST": hosts[who]}, capture_output=True,
                           check=False)  # fmt: skip
    return r


def s13_cri(b: Bench) -> list[Result]:
    """Kubernetes' CRI: a pod to a running container with crictl (runp, create, start) against podman's
    pod create + run; and ListContainers over 500 containers through the gRPC API."""
    import grpc

    from teu_api.k8s.cri.v1 import api_pb2 as cri
    from teu_api.k8s.cri.v1 import api_pb2_grpc as cri_grpc

    with Client(b.engine.target) as client:
        import_pause(client, IMAGE_TAR)
    sock = f"unix://{b.engine.run_dir}/cri.sock"
    work = b.base / "cri"
    work.mkdir(exist_ok=True)
    start = b.result("CRI: pod to running container (crictl runp + create + start vs podman pod create + run -d)")
    crictl = cri_tool("crictl")
    counter = iter(range(1_000_000))

    def teu_pod() -> float:
        n = next(counter)
        (work / f"pod{n}.json").write_text(json.dumps({"metadata": {"name": f"p{n}", "namespace": "bench", "uid": f"u{n}"},
                                                       "log_directory": str(work / f"logs{n}"), "linux": {}}))  # fmt: skip
        (work / "ctr.json").write_text(json.dumps({"metadata": {"name": "c"}, "image": {"image": "busybox"},
                                                   "command": ["sleep", "300"], "log_path": "c.log", "linux": {}}))  # fmt: skip
        base = [str(crictl), "--runtime-endpoint", sock, "--image-endpoint", sock]
        t0 = time.perf_counter()
        pod = subprocess.run([*base, "runp", f"pod{n}.json"], cwd=work, check=True, capture_output=True, text=True).stdout.strip()
        cid = subprocess.run([*base, "create", pod, "ctr.json", f"pod{n}.json"], cwd=work, check=True, capture_output=True,
                             text=True).stdout.strip()  # fmt: skip
        subprocess.run([*base, "start", cid], cwd=work, check=True, capture_output=True)
        took = time.perf_counter() - t0
        subprocess.run([*base, "rmp", "-f", pod], cwd=work, check=False, capture_output=True)
        return took

    contenders: dict[str, Callable[[], float]] = {}
    if crictl:
        contenders["teu"] = teu_pod
    else:
        start.na["teu"] = "crictl not found (PATH or TEU_CRI_TOOLS)"
    if b.podman is not None:
        pod_argv, pod_env = b.podman.argv(), {**os.environ, **b.podman.conf()}

        def podman_pod() -> float:
            name = f"p{next(counter)}"
            t0 = time.perf_counter()
            subprocess.run([*pod_argv, "pod", "create", "--name", name], env=pod_env, check=True, capture_output=True)
            subprocess.run([*pod_argv, "run", "-d", "--pod", name, "localhost/busybox", "sleep", "300"], env=pod_env, check=True,
                           capture_output=True)  # fmt: skip
            took = time.perf_counter() - t0
            subprocess.run([*pod_argv, "pod", "rm", "-f", "-t", "0", name], env=pod_env, check=False, capture_output=True)
            return took

        contenders["podman"] = podman_pod
    alternate(start, contenders, runs=5 if b.quick else 15, warmup=1)
    start.na.setdefault("docker", "dockerd has no pods")

    listing = b.result("CRI: ListContainers over 500 containers (gRPC, one long-lived client)")
    listing.na.update({"podman": "no CRI", "docker": "no CRI"})
    with grpc.insecure_channel(sock) as channel:
        rt = cri_grpc.RuntimeServiceStub(channel)
        config = cri.PodSandboxConfig(metadata=cri.PodSandboxMetadata(name="many", uid="many", namespace="bench"),
                                      log_directory=str(work / "many"))  # fmt: skip
        pod = rt.RunPodSandbox(cri.RunPodSandboxRequest(config=config)).pod_sandbox_id
        try:
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda i: rt.CreateContainer(cri.CreateContainerRequest(
                    pod_sandbox_id=pod, sandbox_config=config,
                    config=cri.ContainerConfig(metadata=cri.ContainerMetadata(name=f"c{i}"), image=cri.ImageSpec(image="busybox"),
                                               command=["true"]))), range(500)))  # fmt: skip

            def one() -> float:
                t0 = time.perf_counter()
                assert len(rt.ListContainers(cri.ListContainersRequest()).containers) >= 500
                return time.perf_counter() - t0

            alternate(listing, {"teu": one}, runs=10, warmup=2)
        finally:
            rt.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=600)
    return [start, listing]


BUILD_DOCKERFILE = """\
FROM busybox
ENV APP=/app
WORKDIR /app
COPY data/ ./data/
RUN ls data | wc -l > count.txt && echo built > built.txt
CMD ["cat", "/app/count.txt"]
"""


FIDELITY_DOCKERFILE = """\
FROM busybox AS prep
RUN mkdir -p /out && echo prepared > /out/prep.txt
FROM busybox
ARG REV=7
ENV APP_HOME=/srv/app REV=$REV
WORKDIR $APP_HOME
COPY --from=prep /out/ ./from-prep/
COPY data/ ./data/
COPY --chown=1234:1234 data/f0 /etc/secret
RUN echo "app:x:1234:1234::/srv/app:/bin/sh" >> /etc/passwd && chown -R 1234:1234 /srv/app
USER app
EXPOSE 8080 53/udp
VOLUME ["/cache"]
LABEL org.example.title="fidelity" rev=$REV
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --timeout=2s --retries=2 CMD ["true"]
ENTRYPOINT ["sh", "-c"]
CMD ["cat from-prep/prep.txt"]
"""
CONFIG_KEYS = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Labels", "Volumes", "Healthcheck", "StopSignal")
# What every engine adds to a container's filesystem at create (mount points), not what a build made.
ENGINE_FILES = {
    "etc/hosts",
    "etc/hostname",
    "etc/resolv.conf",
    ".dockerenv",
    "run/.containerenv",
    "dev",
    "proc",
    "sys",
    "run",
    "etc/mtab",
}


def _engine_file(name: str) -> bool:
    n = name.removeprefix("./").rstrip("/")
    return not n or n in ENGINE_FILES or n.split("/")[0] in ENGINE_FILES


def _entry(m: tarfile.TarInfo) -> tuple[object, ...]:
    return (m.name.removeprefix("./").rstrip("/"), m.type, m.mode & 0o7777, m.uid, m.gid, m.size if m.isreg() else 0)


def _fidelity(b: Bench, ctx: Path) -> str:
    """Builds FIDELITY_DOCKERFILE with every engine and compares Teu's image with each peer's: the
    configuration keys a user sees and the file tree (names, types, modes, owners, sizes)."""
    (ctx / "Dockerfile.fidelity").write_text(FIDELITY_DOCKERFILE)
    seen: dict[str, tuple[dict[str, object], set[tuple[object, ...]]]] = {}
    for e in b.engines:
        subprocess.run(e.cmd("build", "--network", "none", "-f", str(ctx / "Dockerfile.fidelity"), "-t", "fidelity:1", str(ctx)),
                       env=e.env, check=True, capture_output=True)  # fmt: skip
        doc = json.loads(
            subprocess.run(e.cmd("image", "inspect", "fidelity:1"), env=e.env, check=True, capture_output=True).stdout
        )
        config = {k: (doc[0].get("Config") or {}).get(k) or None for k in CONFIG_KEYS}
        subprocess.run(e.cmd("create", "--name", "fidelity", "fidelity:1"), env=e.env, check=True, capture_output=True)
        out = b.base / f"fidelity-{e.name}.tar"
        subprocess.run(e.cmd("export", "-o", str(out), "fidelity"), env=e.env, check=True, capture_output=True)
        subprocess.run(e.cmd("rm", "-f", "fidelity"), env=e.env, check=True, capture_output=True)
        with tarfile.open(out) as tar:
            tree = {_entry(m) for m in tar.getmembers() if not _engine_file(m.name)}
        seen[e.name] = (config, tree)
    teu_config, teu_tree = seen["teu"]
    notes = []
    for peer, (config, tree) in seen.items():
        if peer == "teu":
            continue
        differ = [k for k in CONFIG_KEYS if config[k] != teu_config[k]]
        for k in differ:
            print(f"  {k}: teu {teu_config[k]!r} {peer} {config[k]!r}", file=sys.stderr)
        only_teu, only_peer = sorted(teu_tree - tree)[:3], sorted(tree - teu_tree)[:3]
        teu_only, peer_only = len(teu_tree - tree), len(tree - teu_tree)
        notes.append(
            f"vs {peer}: config keys differing {differ or 'none'}; files only in teu {teu_only} {only_teu}, "
            f"only in {peer} {peer_only} {only_peer}"
        )
    print("build fidelity: " + "; ".join(notes), file=sys.stderr)
    return "; ".join(notes)


def s14_build(b: Bench) -> list[Result]:
    """teu build against docker build and podman build: a cold 6-step Dockerfile (--no-cache), then a fully cached rebuild."""
    ctx = b.base / "buildctx"
    (ctx / "data").mkdir(parents=True)
    for i in range(20):
        (ctx / "data" / f"f{i}").write_bytes(os.urandom(4096))
    (ctx / "Dockerfile").write_text(BUILD_DOCKERFILE)

    def build(e: Engine, *flags: str) -> float:
        return timed(e.cmd("build", *flags, "--network", "none", "-t", "benchbuild:1", str(ctx)), e.env)

    cold = b.result("build: cold 6-step Dockerfile (--no-cache)")
    alternate(cold, {e.name: (lambda e=e: build(e, "--no-cache")) for e in b.engines}, runs=3 if b.quick else 10, warmup=1)
    cached = b.result("build: the same, fully cached")
    alternate(cached, {e.name: (lambda e=e: build(e)) for e in b.engines}, runs=5 if b.quick else 20, warmup=1)
    try:
        cold.note = _fidelity(b, ctx)
    except subprocess.CalledProcessError as exc:  # the timings stand; say why the comparison could not be made
        cold.note = f"fidelity not compared: {exc.cmd[-5:]} failed: {(exc.stderr or b'').decode(errors='replace')[-300:]}"
        print(cold.note, file=sys.stderr)
    return [cold, cached]


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
        for num, fn in (
            ("1", s1_run_true),
            ("2", s2_many_detached),
            ("3", s3_confinement),
            ("4", s4_logs),
            ("5", s5_filesystem),
            ("6", s6_scale),
            ("7", s7_network),
            ("8", s8_echo),
            ("9", s9_lifecycle),
            ("10", s10_observability),
            ("11", s11_docker_api),
            ("12", s12_docker_cli),
            ("13", s13_cri),
            ("14", s14_build),
            ("15", s15_api_path),
        ):
            if wanted and num not in wanted:
                continue
            print(f"scenario {num}: {fn.__doc__}", file=sys.stderr, flush=True)
            try:
                out = fn(bench)
            except (subprocess.CalledProcessError, OSError, RuntimeError) as exc:
                # one broken scenario must not throw away the others' numbers
                failed = Result(f"scenario {num}")
                failed.na["teu"] = f"failed: {str(exc)[:200]}"
                out = [failed]
            results += out if isinstance(out, list) else [out]
    finally:
        bench.close()
        shutil.rmtree(base, ignore_errors=True)
    print(table(results))
    path = save(results, REPO / "bench" / "results", {"quick": args.quick, "argv": sys.argv})
    print(f"\nsamples: {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
