"""The results as one table (Teu's median, each peer's, ratio Teu/best peer, spread), JSON and a PNG."""

from __future__ import annotations

import json
import time
from pathlib import Path

from measure import Result


def _fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "n/a"
    if unit == "s":
        return f"{v * 1000:.1f} ms" if v < 1 else f"{v:.2f} s"
    if unit == "x":
        return f"{v:.2f}x"
    return f"{v:.1f} {unit}"


def table(results: list[Result], teu: str = "teu") -> str:
    """A Markdown table, one row per scenario. The ratio compares engines (podman, docker); the raw OCI
    runtimes ("runc run") are shown as the floor an engine adds its work to."""
    peers = sorted({w for r in results for w in (*r.samples, *r.na) if w != teu})
    head = ["scenario", "teu", *peers, "teu/best engine", "teu min-max"]
    rows = [head, ["---"] * len(head)]
    for r in results:
        t = r.median(teu)
        meds = {p: r.median(p) for p in peers}
        known = [m for p, m in meds.items() if m is not None and not p.endswith(" run")]
        best = min(known) if known else None
        ratio = f"{t / best:.2f}" if t is not None and best else "n/a"
        spread = (
            f"{_fmt(min(r.samples[teu]), r.unit)} – {_fmt(max(r.samples[teu]), r.unit)}"
            if r.samples.get(teu)
            else r.na.get(teu, "n/a")
        )
        cells = [_fmt(meds[p], r.unit) if meds[p] is not None else f"n/a ({r.na.get(p, 'not run')})" for p in peers]
        rows.append([r.scenario, _fmt(t, r.unit) if t is not None else f"n/a ({r.na.get(teu, '')})", *cells, ratio, spread])
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def save(results: list[Result], out_dir: Path, meta: dict[str, object]) -> Path:
    """Writes ``<date>.json`` (every sample) and ``<date>.png`` (ratios); returns the JSON path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H%M%S")
    path = out_dir / f"{stamp}.json"
    doc = {"meta": meta, "results": [r.__dict__ for r in results]}
    path.write_text(json.dumps(doc, indent=1))
    _chart(results, out_dir / f"{stamp}.png")
    return path


def _chart(results: list[Result], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    names, ratios = [], []
    for r in results:
        t = r.median("teu")
        known = [m for p in r.samples if p != "teu" and not p.endswith(" run") and (m := r.median(p)) is not None]
        if t is not None and known:
            names.append(r.scenario)
            ratios.append(t / min(known))
    if not names:
        return
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(names) + 1.2))
    ax.barh(names, ratios, color=["#3a7" if x <= 1 else "#c54" for x in ratios])
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_xlabel("Teu / best peer (median; < 1 is faster than every peer)")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
