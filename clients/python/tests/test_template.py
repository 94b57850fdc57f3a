"""--format templates as Docker's documentation writes them."""

from __future__ import annotations

import pytest

from teu.cli import template
from teu.errors import InvalidArgument

ROW = {"ID": "abc", "Names": "web", "Labels": "a=1", "_labels": {"a": "1", "b": "2"}, "State": {"Status": "running", "Pid": 7},
       "Config": {"Env": ["A=1"], "Labels": {"k": "v"}}}  # fmt: skip


def test_fields_paths_and_functions() -> None:
    assert template.render("{{.ID}}\\t{{.Names}}", ROW) == "abc\tweb"
    assert template.render("{{.State.Status}} {{.State.Pid}}", ROW) == "running 7"
    assert template.render("{{json .Config}}", ROW) == '{"Env":["A=1"],"Labels":{"k":"v"}}'
    assert template.render('{{index .Config.Labels "k"}}/{{.Label "b"}}', ROW) == "v/2"
    assert template.render('{{upper .Names}} {{join .Config.Env ","}}', ROW) == "WEB A=1"


def test_table_and_json() -> None:
    rows = [{"ID": "1", "Names": "a"}, {"ID": "22", "Names": "bb"}]
    assert template.lines("table {{.ID}}\\t{{.Names}}", rows, {"ID": "CONTAINER ID", "Names": "NAMES"}) == [
        "CONTAINER ID   NAMES", "1              a", "22             bb",
    ]  # fmt: skip
    assert template.lines("json", [{"ID": "1", "_labels": {}}], {}) == ['{"ID":"1"}']


@pytest.mark.parametrize("bad", ["{{.Nope}}", "{{printf .ID}}", "{{.ID.Deeper}}", "{{ }}"])
def test_unknown_fields_and_functions_are_errors(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        template.render(bad, ROW)
