"""DD2's continuous adaptation of the built-in LlamaGen teacher (llamagen-toy), CPU: the teacher and its adapted GPT
(token embedding → MLP on the code vector, fitted, then fine-tuned to the teacher's next-token distributions) scored
side by side by the evaluation protocol (toy-FID, class accuracy; same labels and seeds), for several fine-tuning
lengths (docs/dd2.md, decision 18). Every measurement is one JSON line.

    PYTHONPATH=. python benchmarks/dd2_llamagen_adaptation.py --out /tmp/dd2llama --steps 0,100,300 --num 1000
    PYTHONPATH=. python benchmarks/dd2_llamagen_adaptation.py --out /tmp/dd2llama2 --steps 600 --lr 5e-4
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import ardistill
from ardistill.eval.protocol import GeneratorFns, toy_quality
from ardistill.methods.dd2.gts import make_teacher_pool
from ardistill.methods.dd2.llamagen import LlamaGenFamily
from ardistill.methods.dd2.recipe import DD2Adaptation


def emit(**row) -> None:
    print(json.dumps(row), flush=True)


def quality(teacher, settings: dict, num: int) -> dict:
    gen = GeneratorFns(lambda labels, seed: teacher.sample(labels, seed=seed, **settings), teacher.decode)
    q = toy_quality(gen, num, seed=0, image_size=teacher.image_size, num_classes=teacher.num_classes,
                    device=teacher.device, across_ranks=False)
    return {"fid": q["fid"], "class_acc": q["class_accuracy"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/tmp/dd2llama")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--pool", type=int, default=1024)
    ap.add_argument("--steps", default="0,100,300", help="AR fine-tuning lengths to measure (each continues the last)")
    ap.add_argument("--num", type=int, default=1000, help="images per toy-FID")
    ap.add_argument("--lr", type=float, default=1e-4, help="AR fine-tuning lr (cosine over each length)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    teacher = ardistill.load_teacher("llamagen-toy")
    family = LlamaGenFamily(teacher)
    emit(stage="teacher", **quality(teacher, family.settings, a.num))
    t0 = time.perf_counter()
    pool = make_teacher_pool(family, a.pool, seed=7, keep_probs=False)
    emit(stage="pool", num=a.pool, seconds=time.perf_counter() - t0)
    for steps in (int(s) for s in a.steps.split(",")):
        settings = DD2Adaptation(steps=steps, lr=a.lr)
        report = family.adapt(pool.tokens, pool.labels, settings, out / "adapt", resume=True, progress=False)
        emit(stage="adapted", steps=steps, **report, **quality(family.adapted_teacher(), family.settings, a.num))


if __name__ == "__main__":
    main()
