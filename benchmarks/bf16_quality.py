"""Sample quality of the bf16 fast path against the fp32 reference on the built-in teachers.

    python benchmarks/bf16_quality.py var-toy-l var-toy-s llamagen-toy --out benchmarks/results/bf16-quality.json

For each teacher, `--num` class-balanced samples (batches of 100, seed = index of the batch's first image) from
`load_teacher(name)` (fp32 reference) and from `load_teacher(name, dtype="bf16", fast=True)`, with the same labels
and seeds; toy-FID / precision / recall against the held-out real images and the shipped evaluator's class accuracy.
docs/fast-inference.md states the margin (bf16 within 1.0 toy-FID and 3 points of accuracy) and the measured table.
"""

from __future__ import annotations

import argparse
import json

import torch

import ardistill
from ardistill.eval import toy_fidelity_metrics
from ardistill.io import atomic_write_json

VARIANTS = {"fp32": {}, "bf16": {"dtype": "bf16", "fast": True}}


def measure(name: str, num: int, evaluator) -> dict:
    """{"fp32": {...}, "bf16": {...}}: fid, class_accuracy, precision, recall of `num` samples of teacher `name`."""
    row = {}
    for variant, kwargs in VARIANTS.items():
        teacher = ardistill.load_teacher(name, **kwargs)
        labels = torch.arange(num) % teacher.num_classes
        images = torch.cat([teacher.decode(teacher.sample(labels[i : i + 100], seed=i)) for i in range(0, num, 100)])
        images = images.float()
        m = toy_fidelity_metrics(images, kid=False, isc=False)
        accuracy = (evaluator.predict(images) == labels).float().mean().item()
        row[variant] = {"fid": m["fid"], "class_accuracy": accuracy, "precision": m["precision"], "recall": m["recall"]}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("teachers", nargs="+", help="built-in teacher names")
    parser.add_argument("--num", type=int, default=1000, help="samples per teacher and precision (multiple of 100)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    evaluator = ardistill.load_evaluator()
    results = {}
    for name in args.teachers:
        results[name] = measure(name, args.num, evaluator)
        print(json.dumps({name: results[name]}), flush=True)
    if args.out:
        atomic_write_json(args.out, {"num": args.num, "torch": torch.__version__, "results": results})


if __name__ == "__main__":
    main()
