import time

import torch
from torch import nn

from ardistill.bench.methods import BenchMethod
from ardistill.bench.speed import SpeedSettings, add_speedups, balanced_labels, run_speed


def sleeper(name: str, ms: float, log: list, passes: int = 1) -> BenchMethod:
    """A method whose token generation sleeps `ms` and calls a tiny 'network' `passes` times."""
    net = nn.Identity()

    def generate(labels, seed):
        log.append(name)
        for _ in range(passes):
            net(torch.zeros(labels.shape[0], 1))
        time.sleep(ms / 1e3)
        return torch.zeros(labels.shape[0], 4, dtype=torch.long)

    return BenchMethod(name, "test", generate, lambda t: torch.zeros(t.shape[0], 3, 2, 2), {"net": net})


def test_balanced_labels_follow_the_global_index():
    assert balanced_labels(5, 3, start=4).tolist() == [1, 2, 0, 1, 2]


def test_repeats_are_interleaved_and_speedups_are_same_run_ratios():
    log = []
    methods = [sleeper("teacher", 20, log, passes=3), sleeper("fast", 5, log, passes=1)]
    rows = run_speed(methods, num_classes=4, device=torch.device("cpu"), dtype=torch.float32,
                     settings=SpeedSettings(batch_sizes=(2,), warmup=0, repeats=3))
    timed = log[4:]  # after the counting run + token run of each method
    assert timed[:4] == ["teacher", "teacher", "fast", "fast"] and timed[4:8] == ["teacher", "teacher", "fast", "fast"]
    teacher, fast = rows
    assert (teacher["ar_steps"], fast["ar_steps"]) == (3, 1) and fast["forward_passes_per_image"] == 1.0
    assert teacher["speedup_tokens"] == 1.0 and 2.0 < fast["speedup_tokens"] < 4.5  # 20 ms vs 5 ms (+ overheads)
    assert fast["tokens_images_per_s"] > teacher["tokens_images_per_s"]
    assert len(fast["tokens_samples_ms"]) == 3 and fast["device"] == "cpu" and fast["compile"] == "eager"


def test_speedup_is_the_median_of_per_repeat_ratios():
    rows = [{"method": "teacher", "batch": 1, "total_samples_ms": [10, 100, 10], "tokens_samples_ms": [10, 10, 10]},
            {"method": "x", "batch": 1, "total_samples_ms": [5, 50, 5], "tokens_samples_ms": [5, 5, 20]},
            {"method": "x", "batch": 4, "total_samples_ms": [1], "tokens_samples_ms": [1]}]
    add_speedups(rows)
    assert rows[1]["speedup_total"] == 2.0  # a slow phase hitting both in repeat 2 does not move the ratio
    assert rows[1]["speedup_tokens"] == 2.0
    assert rows[2]["speedup_total"] is None  # no teacher at that batch size
