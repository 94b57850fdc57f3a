"""Docker's prune filters: until=, label=, label!=."""

from __future__ import annotations

import pytest

from teu_api.errors import InvalidArgument
from teu_api.prunefilter import prune_filter


def test_prune_filters_read_dockers_until_and_labels() -> None:
    """until= keeps what was made before it; label= must all hold, label!= none; others are refused."""
    now = 10_000 * 10**9
    kept = prune_filter(["until=1h", "label=team=a", "label!=keep"], now)
    old, new = now - 2 * 3600 * 10**9, now - 60 * 10**9
    assert kept(old, {"team": "a"}) and not kept(new, {"team": "a"})
    assert not kept(old, {"team": "b"}) and not kept(old, {"team": "a", "keep": ""})
    assert prune_filter([], now)(now, {})
    with pytest.raises(InvalidArgument, match="prune takes"):
        prune_filter(["dangling=true"], now)
