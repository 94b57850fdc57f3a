"""The Kubernetes CRI (runtime.v1) on cri.sock, driven as a kubelet drives it: pods, their
containers, ExecSync, the kubelet's log files, images, and the errors a kubelet relies on."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from conftest import IMAGE_TAR
from teu.client import Client
from teu.testing import PrivateEngine, import_pause, wait_until
from teu_api.k8s.cri.v1 import api_pb2 as cri
from teu_api.k8s.cri.v1 import api_pb2_grpc as cri_grpc


class Cri:
    """The two CRI services over one channel."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.rt = cri_grpc.RuntimeServiceStub(channel)
        self.img = cri_grpc.ImageServiceStub(channel)


@pytest.fixture()
def kubelet(engine: PrivateEngine, client: Client) -> Iterator[Cri]:
    import_pause(client, IMAGE_TAR)
    with grpc.insecure_channel(f"unix:{engine.run_dir}/cri.sock") as channel:
        k = Cri(channel)
        wait_until(lambda: _answers(k), timeout=30, what="the CRI service")
        yield k


def _answers(k: Cri) -> bool:
    try:
        k.rt.Version(cri.VersionRequest())
        return True
    except grpc.RpcError:
        return False


def pod_config(tmp_path: Path, name: str = "web") -> cri.PodSandboxConfig:
    return cri.PodSandboxConfig(
        metadata=cri.PodSandboxMetadata(name=name, uid=str(uuid.uuid4()), namespace="default"),
        hostname=f"{name}-pod",
        log_directory=str(tmp_path / "pods" / name),
        labels={"app": name},
        annotations={"note": "kept"},
    )


