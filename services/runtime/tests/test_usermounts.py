"""What the runtime checks of a container's mounts at create and does before it mounts them."""

from __future__ import annotations

from pathlib import Path

import pytest

from teu_api.errors import InvalidArgument
from teu_api.runtime.v1 import runtime_pb2 as rt
from teu_api.types.v1 import types_pb2
from teu_runtime import usermounts


def bind(source: str, create: bool = False, dst: str = "/data") -> rt.ContainerMount:
    return rt.ContainerMount(
        mount=types_pb2.Mount(type="bind", source=source, destination=dst, options=["rbind"]), create_source=create
    )


def test_a_missing_bind_source_is_refused_unless_it_is_to_be_created(tmp_path: Path) -> None:
    usermounts.check([bind(str(tmp_path)), bind(str(tmp_path / "new"), create=True)])
    with pytest.raises(InvalidArgument, match="bind source path does not exist"):
        usermounts.check([bind(str(tmp_path / "missing"))])


@pytest.mark.parametrize("bad", [bind("relative"), bind("/x", dst="/"), bind("/x", dst="rel"),
                                 rt.ContainerMount(mount=types_pb2.Mount(type="nfs", source="h:/x", destination="/x"))])  # fmt: skip
def test_what_the_runtime_cannot_mount_is_refused(bad: rt.ContainerMount) -> None:
    with pytest.raises(InvalidArgument):
        usermounts.check([bad])


def test_prepare_creates_only_the_sources_it_may(tmp_path: Path) -> None:
    usermounts.prepare([bind(str(tmp_path / "a" / "b"), create=True), bind(str(tmp_path / "c"))])
    assert (tmp_path / "a" / "b").is_dir() and not (tmp_path / "c").exists()
