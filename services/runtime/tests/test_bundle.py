"""A container's paths have one owner, and conmon's two command lines come from one builder."""

from __future__ import annotations

from pathlib import Path

from teu_runtime import conmon, execs
from teu_runtime.bundle import Bundle

CID = "ab" * 32


def launch(terminal: bool = False, stdin: bool = False) -> conmon.Launch:
    """A container's conmon settings."""
    return conmon.Launch(conmon="/usr/bin/conmon", runtime="/usr/sbin/runc", runtime_root=Path("/run/teu/runc"), cid=CID,
                         name="web", bundle=Bundle(Path("/b") / CID), log_path="/logs/c.log", terminal=terminal,
                         stdin=stdin)  # fmt: skip


def flags(argv: list[str]) -> dict[str, str]:
    """The flags that take a value, by name."""
    return {argv[i]: argv[i + 1] for i in range(1, len(argv) - 1) if argv[i].startswith("-") and not argv[i + 1].startswith("-")}


def test_bundle_paths() -> None:
    """Every path conmon and the runtime use lives under the bundle, named in one place."""
    b = Bundle(Path("/b/c"))
    assert (b.rootfs, b.config, b.ctl, b.attach, b.exit_file) == (
        Path("/b/c/rootfs"), Path("/b/c/config.json"), Path("/b/c/ctl"), Path("/b/c/attach"), Path("/b/c/persist/exit"),
    )  # fmt: skip
    assert b.session("s1").exit_file(CID) == Path(f"/b/c/exec/s1/exit/{CID}")


def test_container_and_exec_command_lines_share_their_base() -> None:
    """The monitor and an exec session run conmon with the same runtime, names and attach mode; the
    session adds exec mode, no log and its own directory."""
    main = conmon.argv(launch(terminal=True))
    edir = launch().bundle.session("s1")
    exe = execs.argv(launch(stdin=True), "s1", edir)
    m, e = flags(main), flags(exe)
    assert (m["-c"], m["-r"], m["-n"], m["-l"], m["-u"]) == (CID, "/usr/sbin/runc", "web", "k8s-file:/logs/c.log", CID)
    assert (e["-c"], e["-r"], e["-n"], e["-l"], e["-u"], e["-b"]) == (CID, "/usr/sbin/runc", "web", "none", "s1", str(edir.path))
    assert "-t" in main and "-i" in exe and "--full-attach" in main and "--full-attach" in exe
    assert exe[-4:] == ["-e", "--exec-attach", "--exec-process-spec", str(edir.process_spec)]
    assert m["--persist-dir"] == str(launch().bundle.persist)


def test_the_monitor_bounds_its_log_file_through_its_rlimit_only_when_asked() -> None:
    """conmon runs under prlimit with a soft RLIMIT_FSIZE of the spec's backstop, never above the
    engine's hard limit; without a backstop (older containers) it runs as it is."""
    bounded = conmon.Launch(**{**launch().__dict__, "log_size_max": 16 << 20})
    line = conmon.bounded(bounded, -1)
    assert line[:3] == ["prlimit", f"--fsize={16 << 20}:", "--"] and line[3:] == conmon.argv(bounded)
    assert conmon.bounded(bounded, 1 << 20)[1] == f"--fsize={1 << 20}:"
    assert conmon.bounded(launch(), -1) == conmon.argv(launch())
    assert "--log-size-max" not in conmon.argv(bounded)
