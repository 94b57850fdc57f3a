"""A real payload beside busybox: Debian 12 built by debootstrap, running a Python program."""

from __future__ import annotations

import pytest

from conftest import Engine, debian_tar
from teu.client import Client, ContainerOptions
from teu_api.types.v1 import types_pb2


@pytest.fixture(scope="module")
def debian(engine: Engine) -> str:
    """The `debian` image (see conftest.debian_tar)."""
    with Client(engine.target) as c, debian_tar().open("rb") as f:
        c.import_image(f, "debian:12", types_pb2.ImageConfig(cmd=["bash"]))
    return "debian:12"


def test_python_program_runs_in_debian(client: Client, debian: str) -> None:
    """A Python program runs in the Debian image and sees Debian 12 and its own hostname."""
    program = "import platform, socket; print(open('/etc/debian_version').read().split('.')[0], platform.python_version()[:2])"
    r = client.run(ContainerOptions(image=debian, cmd=["python3", "-c", program], remove=True))
    assert r.exit_code == 0, r.stderr
    major, py = r.stdout.decode().split()
    assert (major, py) == ("12", "3.")


def test_debian_user_and_commit(client: Client, debian: str) -> None:
    """`-u nobody` resolves from Debian's passwd; a commit of an apt-free change runs again."""
    r = client.run(ContainerOptions(image=debian, cmd=["sh", "-c", "id -un; echo print\\(42\\) > /app.py"], user="root"))
    assert r.stdout == b"root\n"
    client.commit(r.id, "debian-app:1", changes=['CMD ["python3", "/app.py"]'])
    client.remove(r.id)
    out = client.run(ContainerOptions(image="debian-app:1", remove=True))
    assert out.stdout == b"42\n"
    assert client.run(ContainerOptions(image=debian, cmd=["id", "-u"], user="nobody", remove=True)).stdout == b"65534\n"
    client.remove_image("debian-app:1")
