"""A real payload beside busybox: Debian 12 built by debootstrap, running a Python program."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import Engine, debian_tar
from teu.client import Client, ContainerOptions
from teu.testing import build_folder
from teu_api.gateway.v1 import gateway_pb2 as gw
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


def test_a_multi_stage_python_app_builds_and_runs(client: Client, debian: str, tmp_path: Path) -> None:
    """A Python app on Debian: its first stage prepares data with Python, the second copies it, adds
    the app and a user, and runs as that user."""
    ctx = tmp_path / "app"
    ctx.mkdir()
    (ctx / "app.py").write_text("import json, os\nprint(json.load(open('/srv/data.json'))['greeting'], os.getuid())\n")
    (ctx / "Dockerfile").write_text(
        "FROM debian:12 AS prepare\n"
        "RUN python3 -c \"import json; json.dump({'greeting': 'hello from stage one'}, open('/data.json', 'w'))\"\n"
        "FROM debian:12\n"
        "RUN useradd --uid 1500 --create-home app\n"
        "COPY --from=prepare /data.json /srv/data.json\n"
        "COPY --chown=app:app app.py /home/app/\n"
        "USER app\n"
        "WORKDIR /home/app\n"
        'CMD ["python3", "app.py"]\n'
    )
    image, _ = build_folder(client, ctx, gw.BuildOptions(tags=["python-app:1"]))
    try:
        r = client.run(ContainerOptions(image="python-app:1", remove=True))
        assert (r.exit_code, r.stdout) == (0, b"hello from stage one 1500\n"), r.stderr
        owner = client.run(ContainerOptions(image=image, cmd=["stat", "-c", "%U", "app.py"], remove=True))
        assert owner.stdout == b"app\n"
    finally:
        client.remove_image("python-app:1")
