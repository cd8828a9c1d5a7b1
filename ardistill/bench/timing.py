"""Latency and peak-memory measurement that is honest on both CPU and GPU.

- GPU: CUDA-synchronised wall clock around each repeat; peak memory from the caching allocator
  (`torch.cuda.max_memory_allocated`, reset before the measured repeats).
- CPU: wall clock; peak memory as the process's peak resident set size (VmHWM), reset through
  /proc/self/clear_refs before the measured repeats where Linux allows it (otherwise the lifetime peak, flagged).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch


@dataclass
class Timing:
    median_ms: float
    p10_ms: float
    p90_ms: float
    samples_ms: list[float] = field(default_factory=list)
    peak_memory_mib: float = 0.0
    memory_kind: str = ""  # "cuda-allocator" | "process-rss" | "process-rss-lifetime"

    def to_dict(self) -> dict:
        return asdict(self)


def _quantile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    if len(xs) == 1:
        return xs[0]
    pos = q * (len(xs) - 1)
    lo, hi = int(pos), min(int(pos) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _reset_rss_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _rss_peak_mib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(fn: Callable[[], object], *, device: torch.device | str = "cpu", warmup: int = 1, repeats: int = 5) -> Timing:
    """Run `fn` `warmup` times unmeasured, then `repeats` times measured."""
    device = torch.device(device)
    cuda = device.type == "cuda"
    for _ in range(warmup):
        fn()
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        kind = "cuda-allocator"
    else:
        kind = "process-rss" if _reset_rss_peak() else "process-rss-lifetime"
    samples = []
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize(device)
        samples.append((time.perf_counter() - t0) * 1e3)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if cuda else _rss_peak_mib()
    return Timing(
        median_ms=statistics.median(samples), p10_ms=_quantile(samples, 0.1), p90_ms=_quantile(samples, 0.9),
        samples_ms=samples, peak_memory_mib=peak, memory_kind=kind,
    )


def summarise(samples_ms: list[float], *, peak_memory_mib: float = 0.0, memory_kind: str = "") -> Timing:
    """A `Timing` from samples collected elsewhere (e.g. interleaved repeats of several methods)."""
    return Timing(
        median_ms=statistics.median(samples_ms), p10_ms=_quantile(samples_ms, 0.1), p90_ms=_quantile(samples_ms, 0.9),
        samples_ms=list(samples_ms), peak_memory_mib=peak_memory_mib, memory_kind=memory_kind,
    )