def code_of(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as err:
        call()  # type: ignore[operator]
    return err.value.code()  # type: ignore[no-any-return,attr-defined]


def test_version_status_and_images(kubelet: Cri) -> None:
    v = kubelet.rt.Version(cri.VersionRequest(version="v1"))
    assert (v.runtime_name, v.runtime_api_version) == ("teu", "v1") and v.runtime_version
    conditions = {c.type: c.status for c in kubelet.rt.Status(cri.StatusRequest()).status.conditions}
    assert conditions == {"RuntimeReady": True, "NetworkReady": True}
    found = kubelet.img.ImageStatus(cri.ImageStatusRequest(image=cri.ImageSpec(image="busybox"))).image
    assert found.id.startswith("sha256:") and "busybox:latest" in found.repo_tags[0] and found.size > 0
    assert not kubelet.img.ImageStatus(cri.ImageStatusRequest(image=cri.ImageSpec(image="nothere:1"))).HasField("image")
    assert found.id in {i.id for i in kubelet.img.ListImages(cri.ListImagesRequest()).images}
    kubelet.img.RemoveImage(cri.RemoveImageRequest(image=cri.ImageSpec(image="nothere:1")))  # gone already: no error
    fs = kubelet.img.ImageFsInfo(cri.ImageFsInfoRequest()).image_filesystems
    assert fs[0].used_bytes.value > 0 and fs[0].fs_id.mountpoint


def test_a_pod_runs_its_containers_in_shared_namespaces_and_goes_whole(kubelet: Cri, tmp_path: Path) -> None:
    """runp, create, start, ExecSync, the kubelet's log file, stopp, rmp: what a kubelet does."""
    config = pod_config(tmp_path)
    sid = kubelet.rt.RunPodSandbox(cri.RunPodSandboxRequest(config=config)).pod_sandbox_id
    try:
        status = kubelet.rt.PodSandboxStatus(cri.PodSandboxStatusRequest(pod_sandbox_id=sid)).status
        assert status.state == cri.SANDBOX_READY and status.metadata.name == "web" and status.created_at > 0
        assert dict(status.labels) == {"app": "web"} and dict(status.annotations) == {"note": "kept"}
        listed = kubelet.rt.ListPodSandbox(cri.ListPodSandboxRequest(filter=cri.PodSandboxFilter(label_selector={"app": "web"})))
        assert [p.id for p in listed.items] == [sid]

        def container(name: str, command: list[str]) -> str:
            c = cri.ContainerConfig(metadata=cri.ContainerMetadata(name=name), image=cri.ImageSpec(image="busybox"),
                                    command=command, log_path=f"{name}/0.log", labels={"role": name})  # fmt: skip
            req = cri.CreateContainerRequest(pod_sandbox_id=sid, config=c, sandbox_config=config)
            cid = kubelet.rt.CreateContainer(req).container_id
            kubelet.rt.StartContainer(cri.StartContainerRequest(container_id=cid))
            return cid

        main = container("main", ["sh", "-c", "echo hello; echo oops >&2; sleep 300"])
        side = container("side", ["sleep", "300"])
        st = kubelet.rt.ContainerStatus(cri.ContainerStatusRequest(container_id=main)).status
        assert st.state == cri.CONTAINER_RUNNING and st.metadata.name == "main" and st.image_ref.startswith("sha256:")
        log = Path(config.log_directory) / "main" / "0.log"
        assert st.log_path == str(log)
        wait_until(lambda: log.exists() and "oops" in log.read_text(), timeout=10, what="the log lines")
        lines = log.read_text().splitlines()
        assert any(re.fullmatch(r"\S+ stdout F hello", ln) for ln in lines), lines
        assert any(re.fullmatch(r"\S+ stderr F oops", ln) for ln in lines), lines

        def run(cid: str, *cmd: str, timeout: int = 0) -> cri.ExecSyncResponse:
            return kubelet.rt.ExecSync(cri.ExecSyncRequest(container_id=cid, cmd=list(cmd), timeout=timeout))

        assert run(main, "hostname").stdout == b"web-pod\n"
        out = run(main, "sh", "-c", "echo out; echo err >&2; exit 3")
        assert (out.stdout, out.stderr, out.exit_code) == (b"out\n", b"err\n", 3)
        ns = "readlink /proc/self/ns/net /proc/self/ns/ipc"
        assert run(main, "sh", "-c", ns).stdout == run(side, "sh", "-c", ns).stdout  # one pod, one network and IPC
        assert code_of(lambda: run(main, "sleep", "4321", timeout=1)) == grpc.StatusCode.DEADLINE_EXCEEDED
        left = "ps -o args | grep -c '^sleep 4321$'"  # busybox's ps: this image's busybox has no pgrep
        assert run(main, "sh", "-c", left).stdout == b"0\n", "the timed-out process was killed"
        mine = kubelet.rt.ListContainers(cri.ListContainersRequest(filter=cri.ContainerFilter(pod_sandbox_id=sid))).containers
        assert {c.id for c in mine} == {main, side} and {c.pod_sandbox_id for c in mine} == {sid}
        by_label = cri.ContainerFilter(label_selector={"role": "side"})
        assert [c.id for c in kubelet.rt.ListContainers(cri.ListContainersRequest(filter=by_label)).containers] == [side]

        stats = kubelet.rt.ContainerStats(cri.ContainerStatsRequest(container_id=main)).stats
        assert stats.attributes.id == main and stats.attributes.metadata.name == "main" and stats.cpu.timestamp > 0
        assert stats.memory.working_set_bytes.value > 0 and stats.cpu.usage_core_nano_seconds.value > 0
        listed_stats = kubelet.rt.ListContainerStats(
            cri.ListContainerStatsRequest(filter=cri.ContainerStatsFilter(pod_sandbox_id=sid))
        )
        assert {s.attributes.id for s in listed_stats.stats} == {main, side}
        pod = kubelet.rt.PodSandboxStats(cri.PodSandboxStatsRequest(pod_sandbox_id=sid)).stats
        assert pod.attributes.id == sid and len(pod.linux.containers) == 2 and pod.linux.process.process_count.value >= 2
        limits = cri.LinuxContainerResources(memory_limit_in_bytes=96 << 20, cpu_shares=256)
        kubelet.rt.UpdateContainerResources(cri.UpdateContainerResourcesRequest(container_id=side, linux=limits))
        cgroup = "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes"
        assert run(side, "sh", "-c", cgroup).stdout == str(96 << 20).encode() + b"\n"
        kubelet.rt.StopContainer(cri.StopContainerRequest(container_id=main, timeout=0))
        st = kubelet.rt.ContainerStatus(cri.ContainerStatusRequest(container_id=main)).status
        assert st.state == cri.CONTAINER_EXITED and st.exit_code == 137 and st.reason == "Error" and st.finished_at > 0
        kubelet.rt.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=sid))
        status = kubelet.rt.PodSandboxStatus(cri.PodSandboxStatusRequest(pod_sandbox_id=sid)).status
        assert status.state == cri.SANDBOX_NOTREADY
        st = kubelet.rt.ContainerStatus(cri.ContainerStatusRequest(container_id=side)).status
        assert st.state == cri.CONTAINER_EXITED
    finally:
        kubelet.rt.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=sid))
    assert not kubelet.rt.ListContainers(cri.ListContainersRequest(filter=cri.ContainerFilter(pod_sandbox_id=sid))).containers
    assert sid not in {p.id for p in kubelet.rt.ListPodSandbox(cri.ListPodSandboxRequest()).items}
    assert not (Path(config.log_directory) / "main" / "0.log").exists()
    kubelet.rt.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=sid))  # gone already: no error


