"""What a kubelet's configs become in Teu (pure): the infra container, a pod's container, labels."""

from __future__ import annotations

from pathlib import Path

import pytest

from teu_api.errors import InvalidArgument
from teu_api.gateway.v1 import gateway_pb2 as gw
from teu_api.k8s.cri.v1 import api_pb2 as cri
from teu_api.types.v1 import types_pb2
from teu_cri import cgroups, meta
from teu_cri.containers import container_config
from teu_cri.pods import infra_config

POD = cri.PodSandboxConfig(
    metadata=cri.PodSandboxMetadata(name="web", uid="u1", namespace="ns", attempt=2),
    hostname="web-0",
    log_directory="/var/log/pods/ns_web_u1",
    labels={"app": "web"},
    annotations={"a": "b"},
    port_mappings=[cri.PortMapping(protocol=cri.UDP, container_port=53, host_port=5353), cri.PortMapping(container_port=80)],
    dns_config=cri.DNSConfig(servers=["10.0.0.10"], searches=["ns.svc"], options=["ndots:5"]),
)


def test_the_infra_container_holds_the_pods_namespaces() -> None:
    c = infra_config(POD, "pause:1")
    assert (c.image, c.name, c.hostname, c.ipc, c.userns) == ("pause:1", "k8s_POD_web_ns_u1_2", "web-0", "shareable", "host")
    assert [(p.host_port, p.container_port, p.protocol) for p in c.ports] == [(5353, 53, "udp")]  # no host port: not published
    assert (list(c.dns), list(c.dns_search), list(c.dns_options)) == (["10.0.0.10"], ["ns.svc"], ["ndots:5"])
    assert meta.user_labels(c.labels) == {"app": "web"} and meta.user_annotations(c.labels) == {"a": "b"}
    assert meta.sandbox_metadata(c.labels) == POD.metadata and c.labels[meta.LOG] == POD.log_directory
    host = cri.PodSandboxConfig()
    host.CopyFrom(POD)
    host.linux.security_context.namespace_options.network = cri.NODE
    host.linux.security_context.namespace_options.pid = cri.NODE
    c = infra_config(host, "pause:1")
    assert (c.network, c.pid, c.hostname, list(c.ports)) == ("host", "host", "", [])
    with pytest.raises(InvalidArgument, match="name, a uid and a namespace"):
        infra_config(cri.PodSandboxConfig(), "pause:1")


def test_a_pods_container_joins_the_infra_container() -> None:
    sandbox = gw.ContainerDetails(summary=gw.ContainerSummary(id="s" * 64, labels=infra_config(POD, "p").labels))
    config = cri.ContainerConfig(
        metadata=cri.ContainerMetadata(name="app", attempt=1), image=cri.ImageSpec(image="busybox"),
        command=["sh"], args=["-c", "true"], envs=[cri.KeyValue(key="A", value="1")],
        mounts=[cri.Mount(container_path="/data", host_path="/srv", readonly=True, propagation=cri.PROPAGATION_HOST_TO_CONTAINER)],
        linux=cri.LinuxContainerConfig(
            resources=cri.LinuxContainerResources(memory_limit_in_bytes=1 << 26, cpu_shares=512),
            security_context=cri.LinuxContainerSecurityContext(
                namespace_options=cri.NamespaceOption(pid=cri.POD), no_new_privs=True,
                capabilities=cri.Capability(add_capabilities=["NET_ADMIN"]), supplemental_groups=[5],
            ),
        ),
    )  # fmt: skip
    config.linux.security_context.run_as_user.value = 1000
    c = container_config(sandbox, config, "/logs/app/1.log")
    joined = f"container:{'s' * 64}"
    assert (c.name, c.network, c.ipc, c.pid) == (f"k8s_app_{'s' * 16}_1", joined, joined, joined)
    assert (list(c.entrypoint.values), list(c.cmd), list(c.env), c.user) == (["sh"], ["-c", "true"], ["A=1"], "1000")
    assert [(m.type, m.source, m.target, m.read_only, m.propagation) for m in c.mounts] == [
        ("bind", "/srv", "/data", True, "rslave")
    ]
    assert (c.resources.memory_bytes, c.resources.cpu_shares) == (1 << 26, 512)
    assert (list(c.cap_add), list(c.group_add)) == (["NET_ADMIN"], ["5"])
    assert list(c.security_opt) == ["no-new-privileges", "seccomp=unconfined"]  # the CRI's default seccomp: none
    assert c.labels[meta.SANDBOX] == "s" * 64 and c.labels[meta.LOG] == "/logs/app/1.log" and c.labels[meta.IMAGE] == "busybox"
    plain = cri.ContainerConfig(metadata=cri.ContainerMetadata(name="b"), image=cri.ImageSpec(image="busybox"))
    assert not container_config(sandbox, plain, "").HasField("entrypoint")  # the image's own entrypoint
    with pytest.raises(InvalidArgument, match="image"):
        container_config(sandbox, cri.ContainerConfig(metadata=cri.ContainerMetadata(name="b")), "")


