"""How the CRI's pods and containers are kept as Teu containers: labels (pure).

A pod sandbox is an infra container (it holds the pod's network and IPC namespaces); a container of
the pod is a Teu container that joins them. What the kubelet gave (metadata, labels, annotations, log
paths) rides in labels of the Teu container under ``io.teu.cri.``, so the gateway's store is the only
store: nothing of the CRI's own can drift from it, and it survives any restart as containers do.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from typing import Final

from teu_api.errors import InvalidArgument
from teu_api.k8s.cri.v1 import api_pb2 as cri
from teu_api.types.v1 import types_pb2

PREFIX: Final = "io.teu.cri."
KIND: Final = PREFIX + "kind"  # "sandbox" or "container"
SANDBOX: Final = PREFIX + "sandbox"  # a container's pod sandbox id
METADATA: Final = PREFIX + "metadata"  # JSON: name, uid, namespace, attempt
LABELS: Final = PREFIX + "labels"  # JSON of the kubelet's labels
ANNOTATIONS: Final = PREFIX + "annotations"  # JSON of the kubelet's annotations
LOG: Final = PREFIX + "log"  # a sandbox's log directory, a container's log path
IMAGE: Final = PREFIX + "image"  # the image as the kubelet named it
STOPPED: Final = PREFIX + "stopped"  # a sandbox whose StopPodSandbox ran ("1")
SANDBOX_KIND, CONTAINER_KIND = "sandbox", "container"

#: Longest label value the kubelet's maps may take, encoded (Teu's own limits apply too).
MAX_ENCODED = 64 * 1024


def _encode(value: Mapping[str, object], what: str) -> str:
    text = json.dumps(dict(value), sort_keys=True, separators=(",", ":"))
    if len(text) > MAX_ENCODED:
        raise InvalidArgument(f"{what} take {len(text)} bytes, at most {MAX_ENCODED}")
    return text


def _decode(labels: Mapping[str, str], key: str) -> dict[str, str]:
    return dict(_parsed(labels.get(key) or "{}"))


@functools.lru_cache(maxsize=4096)
def _parsed(text: str) -> tuple[tuple[str, str], ...]:
    """A label's JSON object as pairs, parsed once for the many containers that share it (a list of
    500 containers reads 1500 such labels, most of them the same few)."""
    try:
        value = json.loads(text)
    except ValueError:
        return ()
    return tuple((str(k), str(v)) for k, v in value.items()) if isinstance(value, dict) else ()


def sandbox_labels(config: cri.PodSandboxConfig) -> dict[str, str]:
    """The labels of a pod sandbox's infra container."""
    m = config.metadata
    return {
        KIND: SANDBOX_KIND,
        METADATA: _encode({"name": m.name, "uid": m.uid, "namespace": m.namespace, "attempt": m.attempt}, "metadata"),
        LABELS: _encode(config.labels, "labels"),
        ANNOTATIONS: _encode(config.annotations, "annotations"),
        LOG: config.log_directory,
    }


def container_labels(sandbox_id: str, config: cri.ContainerConfig, log_path: str) -> dict[str, str]:
    """The labels of a pod's container."""
    m = config.metadata
    return {
        KIND: CONTAINER_KIND,
        SANDBOX: sandbox_id,
        METADATA: _encode({"name": m.name, "attempt": m.attempt}, "metadata"),
        LABELS: _encode(config.labels, "labels"),
        ANNOTATIONS: _encode(config.annotations, "annotations"),
        LOG: log_path,
        IMAGE: config.image.image,
    }


def kind(labels: Mapping[str, str]) -> str:
    """ "sandbox", "container", or "" for a Teu container the CRI did not make."""
    return labels.get(KIND, "")


def sandbox_metadata(labels: Mapping[str, str]) -> cri.PodSandboxMetadata:
    m = _decode(labels, METADATA)
    return cri.PodSandboxMetadata(name=m.get("name", ""), uid=m.get("uid", ""), namespace=m.get("namespace", ""),
                                  attempt=int(m.get("attempt", "0") or 0))  # fmt: skip


def container_metadata(labels: Mapping[str, str]) -> cri.ContainerMetadata:
    m = _decode(labels, METADATA)
    return cri.ContainerMetadata(name=m.get("name", ""), attempt=int(m.get("attempt", "0") or 0))


def user_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """The kubelet's labels."""
    return _decode(labels, LABELS)


def user_annotations(labels: Mapping[str, str]) -> dict[str, str]:
    """The kubelet's annotations."""
    return _decode(labels, ANNOTATIONS)


def selected(labels: Mapping[str, str], selector: Mapping[str, str]) -> bool:
    """Whether the kubelet's labels match every key=value of ``selector``."""
    if not selector:
        return True
    mine = user_labels(labels)
    return all(mine.get(k) == v for k, v in selector.items())


def _part(text: str, most: int) -> str:
    """``text`` as a piece of a Teu name: its first ``most`` characters, any outside [a-zA-Z0-9_.-] as '-'."""
    return re.sub(r"[^a-zA-Z0-9_.-]", "-", text[:most])


def sandbox_name(m: cri.PodSandboxMetadata) -> str:
    """The infra container's name, unique per pod attempt (the kubelet's own naming for Docker, each
    part cut short enough for Teu's 253 characters: the uid keeps it unique)."""
    if not (m.name and m.uid and m.namespace):
        raise InvalidArgument("the pod's metadata needs a name, a uid and a namespace")
    return f"k8s_POD_{_part(m.name, 63)}_{_part(m.namespace, 63)}_{_part(m.uid, 64)}_{m.attempt}"


def container_name(m: cri.ContainerMetadata, sandbox_id: str) -> str:
    """A container's name, unique per pod and container attempt: its name, its pod's id."""
    if not m.name:
        raise InvalidArgument("the container's metadata needs a name")
    return f"k8s_{_part(m.name, 63)}_{sandbox_id[:16]}_{m.attempt}"


def container_state(state: types_pb2.ContainerState.ValueType) -> cri.ContainerState.ValueType:
    """Teu's container state as the CRI's."""
    return {
        types_pb2.CONTAINER_STATE_CREATED: cri.CONTAINER_CREATED,
        types_pb2.CONTAINER_STATE_RUNNING: cri.CONTAINER_RUNNING,
        types_pb2.CONTAINER_STATE_EXITED: cri.CONTAINER_EXITED,
    }.get(state, cri.CONTAINER_UNKNOWN)