def test_what_a_kubelet_gets_wrong_is_refused_clearly(kubelet: Cri, tmp_path: Path) -> None:
    unknown = "0" * 64
    assert (
        code_of(lambda: kubelet.rt.ContainerStatus(cri.ContainerStatusRequest(container_id=unknown))) == grpc.StatusCode.NOT_FOUND
    )
    assert (
        code_of(lambda: kubelet.rt.PodSandboxStatus(cri.PodSandboxStatusRequest(pod_sandbox_id=unknown)))
        == grpc.StatusCode.NOT_FOUND
    )
    nameless = cri.RunPodSandboxRequest(config=cri.PodSandboxConfig())
    assert code_of(lambda: kubelet.rt.RunPodSandbox(nameless)) == grpc.StatusCode.INVALID_ARGUMENT
    config = cri.ContainerConfig(metadata=cri.ContainerMetadata(name="x"), image=cri.ImageSpec(image="busybox"))
    orphan = cri.CreateContainerRequest(pod_sandbox_id=unknown, config=config)
    assert code_of(lambda: kubelet.rt.CreateContainer(orphan)) == grpc.StatusCode.NOT_FOUND
    handler = cri.RunPodSandboxRequest(config=pod_config(tmp_path, "odd"), runtime_handler="kata")
    assert code_of(lambda: kubelet.rt.RunPodSandbox(handler)) == grpc.StatusCode.INVALID_ARGUMENT
    assert (
        code_of(lambda: kubelet.rt.Exec(cri.ExecRequest(container_id=unknown, stdout=True))) == grpc.StatusCode.INVALID_ARGUMENT
    )
    streamless = cri.ExecRequest(container_id=unknown, cmd=["true"])
    assert code_of(lambda: kubelet.rt.Exec(streamless)) == grpc.StatusCode.INVALID_ARGUMENT
    nowhere = cri.ExecRequest(container_id=unknown, cmd=["true"], stdout=True)
    assert code_of(lambda: kubelet.rt.Exec(nowhere)) == grpc.StatusCode.NOT_FOUND
    reopen = cri.ReopenContainerLogRequest(container_id=unknown)
    assert code_of(lambda: kubelet.rt.ReopenContainerLog(reopen)) == grpc.StatusCode.NOT_FOUND
    checkpoint = cri.CheckpointContainerRequest(container_id=unknown)
    assert code_of(lambda: kubelet.rt.CheckpointContainer(checkpoint)) == grpc.StatusCode.UNIMPLEMENTED


