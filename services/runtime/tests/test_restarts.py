"""Docker's restart policies, decided without a clock or a container."""

from __future__ import annotations

import pytest

from teu_api.errors import InvalidArgument
from teu_api.types.v1 import types_pb2 as t
from teu_runtime import restarts


def policy(name: str, n: int = 0) -> t.RestartPolicy:
    return t.RestartPolicy(name=name, maximum_retry_count=n)


def test_who_comes_back() -> None:
    assert not restarts.wanted(policy(""), 1, 0, False) and not restarts.wanted(policy("no"), 1, 0, False)
    assert restarts.wanted(policy("always"), 0, 5, False)
    assert not restarts.wanted(policy("always"), 0, 5, True) and restarts.wanted(policy("always"), 0, 5, True, engine_start=True)
    assert restarts.wanted(policy("unless-stopped"), 0, 0, False) and not restarts.wanted(
        policy("unless-stopped"), 0, 0, True, True
    )
    assert restarts.wanted(policy("on-failure", 3), 1, 2, False) and not restarts.wanted(policy("on-failure", 3), 1, 3, False)
    assert not restarts.wanted(policy("on-failure"), 0, 0, False) and restarts.wanted(policy("on-failure"), 137, 100, False)


def test_back_off_doubles_from_100_ms_up_to_a_minute() -> None:
    assert [restarts.delay(n) for n in range(4)] == [0.1, 0.2, 0.4, 0.8]
    assert restarts.delay(30) == restarts.MAX_DELAY


@pytest.mark.parametrize(("p", "rm"), [(policy("sometimes"), False), (policy("on-failure", -1), False), (policy("always", 3), False),
                                       (policy("always"), True)])  # fmt: skip
def test_bad_policies_are_refused(p: t.RestartPolicy, rm: bool) -> None:
    with pytest.raises(InvalidArgument):
        restarts.check(p, rm)
