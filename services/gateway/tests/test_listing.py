"""ps --filter over runtime records: Docker's keys, alternatives within a key, all keys at once."""

from __future__ import annotations

import pytest

from teu_api.errors import InvalidArgument
from teu_api.runtime.v1 import runtime_pb2 as rt
from teu_api.storage.v1 import storage_pb2 as st
from teu_api.types.v1 import types_pb2 as t
from teu_gateway import listing

RUNNING, EXITED, CREATED = t.CONTAINER_STATE_RUNNING, t.CONTAINER_STATE_EXITED, t.CONTAINER_STATE_CREATED


def container(n: int, state: int, **labels: str) -> rt.Container:
    c = rt.Container(id=f"{n:02d}" * 32, name=f"c{n}", state=state, created_at=n, exit_code=n if state == EXITED else 0)
    c.spec.labels.update(labels)
    c.spec.image_ref = "busybox" if n % 2 else "debian:12"
    c.spec.image_id = "sha256:" + ("ab" if n % 2 else "cd") * 32
    return c


ALL = [container(5, RUNNING, tier="web"), container(4, EXITED, tier="db"), container(3, CREATED), container(2, EXITED),
       container(1, RUNNING, tier="web", team="x")]  # fmt: skip


def names(filters: list[str], every: bool = False, last: int = 0) -> list[str]:
    return [c.name for c in listing.select(ALL, filters, every, last)]


def test_keys_alternatives_and_conjunction() -> None:
    assert names([]) == ["c5", "c1"]
    assert names(["label=tier=web"]) == ["c5", "c1"]
    assert names(["label=tier"], every=True) == ["c5", "c4", "c1"]
    assert names(["label=tier=web", "label=team"]) == ["c1"]
    assert names(["status=exited"]) == ["c4", "c2"]  # a status other than running shows every state
    assert names(["status=exited", "status=created"]) == ["c4", "c3", "c2"]
    assert names(["exited=2"]) == ["c2"]
    assert names(["name=^c[34]$"], every=True) == ["c4", "c3"]
    assert names(["ancestor=debian:12"], every=True) == ["c4", "c2"]
    assert names(["ancestor=abababab"], every=True) == ["c5", "c3", "c1"]
    assert names(["before=c3"], every=True) == ["c2", "c1"] and names(["since=c3"], every=True) == ["c5", "c4"]
    assert names(["id=0505"]) == ["c5"]
    assert names([], last=2) == ["c5", "c4"]


@pytest.mark.parametrize("bad", ["colour=red", "status=sleeping", "exited=x", "before=nobody", "name=(", "label"])
def test_bad_filters_are_invalid_argument(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        listing.select(ALL, [bad], True)


def image(n: int, *tags: str, **labels: str) -> st.Image:
    i = st.Image(id="sha256:" + f"{n:02d}" * 32, repo_tags=list(tags), created_at=n)
    i.config.labels.update(labels)
    return i


IMAGES = [
    image(4, "app:2", "reg.local:5000/team/app:2", env="prod"),
    image(3),
    image(2, "app:1", env="dev"),
    image(1, "busybox:latest"),
]


def test_image_filters() -> None:
    def ids(filters: list[str]) -> list[int]:
        return [int(i.id[7:9]) for i in listing.select_images(IMAGES, filters)]

    assert ids(["dangling=true"]) == [3] and ids(["dangling=false"]) == [4, 2, 1]
    assert ids(["reference=app"]) == [4, 2] and ids(["reference=app:1"]) == [2] and ids(["reference=*/team/*"]) == [4]
    assert ids(["label=env"]) == [4, 2] and ids(["label=env=dev"]) == [2]
    assert ids(["before=app:2"]) == [3, 2, 1] and ids(["since=app:1"]) == [4, 3]
    for bad in ("size=1", "dangling=maybe", "before=nope"):
        with pytest.raises(InvalidArgument):
            listing.select_images(IMAGES, [bad])
