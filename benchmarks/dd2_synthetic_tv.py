"""DD2 on a synthetic AR teacher with a known joint (spec §5): TV of the one-step generator against the exact joint
over training, for a teacher of 2–4 positions and the networks' sizes.

    python benchmarks/dd2_synthetic_tv.py --positions 4 --steps 12000 --batch 1024 --lr 2e-3 --lr-guidance 2e-3 \
        --threads 2 --eval-every 1000 --out dd2-synthetic-4pos.json

reaches TV 0.0895 on 4 positions (run S in docs/dd2.md, 67 min on two CPU threads;
benchmarks/results/dd2-synthetic-4pos-S-2026-12-07.json).

Defaults are docs/dd2.md decision 11's settings (batch 256, K = 5, m = 4, lr 1e-3 for both networks with 100 warm-up
steps, a cosine lr over `--steps` generator steps, logit-normal t at loc −1, a 512 × 4 generator, a 128 × 3 guidance
network) on `SyntheticARTeacher.make(length=P, allowed=4, concentration=3, seed=1)`: the slow test's teacher C at
P = 3. Prints one JSON line per evaluation (TV and zero-probability mass of `--eval-num` samples, the EMA generator;
the last one at 200,000 samples, with the raw weights too) and writes them all to `--out`. Runs on one CPU thread
unless `--threads` says otherwise; a curve is reproduced exactly at the thread count it was made with.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from ardistill.io import atomic_write_json
from ardistill.methods.dd2.alternating import DD2Config
from ardistill.methods.dd2.synthetic import SyntheticARTeacher, evaluate_generator, reference_tvs, train_synthetic

FINAL_NUM = 200_000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--positions", type=int, default=4, choices=(2, 3, 4))
    ap.add_argument("--steps", type=int, default=12000, help="generator steps (the cosine lr ends here)")
    ap.add_argument("--hidden", type=int, default=512, help="generator MLP width")
    ap.add_argument("--depth", type=int, default=4, help="generator MLP depth (hidden layers, or residual blocks)")
    ap.add_argument("--generator", choices=("mlp", "residual"), default="mlp",
                    help="plain MLP, or pre-LayerNorm residual blocks")
    ap.add_argument("--guidance-hidden", type=int, default=128)
    ap.add_argument("--guidance-depth", type=int, default=3)
    ap.add_argument("--guidance-steps", type=int, default=5, help="K guidance updates per generator update")
    ap.add_argument("--lr-guidance", type=float, default=1e-3)
    ap.add_argument("--lr", type=float, default=1e-3, help="the generator's peak lr")
    ap.add_argument("--batch", type=int, default=256, help="generator samples per step (ψ's batch too)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--broken", action="store_true", help="the teacher scores a teacher-sampled prefix (the control)")
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--eval-num", type=int, default=50_000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="JSON file for the settings, references and curve")
    args = ap.parse_args()
    if args.steps < 1 or args.eval_every < 0 or args.batch < 1 or args.lr <= 0 or args.lr_guidance <= 0:
        ap.error("--steps and --batch must be ≥ 1, --eval-every ≥ 0, the lrs > 0")
    torch.set_num_threads(args.threads)

    teacher = SyntheticARTeacher.make(length=args.positions, allowed=4, concentration=3.0, seed=1)
    cfg = DD2Config(batch_size=args.batch, guidance_steps=args.guidance_steps, noise_draws=4, lr_generator=args.lr,
                    lr_guidance=args.lr_guidance, warmup_steps=100, schedule="cosine", total_steps=args.steps,
                    t_loc=-1.0, seed=args.seed)
    refs = reference_tvs(teacher, FINAL_NUM)
    print(json.dumps({"references": refs}), flush=True)
    started = time.perf_counter()

    def report(row: dict) -> None:
        print(json.dumps({**row, "seconds": round(time.perf_counter() - started)}), flush=True)

    run = train_synthetic(teacher, args.steps, cfg, broken=args.broken, hidden=args.hidden, depth=args.depth,
                          guidance_hidden=args.guidance_hidden, guidance_depth=args.guidance_depth,
                          generator_blocks=args.generator,
                          eval_every=args.eval_every, eval_num=args.eval_num, on_eval=report)
    final = {"step": args.steps, "ema": evaluate_generator(teacher, run.generator, FINAL_NUM),
             "raw": evaluate_generator(teacher, run.trainer.generator, FINAL_NUM),
             "seconds": round(time.perf_counter() - started)}
    print(json.dumps({"final": final}), flush=True)
    if args.out:
        atomic_write_json(args.out, {"settings": {**vars(args), "config": cfg.to_dict()}, "references": refs,
                                     "curve": run.history, "final": final})


if __name__ == "__main__":
    main()
