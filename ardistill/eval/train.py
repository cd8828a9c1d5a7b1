"""Train the evaluator on fresh procedural images (every step sees new images; nothing is stored).

Batch of step t = train-stream indices `[t·B, (t+1)·B)`; its first `low_res_fraction` is rendered at 32 px and
upsampled to 64 so that one set of weights scores both sizes. Uses the shared, resumable `train_loop`.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ardistill.data import CLASS_NAMES, NUM_CLASSES, make_images, split_images, stream_seed
from ardistill.eval.evaluator import Evaluator, save_evaluator
from ardistill.eval.network import EvaluatorConfig, ToyClassifier, to_input_size
from ardistill.errors import BadArgumentError
from ardistill.io import atomic_write_text, sha256_file
from ardistill.training.loop import TrainConfig, train_loop


def training_batch(step: int, *, batch_size: int, seed: int, low_res_fraction: float, size: int = 64):
    """(images `[B, 3, size, size]`, labels `[B]`) of step `step`: a pure function of its arguments."""
    indices = range(step * batch_size, (step + 1) * batch_size)
    stream = stream_seed("train", seed)
    images, labels = make_images(indices, seed=stream, size=size)
    n_low = int(round(batch_size * low_res_fraction))
    if n_low and size == 64:
        low, _ = make_images(indices[:n_low], seed=stream, size=32)
        images[:n_low] = to_input_size(low, size)
    return images, labels


def heldout_accuracy(evaluator: Evaluator, num: int, *, seed: int = 0, size: int = 64) -> float:
    """Accuracy on the first `num` images of the held-out stream (never seen in training)."""
    images, labels = split_images(num, split="heldout", seed=seed, size=size)
    return evaluator.accuracy(images, labels)


def measure_feature_rms(evaluator: Evaluator, *, seed: int = 0, num: int = 2000, size: int = 64) -> float:
    """RMS of the raw penultimate features over held-out images (stored in the card as `feature_rms`)."""
    images, _ = split_images(num, split="heldout", seed=seed, size=size)
    raw = Evaluator(evaluator.network).features(images)  # no card → unscaled
    return float(raw.pow(2).mean().sqrt())


def train_evaluator(
    out_dir: str | os.PathLike,
    *,
    steps: int = 1500,
    batch_size: int = 128,
    lr: float = 2e-3,
    seed: int = 0,
    size: int = 64,
    low_res_fraction: float = 0.25,
    heldout: int = 6000,
    resume: bool = False,
    progress: bool = True,
) -> dict:
    """Train, measure held-out accuracy, write `evaluator.safetensors`, `card.json`, `README.md` into `out_dir`.

    Returns the card (a dict). The training checkpoint (`checkpoint.pt`, for `resume`) stays in `out_dir` too.
    """
    if steps < 1 or batch_size < 1 or heldout < NUM_CLASSES:
        raise BadArgumentError(f"steps and batch size must be ≥ 1 and heldout ≥ {NUM_CLASSES}")
    if not 0 <= low_res_fraction <= 1:
        raise BadArgumentError(f"low_res_fraction must be in [0, 1], got {low_res_fraction}")
    cfg = EvaluatorConfig(num_classes=NUM_CLASSES, image_size=size)
    torch.manual_seed(seed)
    network = ToyClassifier(cfg)
    train_cfg = TrainConfig(steps=steps, lr=lr, weight_decay=0.01, warmup_steps=min(100, steps // 10), schedule="cosine",
                            ema_decay=0.995, ckpt_every=500, log_every=10, seed=seed)

    def get_batch(step: int, micro: int):
        return training_batch(step, batch_size=batch_size, seed=seed, low_res_fraction=low_res_fraction, size=size)

    def loss_fn(batch, step: int):
        images, labels = batch
        _, logits = network(images)
        loss = F.cross_entropy(logits, labels)
        return loss, {"acc": (logits.argmax(1) == labels).float().mean().item()}

    def eval_fn(model, step: int) -> dict:
        return {"heldout_acc_64": heldout_accuracy(Evaluator(model), 600, seed=seed, size=size)}

    t0 = time.perf_counter()
    result = train_loop(model=network, loss_fn=loss_fn, get_batch=get_batch, cfg=train_cfg, out_dir=out_dir,
                        resume=resume, eval_fn=eval_fn, eval_every=500, progress=progress,
                        description="evaluator", extra_state={"batch_size": batch_size, "size": size})
    train_seconds = time.perf_counter() - t0
    evaluator = Evaluator(network)  # train_loop leaves the EMA weights in `network`
    accuracy = {f"{s}px": heldout_accuracy(evaluator, heldout, seed=seed, size=s) for s in ((64, 32) if size == 64 else (size,))}
    card = {
        "name": "ardistill-toy evaluator",
        "classes": list(CLASS_NAMES),
        "heldout_accuracy": accuracy,
        "heldout": {"split": "heldout", "seed": seed, "stream": stream_seed("heldout", seed), "num_images": heldout},
        "training": {
            "steps": result.step, "batch_size": batch_size, "lr": lr, "seed": seed, "train_stream": stream_seed("train", seed),
            "low_res_fraction": low_res_fraction, "ema_decay": train_cfg.ema_decay, "final_loss": float(f"{result.last_loss:.4g}"),
            "seconds": round(train_seconds, 1), "torch_threads": torch.get_num_threads(),
            "machine": f"{platform.machine()} {platform.processor() or platform.system()}, torch {torch.__version__}",
        },
        "feature_rms": round(measure_feature_rms(evaluator, seed=seed, size=size), 6),
        "params": sum(p.numel() for p in network.parameters()),
        "config": cfg.to_dict(),
    }
    out_dir = Path(out_dir)
    save_evaluator(network, out_dir, card)
    card["sha256"] = sha256_file(out_dir / "evaluator.safetensors")
    save_evaluator(network, out_dir, card)
    atomic_write_text(out_dir / "README.md", model_card_markdown(card))
    return card


def model_card_markdown(card: dict) -> str:
    t, acc, cfg = card["training"], card["heldout_accuracy"], card["config"]
    acc_lines = "\n".join(f"| {k} | {100 * v:.2f}% |" for k, v in acc.items())
    return f"""# Evaluator for the procedural world (`ardistill-toy`)