def test_pods_outlive_a_restart_of_the_cri_service_and_of_the_gateway(
    kubelet: Cri, engine: PrivateEngine, tmp_path: Path
) -> None:
    """SIGKILL of the CRI service, then of the gateway: the pod stays ready, its container runs on and
    answers ExecSync, and its log keeps every line."""
    config = pod_config(tmp_path, "keep")
    sid = kubelet.rt.RunPodSandbox(cri.RunPodSandboxRequest(config=config)).pod_sandbox_id
    try:
        c = cri.ContainerConfig(metadata=cri.ContainerMetadata(name="ticker"), image=cri.ImageSpec(image="busybox"),
                                command=["sh", "-c", "i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.1; done"],
                                log_path="ticker.log")  # fmt: skip
        cid = kubelet.rt.CreateContainer(
            cri.CreateContainerRequest(pod_sandbox_id=sid, config=c, sandbox_config=config)
        ).container_id
        kubelet.rt.StartContainer(cri.StartContainerRequest(container_id=cid))
        for service in ("cri", "gateway"):
            os.kill(engine.service_pid(service), signal.SIGKILL)
            wait_until(lambda: _ready(kubelet, sid), timeout=30, what=f"the pod after the {service} restarted")
            state = kubelet.rt.ContainerStatus(cri.ContainerStatusRequest(container_id=cid)).status.state
            assert state == cri.CONTAINER_RUNNING
            assert kubelet.rt.ExecSync(cri.ExecSyncRequest(container_id=cid, cmd=["echo", "up"])).stdout == b"up\n"
        log = Path(config.log_directory) / "ticker.log"
        old = log.with_name("ticker.log.1")
        log.rename(old)  # the kubelet's rotation: rename, then ReopenContainerLog
        kubelet.rt.ReopenContainerLog(cri.ReopenContainerLogRequest(container_id=cid))
        assert log.exists()  # at once
        wait_until(lambda: " tick " in log.read_text(), timeout=10, what="ticks in the new file")
        size = old.stat().st_size
        time.sleep(0.5)
        assert old.stat().st_size == size  # nothing more goes to the old one
        lines = old.read_text().splitlines() + log.read_text().splitlines()
        ticks = [int(ln.rsplit(" ", 1)[1]) for ln in lines if " tick " in ln]
        assert ticks == list(range(1, len(ticks) + 1)) and len(ticks) > 5  # none lost, across restarts and the reopen
    finally:
        kubelet.rt.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=sid))


def _ready(k: Cri, sid: str) -> bool:
    try:
        return k.rt.PodSandboxStatus(cri.PodSandboxStatusRequest(pod_sandbox_id=sid)).status.state == cri.SANDBOX_READY
    except grpc.RpcError:
        return False


