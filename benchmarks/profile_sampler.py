"""Where a sampler's time goes: torch.profiler over one sample (+ decode) of a teacher, grouped by operator.

    python benchmarks/profile_sampler.py --teacher llamagen-b --batch 1 --dtype bf16 --fast
    python benchmarks/profile_sampler.py --teacher var-d16 --batch 16 --dtype bf16 --out profile.md

Random weights (speed does not depend on them). One untimed warm-up, then one profiled run. Prints (and with --out
writes) a Markdown table of the operators with the largest self time, and the sampling / decode wall times.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

import ardistill
from ardistill.io import atomic_write_text

# Operators grouped into what they are for (self time).
GROUPS = {
    "matrix multiplies (Linear)": ("aten::addmm", "aten::mm", "aten::bmm", "aten::matmul", "aten::linear", "aten::baddbmm"),
    "convolutions (tokenizer decoder)": ("aten::mkldnn_convolution", "aten::convolution", "aten::_convolution", "aten::conv2d",
                                         "aten::cudnn_convolution"),
    "attention": ("aten::_scaled_dot_product_flash_attention_for_cpu", "aten::_scaled_dot_product_attention_math",
                  "aten::_scaled_dot_product_flash_attention", "aten::_scaled_dot_product_efficient_attention"),
    "sampling (top-k/top-p, softmax, multinomial)": ("aten::topk", "aten::sort", "aten::exponential_", "aten::multinomial",
                                                     "aten::_softmax", "aten::cumsum", "aten::masked_fill_", "aten::argmax"),
}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", default="llamagen-b")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--dtype", default="fp32")
    ap.add_argument("--fast", action="store_true")
    ap.add_argument("--compile", default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rows", type=int, default=12)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    teacher = ardistill.load_teacher(args.teacher, random_init=True, dtype=args.dtype, fast=args.fast, compile=args.compile, device=args.device)
    labels = torch.arange(args.batch) % teacher.num_classes
    sync = (lambda: torch.cuda.synchronize()) if teacher.device.type == "cuda" else (lambda: None)
    teacher.decode(teacher.sample(labels, seed=0))  # warm-up (and compilation)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if teacher.device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        sync()
        t0 = time.perf_counter()
        tokens = teacher.sample(labels, seed=0)
        sync()
        t1 = time.perf_counter()
        teacher.decode(tokens)
        sync()
        t2 = time.perf_counter()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) or 1
    grouped = defaultdict(float)
    for e in events:
        group = next((g for g, names in GROUPS.items() if e.key in names), "everything else")
        grouped[group] += e.self_cpu_time_total
    lines = [f"{args.teacher}, B={args.batch}, {teacher.options.describe()}, {teacher.device}: sample {1000 * (t1 - t0):.0f} ms, "
             f"decode {1000 * (t2 - t1):.0f} ms (profiled run).", "", "| where | share of CPU self time |", "|---|---:|"]
    lines += [f"| {g} | {100 * v / total:.1f}% |" for g, v in sorted(grouped.items(), key=lambda kv: -kv[1])]
    lines += ["", "| operator | self ms | calls |", "|---|---:|---:|"]
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[: args.rows]:
        lines.append(f"| {e.key} | {e.self_cpu_time_total / 1000:.0f} | {e.count} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        atomic_write_text(args.out, text)


if __name__ == "__main__":
    main()
