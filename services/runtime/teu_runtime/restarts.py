"""Docker's restart policies: whether a container that stopped is started again, and after how long. Pure.

- ``no``: never. ``always``: whatever it exited with. ``unless-stopped``: the same, unless a user
  stopped it. ``on-failure[:N]``: when it exited non-zero, at most N times (no limit without N).
- A user's ``stop`` is final for ``unless-stopped``; for ``always`` until the engine starts again
  (Docker's rule). ``kill`` is not a stop.
- Back-off: 100 ms, doubling after each run shorter than 10 s, back to 100 ms after a longer one;
  at most a minute (Docker's numbers).
"""

from __future__ import annotations

from typing import Final

from teu_api.errors import InvalidArgument
from teu_api.types.v1 import types_pb2

NAMES: Final = ("", "no", "always", "unless-stopped", "on-failure")
FIRST_DELAY: Final = 0.1
MAX_DELAY: Final = 60.0
#: A run at least this long counts as healthy: the back-off starts over.
STEADY: Final = 10.0


def check(policy: types_pb2.RestartPolicy, auto_remove: bool) -> None:
    """InvalidArgument for an unknown policy, a retry count that is negative or given without
    on-failure, or a restarting policy with --rm (Docker refuses both together)."""
    if policy.name not in NAMES:
        raise InvalidArgument(f"invalid restart policy {policy.name[:40]!r}: want no, always, unless-stopped or on-failure[:N]")
    if policy.maximum_retry_count < 0:
        raise InvalidArgument(
            f"invalid restart policy: the maximum retry count must not be negative, got {policy.maximum_retry_count}"
        )
    if policy.maximum_retry_count and policy.name != "on-failure":
        raise InvalidArgument(f"invalid restart policy: a maximum retry count is for on-failure only, not {policy.name or 'no'}")
    if auto_remove and policy.name not in ("", "no"):
        raise InvalidArgument("conflicting options: cannot combine --restart and --rm")


def wanted(
    policy: types_pb2.RestartPolicy, exit_code: int, restarts: int, stopped_by_user: bool, engine_start: bool = False
) -> bool:
    """Whether a container that is not running should be started again. ``restarts`` counts the
    times the engine started it again already; ``engine_start``: the engine itself is starting."""
    if policy.name == "always":
        return engine_start or not stopped_by_user
    if policy.name == "unless-stopped":
        return not stopped_by_user
    if policy.name == "on-failure":
        limit = policy.maximum_retry_count
        return not stopped_by_user and exit_code != 0 and (limit == 0 or restarts < limit)
    return False


def delay(failures: int) -> float:
    """The back-off before the restart that follows ``failures`` short runs in a row."""
    return float(min(MAX_DELAY, FIRST_DELAY * 2.0 ** min(failures, 20)))
