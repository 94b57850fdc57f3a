"""Container ids and names: validation and generated names."""

from __future__ import annotations

import random
import re
from collections.abc import Collection

from teu_api.errors import InvalidArgument
from teu_api.ids import is_full_id

_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,252}")
_TRIES = 64
_ADJECTIVES = [
    "brave",
    "calm",
    "eager",
    "fancy",
    "gentle",
    "happy",
    "jolly",
    "keen",
    "lively",
    "merry",
    "nimble",
    "proud",
    "quiet",
    "rapid",
    "sharp",
    "swift",
    "tender",
    "vivid",
    "witty",
    "zealous",
    "bold",
    "bright",
    "clever",
    "daring",
]
_NOUNS = [
    "turing",
    "hopper",
    "lovelace",
    "knuth",
    "ritchie",
    "thompson",
    "torvalds",
    "lamport",
    "liskov",
    "dijkstra",
    "hamilton",
    "babbage",
    "shannon",
    "curie",
    "noether",
    "euler",
    "gauss",
    "fermat",
    "newton",
    "darwin",
    "tesla",
    "bohr",
    "kepler",
    "galileo",
]


def check_id(cid: str) -> str:
    """Returns ``cid`` if it is 64 lowercase hex characters; InvalidArgument otherwise."""
    if not is_full_id(cid):
        raise InvalidArgument(f"invalid container id {cid!r}: want 64 lowercase hex characters")
    return cid


def check_name(name: str) -> str:
    """Returns ``name`` if Docker would accept it; InvalidArgument otherwise."""
    if not _NAME.fullmatch(name):
        raise InvalidArgument(f"invalid container name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name


def generate(rng: random.Random | None = None) -> str:
    """A readable random name such as ``brave_turing``."""
    r = rng or random.SystemRandom()
    return f"{r.choice(_ADJECTIVES)}_{r.choice(_NOUNS)}{r.randrange(100)}"


def free(taken: Collection[str], rng: random.Random | None = None) -> str:
    """A generated name not in ``taken``: a short one while they last, then one with a random
    64-bit suffix (so this ends however many containers exist)."""
    r = rng or random.SystemRandom()
    for _ in range(_TRIES):
        if (name := generate(r)) not in taken:
            return name
    while (name := f"{generate(r)}_{r.getrandbits(64):016x}") in taken:
        pass
    return name
