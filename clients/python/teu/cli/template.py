"""``--format``: the part of Go's text/template people paste from Docker's documentation. Pure.

Supported: text with ``{{.Field}}`` and ``{{.A.B}}`` paths, ``{{json .}}``/``{{json .Field}}``,
``{{index .Map "key"}}``, ``{{.Label "key"}}`` (ps), ``{{lower}}``/``{{upper}}``/``{{title}}``,
``{{join .List ","}}``; a ``table`` prefix for a header row and aligned columns; ``json`` alone for one
JSON object per line. ``\\t`` and ``\\n`` in the format are a tab and a newline, as in Docker's CLI.
Anything else is an error naming what could not be evaluated.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable, Mapping
from typing import Any

from teu.errors import InvalidArgument

_ACTION = re.compile(r"{{-?\s*(.*?)\s*-?}}", re.S)


def _value(path: str, obj: Any) -> Any:
    if path == ".":
        return obj
    if not path.startswith("."):
        raise InvalidArgument(f"template: cannot evaluate {path!r}: fields start with a dot")
    cur = obj
    for part in path[1:].split("."):
        if isinstance(cur, Mapping) and part in cur:
            cur = cur[part]
        else:
            raise InvalidArgument(f"template: can't evaluate field {part} in {path}")
    return cur


def _show(value: Any) -> str:
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{_show(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_show(v) for v in value) + "]"
    return str(value)


def _action(text: str, obj: Any) -> str:
    try:
        words = shlex.split(text)
    except ValueError:
        raise InvalidArgument(f"template: bad action {{{{{text}}}}}") from None
    if not words:
        raise InvalidArgument("template: empty action {{}}")
    head, args = words[0], words[1:]
    if head.startswith("."):
        if len(args) == 1 and head.endswith(".Label") and isinstance(obj, Mapping):  # ps: {{.Label "key"}}
            return str(dict(obj.get("_labels", {})).get(args[0], ""))
        if args:
            raise InvalidArgument(f"template: {head} takes no arguments")
        return _show(_value(head, obj))
    if head == "json" and len(args) == 1:
        return json.dumps(_value(args[0], obj), separators=(",", ":"))
    if head == "index" and len(args) == 2:
        found = _value(args[0], obj)
        return _show(found.get(args[1]) if isinstance(found, Mapping) else None)
    if head in ("lower", "upper", "title") and len(args) == 1:
        text_value = _show(_value(args[0], obj))
        return {"lower": text_value.lower(), "upper": text_value.upper(), "title": text_value.title()}[head]
    if head == "join" and len(args) == 2:
        items = _value(args[0], obj)
        return args[1].join(_show(i) for i in items) if isinstance(items, list) else _show(items)
    raise InvalidArgument(f"template: function {head!r} is not supported (json, index, join, lower, upper, title)")


def render(template: str, obj: Any) -> str:
    """``template`` evaluated against ``obj`` (a dict, as Docker's field names)."""
    template = template.replace("\\t", "\t").replace("\\n", "\n")
    out, pos = [], 0
    for m in _ACTION.finditer(template):
        out.append(template[pos : m.start()])
        out.append(_action(m.group(1), obj))
        pos = m.end()
    out.append(template[pos:])
    return "".join(out)


def lines(fmt: str, rows: Iterable[Mapping[str, Any]], headers: Mapping[str, str]) -> list[str]:
    """What ``--format fmt`` prints for ``rows``: a line each (``json``: the row as JSON; ``table ...``:
    a header made of ``headers`` and columns aligned)."""
    rows = list(rows)
    if fmt.strip() == "json":
        return [json.dumps({k: v for k, v in r.items() if not k.startswith("_")}, separators=(",", ":")) for r in rows]
    if not fmt.startswith("table"):
        return [render(fmt, r) for r in rows]
    body = fmt[len("table") :].strip() or "\t".join(f"{{{{.{h}}}}}" for h in headers)
    header = _ACTION.sub(lambda m: headers.get(m.group(1).lstrip(".").split()[0], m.group(1).lstrip(".").upper()), body)
    table = [header.replace("\\t", "\t").split("\t"), *(render(body, r).split("\t") for r in rows)]
    width = max(len(r) for r in table)
    cols = [max(len(r[i]) if i < len(r) else 0 for r in table) for i in range(width)]
    return ["   ".join(cell.ljust(cols[i]) for i, cell in enumerate(r)).rstrip() for r in table]
