"""Benchmark outputs: `bench.json` (schema "ardistill.bench/1", see docs/benchmarks.md), `bench.md`, PNG plots,
and the merged report of several runs (`ardistill report DIR...`)."""

from __future__ import annotations

import json
from pathlib import Path

from ardistill.errors import ArdistillError
from ardistill.io import atomic_path, atomic_write_json, atomic_write_text

SCHEMA = "ardistill.bench/1"
LATENCY_PLOT = "latency-vs-batch.png"
QUALITY_PLOT = "fid-vs-speedup.png"


def write_run(out_dir: Path, doc: dict) -> list[Path]:
    """Write bench.json, bench.md and the plots of one run into `out_dir`; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "bench.json", doc)
    written = [out_dir / "bench.json"]
    written += plot_latency(doc["speed"], out_dir / LATENCY_PLOT)
    written += plot_quality(doc, out_dir / QUALITY_PLOT)
    atomic_write_text(out_dir / "bench.md", run_markdown(doc, plots=[p.name for p in written if p.suffix == ".png"]))
    return [out_dir / "bench.md", *written]


def load_run(path: str | Path) -> dict:
    """A run folder (or its bench.json) → the document; one-line errors for anything else."""
    p = Path(path)
    p = p / "bench.json" if p.is_dir() else p
    if not p.is_file():
        raise ArdistillError(f"{path}: no bench.json (run `ardistill bench --out {path}` first)")
    try:
        doc = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ArdistillError(f"{p}: not JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise ArdistillError(f"{p}: not an ardistill benchmark (expected schema {SCHEMA!r}, got {doc.get('schema') if isinstance(doc, dict) else None!r})")
    doc["_dir"] = str(p.parent)
    return doc


# ------------------------------------------------------------------------------------------------- markdown
def _f(v, digits: int = 1) -> str:
    if v is None:
        return "–"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def speed_table(rows: list[dict]) -> str:
    head = ("| method | B | AR steps | fwd/img | tokens ms (p10–p90) | decode ms | total ms (p10–p90) | img/s | "
            "speed-up (incl. decode) | speed-up (tokens) | peak MiB |")
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['batch']} | {r['ar_steps']} | {_f(r['forward_passes_per_image'])} | "
            f"{_f(r['tokens_median_ms'])} ({_f(r['tokens_p10_ms'])}–{_f(r['tokens_p90_ms'])}) | {_f(r['decode_median_ms'])} | "
            f"{_f(r['total_median_ms'])} ({_f(r['total_p10_ms'])}–{_f(r['total_p90_ms'])}) | {_f(r['total_images_per_s'])} | "
            f"{_f(r['speedup_total'], 2)}× | {_f(r['speedup_tokens'], 2)}× | {_f(r['peak_memory_mib'], 0)} |")
    return "\n".join(lines)


def quality_table(quality: dict) -> str:
    lines = ["| method | FID | KID ×1e3 | precision | recall | IS | class acc. | images |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, q in quality.items():
        kid = q.get("kid_mean")
        acc = q.get("class_accuracy")
        lines.append(f"| {name} | {_f(q.get('fid'), 2)} | {_f(kid * 1e3 if kid is not None else None, 2)} | {_f(q.get('precision'), 3)} | "
                     f"{_f(q.get('recall'), 3)} | {_f(q.get('isc_mean'), 2)} | {_f(acc * 100 if acc is not None else None, 1)}% | {q.get('num_images')} |")
    return "\n".join(lines)


def grid_caption(method: str, speed_rows: list[dict], quality: dict) -> str:
    """What a sample grid shows: 'dd-1step · 1 AR step · toy-FID 18.96 (1000 images)' (the FID only when measured)."""
    parts = [method]
    steps = next((r["ar_steps"] for r in speed_rows if r["method"] == method), None)
    if steps is not None:
        parts.append(f"{steps} AR step{'' if steps == 1 else 's'}")
    q = quality.get(method) or {}
    if q.get("fid") is not None:
        kind = "toy-FID" if str(q.get("extractor", "")).startswith("ardistill-toy") else "FID"
        parts.append(f"{kind} {q['fid']:.2f} ({q.get('num_images')} images)")
    else:
        parts.append("FID not measured")
    return " · ".join(parts)


def environment_line(env: dict) -> str:
    return (f"device {env.get('device')} ({env.get('device_name')}), {env.get('sampler', 'reference')} sampler, {env.get('dtype')}, {env.get('compile')}, "
            f"CUDA graphs {'on' if env.get('cuda_graphs') else 'off'}, torch {env.get('torch')}, {env.get('threads')} threads, "
            f"commit {env.get('commit')}")


def run_markdown(doc: dict, *, plots: list[str], heading: str = "#", plot_prefix: str = "") -> str:
    env = doc.get("environment", {})
    parts = [f"{heading} Benchmark: {doc.get('teacher')} ({doc.get('created', '')})", "",
             f"Measured on {environment_line(env)}. Median of {doc.get('repeats')} interleaved repeats after "
             f"{doc.get('warmup')} warm-up(s); speed-ups are against the teacher in the same run and batch size. "
             "`fwd/img` counts network forward passes per image as measured by forward hooks (CFG's doubled batch "
             "counts twice). Peak memory: " + str(doc["speed"][0]["memory_kind"] if doc.get("speed") else "–") + ".", ""]
    parts += [f"{doc['note']}", ""] if doc.get("note") else []
    parts += [f"**Skipped {s['name']}**: {s['reason']}.\n" for s in doc.get("skipped") or []]
    parts += [speed_table(doc.get("speed", [])), ""]
    if doc.get("quality"):
        parts += [f"{heading}# Quality", "", quality_table(doc["quality"]), ""]
    for p in plots:
        parts += [f"![{p}]({plot_prefix}{p})", ""]
    if doc.get("grids"):
        parts += [f"{heading}# Samples", ""]
        for name, g in doc["grids"].items():
            parts += [f"![{name}]({plot_prefix}{g})", "", f"*{grid_caption(name, doc.get('speed', []), doc.get('quality') or {})}*", ""]
    return "\n".join(parts)


def merged_markdown(docs: list[dict], out_dir: Path) -> str:
    """One page over several runs; plots are linked relative to `out_dir`."""
    import os

    parts = ["# ardistill benchmark report", ""]
    for doc in docs:
        rel = os.path.relpath(doc["_dir"], out_dir)
        plots = [p for p in (LATENCY_PLOT, QUALITY_PLOT) if (Path(doc["_dir"]) / p).is_file()]
        parts.append(run_markdown(doc, plots=plots, heading="##", plot_prefix=f"{rel}/"))
    return "\n".join(parts)


# ----------------------------------------------------------------------------------------------------- plots
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")


def plot_latency(rows: list[dict], path: Path) -> list[Path]:
    """Median latency (decode included; dashed: tokens only) against batch size, one line per method."""
    if not rows:
        return []
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name in dict.fromkeys(r["method"] for r in rows):
        rs = sorted((r for r in rows if r["method"] == name), key=lambda r: r["batch"])
        line, = ax.plot([r["batch"] for r in rs], [r["total_median_ms"] for r in rs], marker="o", label=name)
        ax.plot([r["batch"] for r in rs], [r["tokens_median_ms"] for r in rs], ls="--", color=line.get_color(), alpha=0.6)
    ax.set(xscale="log", yscale="log", xlabel="batch size", ylabel="latency per batch, ms (median)",
           title=f"latency vs batch ({rows[0]['device']}, {rows[0]['dtype']}); dashed: tokens only")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    _save(fig, path)
    plt.close(fig)
    return [path]


# Label positions tried in turn (offset in points, horizontal alignment): above right, below right, above left, below
# left, then further out.
_LABEL_SPOTS = [((4, 4), "left"), ((4, -11), "left"), ((-4, 4), "right"), ((-4, -11), "right"),
                ((4, 14), "left"), ((4, -21), "left"), ((-4, 14), "right"), ((-4, -21), "right")]


def label_points(fig, ax, points: list[tuple[str, float, float]], *, fontsize: float = 8) -> None:
    """Name each (name, x, y) point beside it where its label overlaps no label placed before (two methods with
    nearly equal speed-up and FID would otherwise print over each other); the first spot if none is free."""
    fig.canvas.draw()  # settles the axis limits, so the labels' extents below are where they will be drawn
    renderer = fig.canvas.get_renderer()
    placed = []
    for name, x, y in points:
        for offset, ha in _LABEL_SPOTS:
            text = ax.annotate(name, (x, y), textcoords="offset points", xytext=offset, ha=ha, fontsize=fontsize)
            box = text.get_window_extent(renderer)
            if not any(box.overlaps(other) for other in placed):
                break
            text.remove()
        else:
            text = ax.annotate(name, (x, y), textcoords="offset points", xytext=_LABEL_SPOTS[0][0], fontsize=fontsize)
            box = text.get_window_extent(renderer)
        placed.append(box)


def plot_quality(doc: dict, path: Path) -> list[Path]:
    """FID against speed-up (decode included, at the largest measured batch): teacher, every DD step count, every
    CoDe N as points."""
    quality, rows = doc.get("quality") or {}, doc.get("speed") or []
    if not quality or not rows:
        return []
    batch = max(r["batch"] for r in rows)
    speedup = {r["method"]: r["speedup_total"] for r in rows if r["batch"] == batch}
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    points = [(name, speedup[name], q["fid"]) for name, q in quality.items()
              if speedup.get(name) is not None and q.get("fid") is not None]
    for _, x, y in points:
        ax.scatter([x], [y], s=40)
    ax.set(xlabel=f"speed-up vs teacher at batch {batch} (decode included)", ylabel="FID (lower is better)",
           title=f"quality vs speed ({doc.get('teacher')})")
    ax.grid(alpha=0.3)
    label_points(fig, ax, points)
    _save(fig, path)
    plt.close(fig)
    return [path]