A small CNN classifier over the {len(card['classes'])} classes of `ardistill.data` ({', '.join(card['classes'])}).
Used for (a) class accuracy of generated images against their requested label and (b) as the feature extractor
`ardistill-toy` registered with torch-fidelity (FID / KID / precision-recall on `features`, IS on `logits`).

- **Architecture**: `ToyClassifier` — 3×3 convs with GroupNorm + SiLU, widths {cfg['widths']}, stride 2 per stage
  ({cfg['image_size']} → {cfg['image_size'] // 2 ** len(cfg['widths'])} px), flatten, Linear → {cfg['feature_dim']}-d features (SiLU), Linear → logits.
  {card['params']:,} parameters.
- **Input**: `[B, 3, H, W]` in [0, 1]; other sizes are bilinearly resized to {cfg['image_size']} px (32 px images are upsampled).
- **Features**: the raw {cfg['feature_dim']}-d features divided by `feature_rms` = {card['feature_rms']:.4g} (their RMS on 2000 held-out
  images), so FID/KID values have a scale comparable to Inception features.
- **Data**: fresh images every step from the train stream (`stream_seed('train', {t['seed']})` = {t['train_stream']});
  {100 * t['low_res_fraction']:.0f}% of each batch rendered at 32 px and upsampled. No augmentation.
- **Training**: {t['steps']} steps × batch {t['batch_size']}, AdamW lr {t['lr']} (warm-up, cosine), EMA {t['ema_decay']},
  {t['seconds']:.0f} s on {t['torch_threads']} CPU thread(s) ({t['machine']}).
- **Held-out accuracy** on the first {card['heldout']['num_images']} images of the held-out stream
  (`stream_seed('heldout', {card['heldout']['seed']})` = {card['heldout']['stream']}), never seen in training:

| input | accuracy |
|---|---|
{acc_lines}

Reproduce: `OMP_NUM_THREADS=1 ardistill evaluator train --steps {t['steps']} --seed {t['seed']} --out DIR`
(bit-exact on the same machine), then copy `evaluator.safetensors`, `card.json`, `README.md` here.
SHA-256 of `evaluator.safetensors`: `{card.get('sha256', '?')}`.
"""
