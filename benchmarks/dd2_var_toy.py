"""DD2 on the built-in VAR teacher (var-toy-l), CPU: GTS tuning, the tuned model as a 10-Euler-step sampler, then
alternating CSD / FCS training of the one-step generator, each measured by toy-FID (docs/dd2.md, decisions 12–).

    PYTHONPATH=. python benchmarks/dd2_var_toy.py gts --out /tmp/dd2var --budget 480
    PYTHONPATH=. python benchmarks/dd2_var_toy.py csd --out /tmp/dd2var --steps 150 --budget 840

Artifacts (pool, tuned model, generator) go to --out; every measurement is printed as one JSON line.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch

import ardistill
from ardistill.methods.dd2 import DD2Config, DD2Trainer
from ardistill.methods.dd2.evaluate import evaluate_samples, one_step_sampler
from ardistill.methods.dd2.gts import GTSConfig, TeacherPool, make_teacher_pool, train_gts
from ardistill.methods.dd2.var import VARFamily


def emit(**row) -> None:
    print(json.dumps(row), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("stage", choices=("gts", "euler", "csd", "eval"))
    ap.add_argument("--out", default="/tmp/dd2var")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--pool", type=int, default=1024)
    ap.add_argument("--budget", type=float, default=480.0, help="seconds of training")
    ap.add_argument("--head-width", type=int, default=128)
    ap.add_argument("--head-depth", type=int, default=3)
    ap.add_argument("--head-steps", type=int, default=150)
    ap.add_argument("--full-steps", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--draws", type=int, default=2)
    ap.add_argument("--steps", type=int, default=150, help="CSD generator steps")
    ap.add_argument("--guidance-steps", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--t-loc", type=float, default=0.0)
    ap.add_argument("--eval-num", type=int, default=1000)
    ap.add_argument("--code-scale", type=float, default=None)
    ap.add_argument("--tag", default="")
    ap.add_argument("--run", default="csd", help="name of the CSD run's checkpoint (csd: <run>-<tag>.pt)")
    ap.add_argument("--resume", action="store_true", help="continue the CSD run's saved trainer state")
    ap.add_argument("--eval-raw", action="store_true", help="also evaluate the raw (non-EMA) generator")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    teacher = ardistill.load_teacher("var-toy-l")
    fam = VARFamily(teacher, code_scale=a.code_scale)
    tag = a.tag or f"s{fam.code_scale:.2f}"

    if a.stage == "gts":
        pool_path = out / "pool.pt"
        if pool_path.exists():
            pool = TeacherPool(**torch.load(pool_path))
        else:
            t0 = time.perf_counter()
            pool = make_teacher_pool(fam, a.pool, seed=7)
            torch.save(vars(pool), pool_path)
            emit(stage="pool", num=a.pool, seconds=time.perf_counter() - t0)
        net = fam.new_network(head_width=a.head_width, head_depth=a.head_depth, seed=0)
        cfg = GTSConfig(batch_size=a.batch, head_steps=a.head_steps, full_steps=a.full_steps, noise_draws=a.draws,
                        t_loc=a.t_loc)
        res = train_gts(net, fam, pool, cfg, log_every=25, time_budget=a.budget, log=lambda r: emit(stage="gts", tag=tag, **r))
        torch.save({"state": net.state_dict(), "head_width": a.head_width, "head_depth": a.head_depth,
                    "code_scale": fam.code_scale}, out / f"gts-{tag}.pt")
        emit(stage="gts-done", tag=tag, seconds=res.seconds, config=vars(cfg))
        a.stage = "euler"

    ck = torch.load(out / f"gts-{tag}.pt")
    net = fam.new_network(head_width=ck["head_width"], head_depth=ck["head_depth"])
    net.load_state_dict(ck["state"])
    net.eval()

    if a.stage == "euler":
        t0 = time.perf_counter()
        r = evaluate_samples(fam, lambda lab, g: fam.euler_sample(net, lab, steps=10, generator=g), num=a.eval_num, seed=0)
        emit(stage="euler-10", tag=tag, **r, seconds=time.perf_counter() - t0)
        gen = fam.generator_from(net)
        r = evaluate_samples(fam, one_step_sampler(fam, gen), num=a.eval_num, seed=0)
        emit(stage="generator-at-init", tag=tag, **r)
        return

    if a.stage == "eval":  # the saved CSD run's EMA generator, through the evaluation protocol
        gen = fam.generator_from(net)
        sd = torch.load(out / f"{a.run}-{tag}.pt", weights_only=False)
        gen.load_state_dict(sd["ema"])
        r = evaluate_samples(fam, one_step_sampler(fam, gen.eval()), num=a.eval_num, seed=0)
        emit(stage="eval-ema", tag=tag, run=a.run, step=sd["step"], **r)
        return

    # CSD / FCS from the tuned model
    gen, psi = fam.generator_from(net).train(), fam.guidance_from(net).train()
    cfg = DD2Config(batch_size=a.batch, guidance_steps=a.guidance_steps, noise_draws=a.draws, lr_generator=a.lr,
                    lr_guidance=a.lr, warmup_steps=10, t_loc=a.t_loc, schedule="constant")
    trainer = DD2Trainer(gen, psi, fam.teacher_probs, fam.codebook, (fam.tokens_per_image, fam.code_dim), cfg,
                         num_classes=fam.num_classes)
    ckpt = out / f"{a.run}-{tag}.pt"
    if a.resume:
        trainer.load_state_dict(torch.load(ckpt, weights_only=False)["trainer"])
        emit(stage="resume", tag=tag, run=a.run, step=trainer.step)
    t0 = time.perf_counter()
    for k in range(trainer.step, a.steps):
        m = trainer.train_step()
        if (k + 1) % 10 == 0:
            emit(stage="csd", tag=tag, step=k + 1, seconds=time.perf_counter() - t0, **m)
        if time.perf_counter() - t0 > a.budget:
            break
    train_seconds = time.perf_counter() - t0
    ema = copy.deepcopy(gen)
    trainer.ema.copy_to(ema)
    torch.save({"trainer": trainer.state_dict(), "ema": ema.state_dict(), "step": trainer.step}, ckpt)
    for name, g in (("ema", ema), ("raw", gen))[: 2 if a.eval_raw else 1]:
        r = evaluate_samples(fam, one_step_sampler(fam, g.eval()), num=a.eval_num, seed=0)
        emit(stage=f"csd-{name}", tag=tag, run=a.run, step=trainer.step, train_seconds=train_seconds, config=cfg.to_dict(), **r)


if __name__ == "__main__":
    main()
