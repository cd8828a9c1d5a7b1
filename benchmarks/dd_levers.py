"""Short DD student runs for comparing training levers side by side on a built-in LlamaGen teacher.

    python benchmarks/dd_levers.py NAME --trajectories runs/traj/llamagen-toy-k16 \
        --heldout runs/traj/heldout-llamagen-toy-k16 [--depth-mult 2] [--t-list 0,20] \
        --out benchmarks/results/dd-levers-NAME.json

Every lever run uses the same trajectories, batches (a pure function of the step), optimiser (AdamW β (0.9, 0.95),
wd 0.05, clip 2.0, 100-step warm-up, cosine to 5 %) and evaluation, so only the lever differs. Every `--eval-every`
steps: token accuracy of the 1-step logits on the first 512 held-out trajectories (overall and per eighth of the
sequence) and toy-FID / class accuracy of 500 class-cycled 1-step images (argmax tokens everywhere, fixed noise).

Levers: `--t-list` (the training timesteps; repeat 0 to weight the 1-step path), `--depth-mult M` (each teacher
block copied M times; copies after the first start as the identity: zeroed attention and MLP output projections),
`--lr`, `--steps`. This is a measurement tool, not a training recipe: no EMA, no checkpoints.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time

import torch

import ardistill
from ardistill.eval import toy_fidelity_metrics
from ardistill.io import atomic_write_json
from ardistill.methods.dd.train import TrajectoryBatches, dd_loss, new_student_model
from ardistill.shards import ShardedDataset
from dd_token_accuracy import load_trajectories


def deepen(model, mult: int):
    """Each block of a LlamaGen student repeated `mult` times; repeats start as the identity."""
    layers = []
    for block in model.layers:
        for r in range(mult):
            b = copy.deepcopy(block)
            if r > 0:
                b.attention.wo.weight.data.zero_()
                b.feed_forward.w2.weight.data.zero_()
            layers.append(b)
    model.layers = torch.nn.ModuleList(layers)
    return model


@torch.no_grad()
def evaluate(model, teacher, evaluator, heldout, *, num_images: int = 500, batch: int = 100) -> dict:
    """Held-out token accuracy (overall, per eighth) and toy-FID / class accuracy of 1-step argmax images."""
    noise, labels, tokens, _ = heldout
    model.eval()
    _, logits = model(labels, noise, torch.zeros_like(labels))
    acc = (logits.argmax(-1) == tokens).float().mean(0)  # [L]
    image_labels = torch.arange(num_images) % teacher.num_classes
    images = []
    for b in range(0, num_images, batch):
        lab = image_labels[b:b + batch]
        g = torch.Generator().manual_seed(1000 + b)  # = Student.noise(len(lab), 1000 + b)
        eps = torch.randn(len(lab), tokens.shape[1], noise.shape[2], generator=g)
        _, lg = model(lab, eps, torch.zeros_like(lab))
        images.append(teacher.decode(lg.argmax(-1)))
    images = torch.cat(images)
    model.train()
    fid = toy_fidelity_metrics(images, fid=True, kid=False, prc=False, isc=False)["fid"]
    eighth = acc.numel() // 8
    return {"token_acc": round(acc.mean().item(), 4),
            "token_acc_per_eighth": [round(acc[i * eighth:(i + 1) * eighth].mean().item(), 3) for i in range(8)],
            "toy_fid": round(fid, 2), "class_acc": round(evaluator.accuracy(images, image_labels), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("name")
    ap.add_argument("--teacher", default="llamagen-toy")
    ap.add_argument("--trajectories", required=True)
    ap.add_argument("--heldout", required=True)
    ap.add_argument("--t-list", default="0,20")
    ap.add_argument("--depth-mult", type=int, default=1)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    teacher = ardistill.load_teacher(a.teacher)
    if teacher.family != "llamagen":
        raise SystemExit("dd_levers.py: only LlamaGen teachers (deepen() knows their block layout)")
    t_list = [int(x) for x in a.t_list.split(",")]
    model = new_student_model(teacher, seed=0)
    if a.depth_mult > 1:
        deepen(model, a.depth_mult)
    ds = ShardedDataset.open(a.trajectories)
    batches = TrajectoryBatches(ds.load_all(), ds.meta, batch_size=a.batch_size, grad_accum=1, t_list=t_list,
                                seed=0, device="cpu")
    data_counts = torch.arange(teacher.tokens_per_image + 1)
    codebook = teacher.codebook.detach().float()
    heldout = load_trajectories(a.heldout, 512)
    evaluator = ardistill.load_evaluator()
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.95), weight_decay=0.05)
    result = {"name": a.name, "args": vars(a), "params": sum(p.numel() for p in model.parameters()), "evals": []}
    model.train()
    t0 = time.time()
    for step in range(a.steps):
        lr = a.lr * min(1.0, (step + 1) / 100) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / a.steps)))
        for group in opt.param_groups:
            group["lr"] = lr
        loss, logs = dd_loss(model, batches(step, 0), codebook, data_counts, 1.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 2.0)
        opt.step()
        if (step + 1) % a.eval_every == 0:
            r = {"step": step + 1, "train_s": round(time.time() - t0), **evaluate(model, teacher, evaluator, heldout)}
            result["evals"].append(r)
            print(a.name, json.dumps(r), flush=True)
    atomic_write_json(a.out, result)


if __name__ == "__main__":
    main()
