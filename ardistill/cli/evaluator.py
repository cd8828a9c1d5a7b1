"""`ardistill evaluator`: train and check the shipped classifier of the procedural world."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ardistill.cli.common import RenamedOption, console

app = typer.Typer(help="The evaluator: class accuracy and FID features for the procedural world.", no_args_is_help=True)


@app.command("train")
def train_command(
    out: Path = typer.Option(Path("runs/evaluator"), "--out", "-o", help="Folder for the checkpoint, weights, card.json and README.md."),
    steps: int = typer.Option(1500, "--steps", min=1, help="Optimiser steps (fresh images every step)."),
    batch_size: int = typer.Option(128, "--batch-size", min=1, help="Images per step."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the initialisation and of the data streams."),
    size: int = typer.Option(64, "--size", help="Input size of the network: 64 (32 px images are upsampled) or 32."),
    heldout: int = typer.Option(6000, "--heldout", min=12, help="Held-out images for the final accuracy (per size)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in OUT from its last checkpoint."),
) -> None:
    """Train the evaluator on the procedural world and measure its held-out accuracy (≈ 4 min on one CPU core)."""
    from ardistill.eval.train import train_evaluator
    from ardistill.io import ensure_writable

    ensure_writable(out / "card.json")
    card = train_evaluator(out, steps=steps, batch_size=batch_size, seed=seed, size=size, heldout=heldout, resume=resume)
    acc = ", ".join(f"{k} {100 * v:.2f}%" for k, v in card["heldout_accuracy"].items())
    console.print(f"held-out accuracy: {acc} ({heldout} images each); wrote {out}/evaluator.safetensors, card.json, README.md")


@app.command("eval")
def eval_command(
    evaluator: Optional[Path] = typer.Option(None, "--evaluator", help="Evaluator folder (default: the shipped one)."),
    num: int = typer.Option(2400, "--num-images", "-n", min=1, help="Held-out images to classify."),
    size: int = typer.Option(64, "--size", help="Image size: 64 or 32."),
    seed: int = typer.Option(0, "--seed", min=0, help="Data seed (the held-out stream of it is used)."),
    old_num: Optional[str] = RenamedOption("--num", "--num-images"),
) -> None:
    """Print the evaluator's accuracy on held-out procedural images, overall and per class."""
    from ardistill.data import CLASS_NAMES, split_images
    from ardistill.eval import load_evaluator

    ev = load_evaluator(evaluator)
    images, labels = split_images(num, split="heldout", seed=seed, size=size)
    pred = ev.predict(images)
    correct = (pred == labels).float()
    console.print(f"held-out accuracy at {size} px: {100 * correct.mean():.2f}% ({num} images, seed {seed})")
    per_class = [f"{name} {100 * correct[labels == c].mean():.1f}%" for c, name in enumerate(CLASS_NAMES) if bool((labels == c).any())]
    console.print("per class: " + ", ".join(per_class))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="evaluator")
