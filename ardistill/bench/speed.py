"""Speed rows: for every method and batch size, measured work, latency (tokens, decode, both), throughput, memory.

Each (method, batch) is timed three ways after `warmup` unmeasured runs, over `repeats` interleaved runs each:
token generation alone, image decoding alone (of tokens made once), and the two together. The speed-up of a
method is the median over repeats of (teacher time / method time), taken in the same run at the same batch size.
"""

from __future__ import annotations

import platform
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from ardistill.bench.methods import BenchMethod, measure_counts
from ardistill.bench.timing import Timing, measure, summarise
from ardistill.eval.protocol import balanced_labels  # the evaluation protocol's labels: index i → class i mod C


@dataclass(frozen=True)
class SpeedSettings:
    batch_sizes: tuple[int, ...] = (1, 16, 64)
    warmup: int = 1
    repeats: int = 5
    seed: int = 0


def environment(device: torch.device, dtype: torch.dtype, *, compile: str | None = None, fast: bool = False) -> dict:
    """What every row must say about where and how it was measured."""
    return {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
        "dtype": str(dtype).removeprefix("torch."),
        "compile": f"torch.compile {compile}" if compile else "eager",
        "cuda_graphs": bool(compile) and "reduce-overhead" in compile and torch.device(device).type == "cuda",
        "sampler": "fast" if fast or compile or dtype != torch.float32 else "reference",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "commit": git_commit(),
    }


def git_commit() -> str:
    """HEAD of the ardistill checkout ("+dirty" when files differ), or "unknown" outside a git checkout."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "ardistill"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _timing_fields(prefix: str, t: Timing, batch: int) -> dict:
    return {
        f"{prefix}_median_ms": t.median_ms, f"{prefix}_p10_ms": t.p10_ms, f"{prefix}_p90_ms": t.p90_ms,
        f"{prefix}_images_per_s": batch / (t.median_ms / 1e3) if t.median_ms > 0 else float("inf"),
    }


PHASES = ("tokens", "decode", "total")


def _time_batch(methods: Sequence[BenchMethod], batch: int, *, num_classes: int, device: torch.device,
                settings: SpeedSettings, on_repeat: Callable[[], None] | None = None) -> list[dict]:
    """Rows of every method at one batch size. Repeats are interleaved (repeat r of every method before repeat
    r + 1 of any), so a slow phase of a shared machine hits all methods alike and per-repeat ratios stay honest."""
    labels = balanced_labels(batch, num_classes).to(device)
    seed = settings.seed
    counts, tokens = {}, {}
    for m in methods:
        counts[m.name] = measure_counts(m, labels, seed)  # also the first warm-up run
        tokens[m.name] = m.generate_tokens(labels, seed)
        for _ in range(settings.warmup):
            m.decode(m.generate_tokens(labels, seed))
    samples = {m.name: {p: [] for p in PHASES} for m in methods}
    peaks: dict[str, list] = {m.name: [] for m in methods}
    for _ in range(settings.repeats):
        for m in methods:
            fns = {"tokens": lambda: m.generate_tokens(labels, seed), "decode": lambda: m.decode(tokens[m.name]),
                   "total": lambda: m.decode(m.generate_tokens(labels, seed))}
            for phase, fn in fns.items():
                t = measure(fn, device=device, warmup=0, repeats=1)
                samples[m.name][phase] += t.samples_ms
                if phase == "total":
                    peaks[m.name].append((t.peak_memory_mib, t.memory_kind))
        if on_repeat is not None:
            on_repeat()
    rows = []
    for m in methods:
        c = counts[m.name]
        timings = {p: summarise(samples[m.name][p]) for p in PHASES}
        peak, kind = max(peaks[m.name])
        row = {"method": m.name, "kind": m.kind, "x_value": m.x_value, "batch": batch,
               "ar_steps": c.ar_steps, "forward_passes_per_image": c.forward_passes_per_image,
               "forward_passes_by_network": c.per_role}
        for p in PHASES:
            row.update(_timing_fields(p, timings[p], batch))
            row[f"{p}_samples_ms"] = timings[p].samples_ms
        row.update(peak_memory_mib=peak, memory_kind=kind, repeats=settings.repeats, warmup=settings.warmup, settings=m.settings)
        rows.append(row)
    return rows


def add_speedups(rows: list[dict], reference: str = "teacher") -> None:
    """Speed-up against `reference` at the same batch size, in place: `speedup_total` (decode included) and
    `speedup_tokens` (token generation only), each the median over repeats of (reference time / method time) of
    the same interleaved repeat; None where the reference was not measured."""
    ref = {r["batch"]: r for r in rows if r["method"] == reference}
    for r in rows:
        base = ref.get(r["batch"])
        for phase in ("total", "tokens"):
            if base is None:
                r[f"speedup_{phase}"] = None
                continue
            pairs = zip(base[f"{phase}_samples_ms"], r[f"{phase}_samples_ms"])
            r[f"speedup_{phase}"] = statistics.median(b / m for b, m in pairs)


def run_speed(methods: Sequence[BenchMethod], *, num_classes: int, device: torch.device, dtype: torch.dtype,
              settings: SpeedSettings, on_repeat: Callable[[], None] | None = None, compile: str | None = None,
              fast: bool = False) -> list[dict]:
    """Rows for every (method, batch size), each carrying the environment, with speed-ups against "teacher".
    `on_repeat()` is called after every interleaved repeat (len(batch_sizes) × repeats calls: a progress bar)."""
    env = environment(device, dtype, compile=compile, fast=fast)
    rows = []
    with torch.no_grad():
        for batch in settings.batch_sizes:
            for row in _time_batch(methods, batch, num_classes=num_classes, device=device, settings=settings, on_repeat=on_repeat):
                rows.append({**row, **env, "decoder": "timed separately (tokens_*, decode_*) and together (total_*)"})
    add_speedups(rows)
    return rows
