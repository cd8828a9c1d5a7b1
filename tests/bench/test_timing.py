import time

import torch

from ardistill.bench.timing import measure


def test_measure_orders_quantiles_and_sees_memory():
    calls = []

    def fn():
        calls.append(1)
        time.sleep(0.002)

    t = measure(fn, warmup=2, repeats=5)
    assert len(calls) == 7 and len(t.samples_ms) == 5
    assert t.p10_ms <= t.median_ms <= t.p90_ms and t.median_ms >= 2.0
    assert t.peak_memory_mib > 0


def test_peak_memory_grows_with_allocation():
    small = measure(lambda: torch.ones(1), repeats=1)
    big = measure(lambda: torch.ones(64 * 2**20 // 4).add_(1), repeats=1)  # 64 MiB touched
    assert big.peak_memory_mib >= small.peak_memory_mib