def test_container_events_follow_a_pod_and_its_container(kubelet: Cri, tmp_path: Path) -> None:
    """GetContainerEvents (the kubelet's evented PLEG): the pod's and its container's create, start,
    stop and delete, each with the pod's status and its containers' statuses."""
    events: queue.Queue[cri.ContainerEventResponse] = queue.Queue()
    stream = kubelet.rt.GetContainerEvents(cri.GetEventsRequest())

    def read() -> None:
        try:
            for e in stream:
                events.put(e)
        except grpc.RpcError:
            pass  # cancelled at the end

    threading.Thread(target=read, daemon=True).start()
    time.sleep(0.5)  # the stream is open before the pod is made
    config = pod_config(tmp_path, "evented")
    sid = kubelet.rt.RunPodSandbox(cri.RunPodSandboxRequest(config=config)).pod_sandbox_id
    c = cri.ContainerConfig(
        metadata=cri.ContainerMetadata(name="one"), image=cri.ImageSpec(image="busybox"), command=["sleep", "300"]
    )
    cid = kubelet.rt.CreateContainer(cri.CreateContainerRequest(pod_sandbox_id=sid, config=c, sandbox_config=config)).container_id
    kubelet.rt.StartContainer(cri.StartContainerRequest(container_id=cid))
    kubelet.rt.StopContainer(cri.StopContainerRequest(container_id=cid, timeout=0))
    kubelet.rt.RemoveContainer(cri.RemoveContainerRequest(container_id=cid))
    kubelet.rt.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=sid))
    kubelet.rt.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=sid))
    seen: list[tuple[str, int]] = []
    started_with: cri.ContainerEventResponse | None = None
    deadline = time.monotonic() + 20
    while (cid, cri.CONTAINER_DELETED_EVENT) not in seen or (sid, cri.CONTAINER_DELETED_EVENT) not in seen:
        e = events.get(timeout=max(0.1, deadline - time.monotonic()))
        seen.append((e.container_id, e.container_event_type))
        if (e.container_id, e.container_event_type) == (cid, cri.CONTAINER_STARTED_EVENT):
            started_with = e
    stream.cancel()
    mine = [kind for who, kind in seen if who == cid]
    assert mine == [
        cri.CONTAINER_CREATED_EVENT,
        cri.CONTAINER_STARTED_EVENT,
        cri.CONTAINER_STOPPED_EVENT,
        cri.CONTAINER_DELETED_EVENT,
    ]
    assert (sid, cri.CONTAINER_STARTED_EVENT) in seen
    assert started_with is not None and started_with.pod_sandbox_status.id == sid
    assert started_with.pod_sandbox_status.metadata.name == "evented" and started_with.created_at > 0
    assert [s.id for s in started_with.containers_statuses] == [cid]


@pytest.mark.parametrize("driver", ["cgroupfs", "systemd"])
def test_a_pods_containers_go_under_the_kubelets_cgroup_parent(kubelet: Cri, tmp_path: Path, driver: str) -> None:
    """The kubelet's pod cgroup (LinuxPodSandboxConfig.cgroup_parent): the infra container and the pod's
    containers get their cgroups under it, a path with the cgroupfs driver, a slice's with the systemd one."""
    top, pod = f"teucri{uuid.uuid4().hex[:8]}", f"pod{uuid.uuid4().hex[:8]}"
    if driver == "cgroupfs":
        given = parent = f"/{top}/{pod}"
    else:
        given, parent = f"{top}-{pod}.slice", f"/{top}.slice/{top}-{pod}.slice"
    config = pod_config(tmp_path, "grouped")
    config.linux.cgroup_parent = given
    sid = kubelet.rt.RunPodSandbox(cri.RunPodSandboxRequest(config=config)).pod_sandbox_id
    try:
        c = cri.ContainerConfig(
            metadata=cri.ContainerMetadata(name="one"), image=cri.ImageSpec(image="busybox"), command=["sleep", "300"]
        )
        cid = kubelet.rt.CreateContainer(
            cri.CreateContainerRequest(pod_sandbox_id=sid, config=c, sandbox_config=config)
        ).container_id
        kubelet.rt.StartContainer(cri.StartContainerRequest(container_id=cid))
        seen = kubelet.rt.ExecSync(cri.ExecSyncRequest(container_id=cid, cmd=["cat", "/proc/self/cgroup"])).stdout.decode()
        memory = next(
            line.split(":", 2)[2]
            for line in seen.splitlines()
            if "memory" in line.split(":")[1].split(",") or line.startswith("0::")
        )
        assert memory == f"{parent}/{cid}"
    finally:
        kubelet.rt.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=sid))
        kubelet.rt.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=sid))
        for root in [Path("/sys/fs/cgroup"), *Path("/sys/fs/cgroup").iterdir()]:
            for d in (root / parent.lstrip("/"), root / parent.split("/")[1]):
                with contextlib.suppress(OSError):
                    d.rmdir()
