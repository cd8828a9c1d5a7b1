"""`ardistill data`: the procedural image world (the embedded default data set)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ardistill.cli.common import RenamedOption, UpscaleOption, console, out_path

app = typer.Typer(help="The procedural image world: class-conditional images, a pure function of (seed, index).",
                  no_args_is_help=True)


@app.command("preview")
def preview_command(
    out: Path = typer.Option(Path("grid.png"), "--out", "-o", help="PNG grid to write."),
    num: int = typer.Option(48, "--num-images", "-n", min=1, max=4096, help="Number of images (indices 0 … N-1)."),
    size: int = typer.Option(64, "--size", help="Image size in pixels: 64 or 32."),
    seed: int = typer.Option(0, "--seed", min=0, help="Data seed; the split picks a disjoint stream of it."),
    split: str = typer.Option("train", "--split", help="train or heldout."),
    nrow: Optional[int] = typer.Option(None, "--nrow", min=1, help="Images per row (default: one column per class)."),
    upscale: Optional[int] = UpscaleOption,
    old_num: Optional[str] = RenamedOption("--num", "--num-images"),
) -> None:
    """Write a grid of procedural images (label = index mod the number of classes, so columns are classes)."""
    from ardistill.data import CLASS_NAMES, NUM_CLASSES, split_images
    from ardistill.images import save_grid

    images, _ = split_images(num, split=split, seed=seed, size=size)
    path = out_path(out)
    factor = save_grid(images, path, nrow=nrow or min(num, NUM_CLASSES), upscale=upscale)
    console.print(f"wrote {path}: {num} images, {size}×{size}{f' shown {factor}×' if factor > 1 else ''}, split {split}, seed {seed}")
    if nrow is None:
        console.print("columns: " + ", ".join(CLASS_NAMES[: min(num, NUM_CLASSES)]))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="data")
