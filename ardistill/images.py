"""Image grids and PNG files (atomic writes)."""

from __future__ import annotations

import math
import os

import torch

from ardistill.io import atomic_path, ensure_writable


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """`[B, 3, H, W]` in [0, 1] → `[B, H, W, 3]` uint8 (round to nearest)."""
    return (images.detach().float().clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu()


def make_grid(images: torch.Tensor, nrow: int | None = None, pad: int = 2) -> torch.Tensor:
    """`[B, 3, H, W]` in [0, 1] → one `[3, H', W']` grid with `nrow` images per row (default ≈ √B)."""
    b, c, h, w = images.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(b)))
    rows = math.ceil(b / nrow)
    grid = torch.ones(c, rows * (h + pad) + pad, nrow * (w + pad) + pad, dtype=images.dtype)
    for i in range(b):
        r, col = divmod(i, nrow)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        grid[:, y : y + h, x : x + w] = images[i].detach().cpu()
    return grid


def save_png(image: torch.Tensor, path: str | os.PathLike) -> None:
    """Save one `[3, H, W]` image in [0, 1] as PNG, atomically."""
    from PIL import Image

    path = ensure_writable(path)
    arr = to_uint8(image[None])[0].numpy()
    with atomic_path(path) as tmp:
        Image.fromarray(arr).save(tmp, format="PNG")


def save_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int | None = None) -> None:
    save_png(make_grid(images, nrow), path)
