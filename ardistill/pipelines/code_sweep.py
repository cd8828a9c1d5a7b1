"""The CoDe N-sweep: for each number of drafted scales N, sample quality (toy-FID on the procedural world), latency,
speed-up over the drafter alone (N = K) and peak memory — one run, one table, one plot.

Latency and memory come from `ardistill.bench.timing.measure` (CUDA-synchronised wall clock and allocator peak on
GPU; wall clock and the process's peak RSS on CPU). Image decoding is excluded from the latency (as in the paper);
on CPU the peak RSS includes both models' weights, which are loaded for every N alike.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ardistill.bench.report import label_points
from ardistill.bench.timing import measure
from ardistill.devices import describe_device
from ardistill.errors import BadArgumentError
from ardistill.eval.protocol import GeneratorFns, toy_quality
from ardistill.io import atomic_path, atomic_write_json, atomic_write_text
from ardistill.methods.code.sampler import CoDe


@dataclass
class SweepRow:
    draft_steps: int
    latency_ms: float
    speedup: float = 1.0  # drafter-alone latency / this latency
    peak_memory_mib: float = 0.0
    memory_ratio: float = 1.0  # this peak / the drafter-alone peak
    fid: float | None = None
    kid: float | None = None
    memory_kind: str = ""


@dataclass
class SweepResult:
    label: str
    batch_size: int
    device: str
    num_images: int
    rows: list[SweepRow] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {**{k: v for k, v in asdict(self).items() if k != "rows"}, "rows": [asdict(r) for r in self.rows]}

    def markdown(self) -> str:
        """One Markdown table, N = K (the drafter alone) first."""
        lines = [f"| N (drafted scales) | latency, ms/batch of {self.batch_size} | speed-up | peak memory, MiB | memory ratio | toy-FID |",
                 "|---|---|---|---|---|---|"]
        for r in self.rows:
            fid = f"{r.fid:.2f}" if r.fid is not None else "–"
            lines.append(f"| {r.draft_steps} | {r.latency_ms:.1f} | {r.speedup:.2f}× | {r.peak_memory_mib:.0f} | {r.memory_ratio:.2f} | {fid} |")
        return "\n".join(lines)


def parse_range(text: str, num_scales: int) -> list[int]:
    """'4..6' → [4, 5, 6]; '1,3,5' → [1, 3, 5]; every N in [0, num_scales]."""
    try:
        if ".." in text:
            lo, hi = (int(x) for x in text.split(".."))
            values = list(range(lo, hi + 1))
        else:
            values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise BadArgumentError(f"draft steps must look like '4..6' or '1,3,5', got {text!r}") from None
    if not values or any(not 0 <= v <= num_scales for v in values):
        raise BadArgumentError(f"draft steps must lie in [0, {num_scales}], got {text!r}")
    return sorted(set(values))


def code_generator(code: CoDe, draft_steps: int, sampling: dict) -> GeneratorFns:
    """CoDe with `draft_steps` drafted scales as an evaluation-protocol generator (the benchmark's `code-N` method)."""
    return GeneratorFns(lambda labels, seed: code.sample(labels, draft_steps=draft_steps, seed=seed, **sampling), code.decode)


def run_sweep(code: CoDe, draft_steps: list[int], *, batch_size: int = 16, num_images: int = 0, seed: int = 0,
              sampling: dict | None = None, warmup: int = 1, repeats: int = 3, label: str = "", evaluator_dir=None) -> SweepResult:
    """Measure every N of `draft_steps` plus the drafter alone (N = K) as the reference.

    num_images > 0: also toy-FID (and KID) of that many images against the held-out procedural images (only for
    models of the procedural world), through the evaluation protocol (`ardistill.eval.protocol`: chunks of 16 with
    seed `seed · 1_000_003 + chunk`, whatever `batch_size` is), so they equal `ardistill bench`'s `code-N` rows.
    """
    sampling = dict(sampling or {})
    K = code.num_scales
    device = code.device
    result = SweepResult(label=label, batch_size=batch_size, device=describe_device(device), num_images=num_images)
    labels = [i % code.drafter.num_classes for i in range(batch_size)]
    for N in [K] + [n for n in draft_steps if n != K]:
        t = measure(lambda: code.sample(labels, draft_steps=N, seed=seed, **sampling), device=device, warmup=warmup, repeats=repeats)
        row = SweepRow(draft_steps=N, latency_ms=t.median_ms, peak_memory_mib=t.peak_memory_mib, memory_kind=t.memory_kind)
        if num_images:
            m = toy_quality(code_generator(code, N, sampling), num_images, seed=seed, image_size=code.drafter.image_size,
                            num_classes=code.drafter.num_classes, device=device, evaluator_dir=evaluator_dir)
            row.fid, row.kid = m["fid"], m["kid_mean"]
        result.rows.append(row)
    base = result.rows[0]
    for r in result.rows:
        r.speedup = base.latency_ms / r.latency_ms
        r.memory_ratio = r.peak_memory_mib / base.peak_memory_mib if base.peak_memory_mib else 0.0
    return result


def plot_fid_vs_speedup(results: list[SweepResult], path: str | Path) -> None:
    """One PNG: toy-FID (y) against speed-up over the drafter alone (x), one line per result, points labelled N."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6), dpi=120)
    labels = []
    for res in results:
        rows = sorted((r for r in res.rows if r.fid is not None), key=lambda r: r.speedup)
        if not rows:
            continue
        ax.plot([r.speedup for r in rows], [r.fid for r in rows], marker="o", label=res.label or "CoDe")
        labels += [(f"N={r.draft_steps}", r.speedup, r.fid) for r in rows]
    ax.set_xlabel("speed-up over the drafter alone (×)")
    ax.set_ylabel("toy-FID (lower is better)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    label_points(fig, ax, labels, fontsize=7)  # after the layout, so the labels' places are final
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def write_sweep(results: list[SweepResult], out_dir: str | Path) -> dict[str, Path]:
    """sweep.json, sweep.md (one table per result) and, when FIDs were measured, fid_vs_speedup.png."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "sweep.json", "md": out_dir / "sweep.md"}
    atomic_write_json(paths["json"], [r.to_dict() for r in results])
    atomic_write_text(paths["md"], "\n\n".join(f"### {r.label or 'CoDe'} ({r.device}, batch {r.batch_size})\n\n{r.markdown()}" for r in results) + "\n")
    if any(row.fid is not None for r in results for row in r.rows):
        paths["png"] = out_dir / "fid_vs_speedup.png"
        plot_fid_vs_speedup(results, paths["png"])
    return paths


def load_sweep(path: str | Path) -> list[SweepResult]:
    out = []
    for d in json.loads(Path(path).read_text()):
        rows = [SweepRow(**r) for r in d.pop("rows")]
        out.append(SweepResult(**d, rows=rows))
    return out


__all__ = ["SweepRow", "SweepResult", "run_sweep", "parse_range", "write_sweep", "load_sweep", "plot_fid_vs_speedup", "code_generator"]
