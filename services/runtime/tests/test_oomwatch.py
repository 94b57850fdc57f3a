"""The kernel's OOM reports, as /dev/kmsg gives them, turned into kills with whose limit was hit."""

from __future__ import annotations

from teu_runtime import oomwatch

CID = "0ed02dabf25aa63e9992bbc0f3f2398d709a0803324a3820515446ef1163613d"
BASE = "/process_api/957656e1ce7bd988097b2bf827ef2d33/teu"


def report(constraint: str, oom_memcg: str | None, usage: bool = True) -> list[bytes]:
    """A report as this kernel writes it (each record: prio,seq,usec,flags;text)."""
    oom = f",oom_memcg={oom_memcg}" if oom_memcg is not None else ""
    lines = ["dd invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0",
             "CPU: 1 UID: 0 PID: 24071 Comm: dd Not tainted 6.18.44 #1 PREEMPT(none) ",
             *(["memory: usage 16384kB, limit 16384kB, failcnt 60", "memory+swap: usage 16384kB, limit 32768kB, failcnt 0",
                "kmem: usage 316kB, limit 9007199254740988kB, failcnt 0"] if usage else []),
             f"oom-kill:constraint={constraint},nodemask=(null),cpuset={CID},mems_allowed=0{oom},"
             f"task_memcg={BASE}/{CID},task=dd,pid=24071,uid=0",
             "Memory cgroup out of memory: Killed process 24071 (dd) total-vm:18160kB, anon-rss:15872kB"]  # fmt: skip
    return [f"6,{100 + i},14804535186,-;{text}\n SUBSYSTEM=memory\n".encode() for i, text in enumerate(lines)]


def kills(chunks: list[bytes]) -> list[oomwatch.Kill]:
    parser = oomwatch.Parser()
    found = (parser.feed(seq, text, 7) for chunk in chunks for seq, text in oomwatch.records(chunk))
    return [k for k in found if k is not None]


def test_the_container_s_own_limit() -> None:
    (kill,) = kills(report("CONSTRAINT_MEMCG", f"{BASE}/{CID}"))
    r = kill.report
    assert (kill.container, kill.seq) == (CID, 103 + 2)
    assert (r.limit, r.cgroup, r.pid, r.command) == ("container", f"{BASE}/{CID}", 24071, "dd")
    assert (r.usage_bytes, r.limit_bytes, r.time_unix_nano) == (16 << 20, 16 << 20, 7)


def test_a_parent_s_limit() -> None:
    (kill,) = kills(report("CONSTRAINT_MEMCG", BASE))
    assert (kill.report.limit, kill.report.cgroup, kill.report.usage_bytes) == ("parent", BASE, 16 << 20)


def test_the_host_s_memory() -> None:
    (kill,) = kills(report("CONSTRAINT_NONE", None, usage=False))
    assert (kill.report.limit, kill.report.cgroup, kill.report.usage_bytes, kill.report.pid) == ("host", "", 0, 24071)


def test_other_processes_and_records_are_ignored() -> None:
    lines = [line.replace(f"{BASE}/{CID}".encode(), b"/system.slice/cron.service") for line in report("CONSTRAINT_NONE", None)]
    assert kills(lines) == []
    assert list(oomwatch.records(b"garbage")) == []
