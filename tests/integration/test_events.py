"""``teu events``: what happens to containers, images, networks and volumes, with a cursor that
resumes exactly once, across SIGKILLs of every service."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter

import pytest

from conftest import IMAGE_TAR, Engine, wait_ready
from teu.client import Client, ContainerOptions
from teu.errors import InvalidArgument, TeuError
from teu.testing import wait_until
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.types.v1 import types_pb2


def recorded(client: Client, since_ns: int, *filters: str) -> list[gw.EventsResponse]:
    """The events recorded from ``since_ns`` until now."""
    return list(client.events(since_ns=since_ns, until_ns=time.time_ns(), filters=filters))


def actions(responses: list[gw.EventsResponse]) -> list[str]:
    return [r.event.action for r in responses]


def told(responses: list[gw.EventsResponse]) -> list[tuple[object, ...]]:
    """The events, comparable (a map's wire order is not fixed)."""
    return [
        (e.seq, e.time_unix_nano, e.type, e.action, e.actor_id, sorted(e.attributes.items()))
        for e in (r.event for r in responses)
    ]


def test_a_container_s_life_in_events(client: Client) -> None:
    """Each step of a container's life is an event, in order, with its name, image and labels."""
    mark = uuid.uuid4().hex[:12]
    t0 = time.time_ns()
    cid = client.run_detached(ContainerOptions(image="busybox", cmd=["sleep", "300"], name=f"ev-{mark}", labels={"mark": mark}))
    assert client.exec_run(cid, ["true"]).exit_code == 0
    client.pause(cid)
    client.unpause(cid)
    client.rename(cid, f"ev2-{mark}")
    client.update(cid, pids_limit=100)
    client.stop(cid, timeout=1)  # sleep as pid 1 ignores SIGTERM: SIGKILL after the timeout
    client.remove(cid)
    got = recorded(client, t0, f"label=mark={mark}")
    assert actions(got) == [
        "create", "start", "exec_create: true", "exec_start: true", "exec_die", "pause", "unpause", "rename",
        "update", "kill", "kill", "die", "stop", "destroy",
    ]  # fmt: skip
    first, die, renamed = got[0].event, got[11].event, got[7].event
    assert (first.type, first.actor_id, first.attributes["name"], first.attributes["image"]) == (
        "container",
        cid,
        f"ev-{mark}",
        "busybox",
    )
    assert die.attributes["exitCode"] == "137" and die.attributes["mark"] == mark
    assert (renamed.attributes["name"], renamed.attributes["oldName"]) == (f"ev2-{mark}", f"ev-{mark}")
    assert [got[9].event.attributes["signal"], got[10].event.attributes["signal"]] == ["15", "9"]
    assert got[4].event.attributes["exitCode"] == "0"
    # the same through filters of the other keys
    assert actions(recorded(client, t0, f"container=ev2-{mark}", "event=die")) == ["die"]
    assert actions(recorded(client, t0, f"container={cid[:12]}", "event=exec_start")) == ["exec_start: true"]
    assert [r.event.actor_id for r in recorded(client, t0, "type=container", f"label=mark={mark}", "event=create")] == [cid]


def test_the_cursor_resumes_right_after_an_event(client: Client) -> None:
    """From the cursor of any event, the stream has every later event once, and only those."""
    mark = uuid.uuid4().hex[:12]
    t0 = time.time_ns()
    for _ in range(3):
        client.remove(client.run_detached(ContainerOptions(image="busybox", cmd=["true"], labels={"mark": mark})), force=True)
    everything = recorded(client, t0, f"label=mark={mark}")
    assert len(everything) >= 12
    for i in (0, 5, len(everything) - 1):
        after = list(client.events(cursor=everything[i].cursor, until_ns=time.time_ns(), filters=[f"label=mark={mark}"]))
        assert told(after) == told(everything[i + 1 :])
    with pytest.raises(InvalidArgument, match="cursor"):
        list(client.events(cursor="r1-x", until_ns=time.time_ns()))
    with pytest.raises(InvalidArgument, match="filter"):
        list(client.events(filters=["colour=red"], until_ns=time.time_ns()))


def test_images_volumes_and_networks_have_events(client: Client) -> None:
    mark = uuid.uuid4().hex[:8]
    t0 = time.time_ns()
    client.tag("busybox", f"evtag{mark}:1")
    client.remove_image(f"evtag{mark}:1")
    client.create_volume(f"evvol{mark}")
    client.remove_volume(f"evvol{mark}")
    net = client.create_network(f"evnet{mark}")
    client.remove_network(f"evnet{mark}")
    images = [(r.event.action, r.event.attributes["name"]) for r in recorded(client, t0, "type=image", f"image=evtag{mark}")]
    assert images == [("tag", f"evtag{mark}:1"), ("untag", f"evtag{mark}:1")]
    assert actions(recorded(client, t0, f"image=evtag{mark}:1")) == ["tag", "untag"]
    assert actions(recorded(client, t0, f"volume=evvol{mark}")) == ["create", "destroy"]
    nets = recorded(client, t0, f"network=evnet{mark}")
    assert [(r.event.action, r.event.actor_id) for r in nets] == [("create", net.id), ("destroy", net.id)]


def test_the_cli_prints_events_as_docker_does(engine: Engine, client: Client) -> None:
    mark = uuid.uuid4().hex[:12]
    t0 = time.time_ns()
    cid = client.run_detached(ContainerOptions(image="busybox", cmd=["true"], name=f"evcli-{mark}"))
    client.wait(cid)
    until = str(time.time())
    env = {**os.environ, **engine.env()}

    def teu(*args: str) -> list[str]:
        out = subprocess.run([sys.executable, "-m", "teu.cli", "events", "--since", str(t0 / 1e9), "--until", until, *args],
                             env=env, capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
        return out.stdout.splitlines()

    plain = teu("--filter", f"container=evcli-{mark}")
    assert [line.split(" ")[1:4] for line in plain] == [["container", a, cid] for a in ("create", "start", "die")]
    assert plain[2].endswith(f"(exitCode=0, image=busybox, name=evcli-{mark})")
    as_json = [json.loads(line) for line in teu("--filter", f"container={cid}", "--format", "json")]
    j = as_json[0]
    assert (j["Type"], j["Action"], j["Actor"]["ID"], j["status"], j["from"]) == (
        "container",
        "create",
        cid,
        "create",
        "busybox",
    )
    assert teu("--filter", f"container={cid}", "--format", "{{.Action}} {{.Actor.Attributes.name}}") == [
        f"{a} evcli-{mark}" for a in ("create", "start", "die")
    ]
    resumed = teu("--filter", f"container={cid}", "--cursor", as_json[0]["cursor"], "--format", "{{.Action}}")
    assert resumed == ["start", "die"]
    client.remove(cid)


def test_no_event_lost_or_repeated_while_each_service_is_killed(engine: Engine, client: Client) -> None:
    """A follower through the SDK sees the same events as a later replay while containers start and
    die and the runtime, storage and gateway are SIGKILLed in turn: nothing lost, nothing twice."""
    from test_resilience import restart_by_sigkill

    mark = uuid.uuid4().hex[:12]
    t0 = time.time_ns()
    live: list[gw.EventsResponse] = []
    stop = threading.Event()

    def follow() -> None:
        with Client(engine.target) as c:
            for r in c.events(since_ns=t0, filters=[f"label=mark={mark}"]):
                live.append(r)
                if stop.is_set() and r.event.action == "destroy" and r.event.attributes.get("last") == "1":
                    return

    follower = threading.Thread(target=follow)
    follower.start()
    made: list[str] = []

    def churn(n: int) -> None:
        for _ in range(n):
            try:
                made.append(client.run_detached(ContainerOptions(image="busybox", cmd=["true"], labels={"mark": mark})))
            except TeuError:
                pass  # the service was down at that moment: the container may or may not exist

    for service in ("runtime", "storage", "gateway"):
        worker = threading.Thread(target=churn, args=(4,))
        worker.start()
        time.sleep(0.3)
        restart_by_sigkill(engine, client, service)
        worker.join(timeout=120)
        wait_ready(client)
    for c in client.list(all=True, filters=[f"label=mark={mark}"]):
        wait_until(lambda c=c: _removed(client, c.id), timeout=60, what=f"removal of {c.id[:12]}")
    stop.set()
    last = client.run_detached(ContainerOptions(image="busybox", cmd=["true"], labels={"mark": mark, "last": "1"}))
    client.wait(last)
    client.remove(last)
    follower.join(timeout=60)
    assert not follower.is_alive()
    replay = recorded(client, t0, f"label=mark={mark}")
    assert told(live) == told(replay)
    twice = [k for k, n in Counter((r.event.actor_id, r.event.action) for r in replay).items() if n > 1]
    assert not twice
    seen = {(r.event.actor_id, r.event.action) for r in replay}
    for cid in [*made, last]:
        assert {(cid, a) for a in ("create", "start", "die", "destroy")} <= seen, cid


def _removed(client: Client, cid: str) -> bool:
    try:
        client.remove(cid, force=True)
    except TeuError as exc:
        return "No such container" in str(exc)
    return True


def test_an_oom_kill_says_whose_limit_and_which_process(engine: Engine, client: Client) -> None:
    """The kernel kills a process of a 16 MiB container: the oom event and inspect say it was the
    container's own limit, which process (host pid, command) and the use at that moment; the
    container runs on, and its counter is on the metrics endpoint."""
    t0 = time.time_ns()
    hog = ["sh", "-c", "dd if=/dev/zero of=/dev/null bs=64M count=1; sleep 300"]
    cid = client.run_detached(ContainerOptions(image="busybox", cmd=hog, memory=16 << 20, memory_swap=16 << 20))
    wait_until(lambda: client.inspect(cid).oom_kills == 1, timeout=30, what="the OOM kill")
    d = client.inspect(cid)
    o = d.last_oom
    assert (o.limit, o.command, o.limit_bytes) == ("container", "dd", 16 << 20)
    assert o.cgroup.endswith(f"/{cid}") and o.pid > 0 and 0 < o.usage_bytes <= 16 << 20 and o.time_unix_nano >= t0
    assert d.summary.state == 2  # running: only dd was killed
    (oom,) = recorded(client, t0, f"container={cid}", "event=oom")
    assert {k: oom.event.attributes[k] for k in ("limit", "command", "pid", "memoryLimit")} == {
        "limit": "container", "command": "dd", "pid": str(o.pid), "memoryLimit": str(16 << 20)
    }  # fmt: skip
    env = {**os.environ, **engine.env()}
    shown = subprocess.run([sys.executable, "-m", "teu.cli", "inspect", "-f", "{{json .State.LastOOM}}", cid],
                           env=env, capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    assert json.loads(shown.stdout)["Limit"] == "container"
    client.remove(cid, force=True)
    assert actions(recorded(client, t0, f"container={cid}", "event=oom")) == ["oom"]  # the exit does not tell it twice


def test_restart_and_volume_mounts_are_told(client: Client) -> None:
    """`restart` is told after its start; a named volume is mounted at each start and unmounted at each exit."""
    from teu import mounts

    mark = uuid.uuid4().hex[:8]
    t0 = time.time_ns()
    opts = ContainerOptions(image="busybox", cmd=["sleep", "300"], mounts=[mounts.volume(f"evv{mark}:/data:ro")])
    cid = client.run_detached(opts)
    client.restart(cid, timeout=0)  # SIGTERM, then SIGKILL at once (sleep as pid 1 ignores SIGTERM)
    client.remove(cid, force=True, volumes=True)
    mine = [
        (r.event.type, r.event.action)
        for r in recorded(client, t0)
        if cid in (r.event.actor_id, r.event.attributes.get("container"))
    ]
    assert mine == [
        ("container", "create"), ("volume", "mount"), ("container", "start"),
        ("container", "kill"), ("container", "kill"), ("container", "die"), ("volume", "unmount"), ("container", "stop"),
        ("volume", "mount"), ("container", "start"), ("container", "restart"),
        ("container", "kill"), ("container", "die"), ("volume", "unmount"), ("container", "destroy"),
    ]  # fmt: skip
    (mounted, *_) = recorded(client, t0, f"volume=evv{mark}", "event=mount")
    assert (mounted.event.attributes["destination"], mounted.event.attributes["read/write"]) == ("/data", "false")
    client.remove_volume(f"evv{mark}")


def test_the_cursor_survives_a_restart_of_the_whole_engine(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Events are on disk: after the engine stops and starts, a cursor from before it gives exactly
    what happened since."""
    with Engine(tmp_path_factory.mktemp("events-engine")) as eng:
        with Client(eng.target) as c, IMAGE_TAR.open("rb") as f:
            c.import_image(f, "busybox", types_pb2.ImageConfig(cmd=["sh"]))
            t0 = time.time_ns()
            c.run(ContainerOptions(image="busybox", cmd=["true"]))
            before = recorded(c, t0)
        eng.halt()  # the services stop, the containers stay
        eng.start()
        with Client(eng.target) as c:
            second = c.run(ContainerOptions(image="busybox", cmd=["true"])).id
            after = list(c.events(cursor=before[-1].cursor, until_ns=time.time_ns()))
            assert [(r.event.actor_id, r.event.action) for r in after] == [(second, a) for a in ("create", "start", "die")]
            assert told(recorded(c, t0)) == told(before + after)