def test_seccomp_and_users_as_the_cri_says(tmp_path: Path) -> None:
    sandbox = gw.ContainerDetails(summary=gw.ContainerSummary(id="s" * 64, labels=infra_config(POD, "p").labels))

    def opts(**sc: object) -> list[str]:
        config = cri.ContainerConfig(metadata=cri.ContainerMetadata(name="b"), image=cri.ImageSpec(image="busybox"))
        config.linux.security_context.CopyFrom(cri.LinuxContainerSecurityContext(**sc))  # type: ignore[arg-type]
        return list(container_config(sandbox, config, "").security_opt)

    profile = tmp_path / "p.json"
    profile.write_text('{"defaultAction": "SCMP_ACT_ALLOW"}')
    assert opts(seccomp_profile_path="runtime/default") == []
    assert opts(seccomp=cri.SecurityProfile(profile_type=cri.SecurityProfile.RuntimeDefault)) == []
    assert opts(seccomp_profile_path=f"localhost/{profile}") == [profile.read_text()]
    assert opts(privileged=True) == []
    with pytest.raises(InvalidArgument, match="unknown seccomp profile"):
        opts(seccomp_profile_path=str(profile))
    with pytest.raises(InvalidArgument, match="run_as_group needs"):
        opts(run_as_group=cri.Int64Value(value=5))


def test_names_fit_teus_rules_whatever_the_kubelet_sends() -> None:
    long = cri.PodSandboxMetadata(name="Pod-With-A-Name/" + "x" * 300, uid="u" * 300, namespace="n" * 300, attempt=7)
    name = meta.sandbox_name(long)
    assert len(name) <= 253 and "/" not in name and name.endswith("_7")
    assert len(meta.container_name(cri.ContainerMetadata(name="c" * 300, attempt=2), "f" * 64)) <= 253


def test_states_and_label_selection() -> None:
    assert meta.container_state(types_pb2.CONTAINER_STATE_RUNNING) == cri.CONTAINER_RUNNING
    assert meta.container_state(types_pb2.CONTAINER_STATE_UNSPECIFIED) == cri.CONTAINER_UNKNOWN
    labels = infra_config(POD, "p").labels
    assert meta.selected(labels, {"app": "web"}) and not meta.selected(labels, {"app": "db"}) and meta.selected(labels, {})
    assert meta.user_labels({meta.LABELS: "not json"}) == {}


def test_a_pods_infra_container_is_unconfined_unless_the_pod_asks() -> None:
    """The CRI's default seccomp is unconfined, for the sandbox as for its containers."""
    config = cri.PodSandboxConfig(metadata=cri.PodSandboxMetadata(name="p", uid="u", namespace="n"))
    assert list(infra_config(config, "pause").security_opt) == ["seccomp=unconfined"]
    config.linux.security_context.seccomp.profile_type = cri.SecurityProfile.RuntimeDefault
    assert list(infra_config(config, "pause").security_opt) == []


@pytest.mark.parametrize(
    ("given", "path"),
    [
        ("/kubepods/besteffort/pod1234", "/kubepods/besteffort/pod1234"),  # the cgroupfs driver's: as it is
        ("kubepods-besteffort-pod1234.slice", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1234.slice"),
        ("kubepods.slice", "/kubepods.slice"),
        ("-.slice", "/"),
        ("", ""),
    ],
)
def test_the_pods_cgroup_as_either_kubelet_driver_names_it(given: str, path: str) -> None:
    assert cgroups.pod_parent(given) == path


@pytest.mark.parametrize("bad", ["kubepods--pod.slice", "-kubepods.slice", ".slice"])
def test_a_slice_name_systemd_would_refuse_is_refused(bad: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid systemd slice"):
        cgroups.pod_parent(bad)
