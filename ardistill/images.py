"""Image grids and PNG files (atomic writes)."""

from __future__ import annotations

import math
import os

import torch

from ardistill.errors import BadArgumentError
from ardistill.io import atomic_path, ensure_writable


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """`[B, 3, H, W]` in [0, 1] → `[B, H, W, 3]` uint8 (round to nearest)."""
    return (images.detach().float().clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu()


READABLE_PX = 128  # a grid shows each image at least this many pixels wide (32-px toy models: 4×)


def readable_scale(size: int, min_px: int = READABLE_PX) -> int:
    """The integer factor that makes a `size`-px image at least `min_px` px wide: 4 for 32 px, 2 for 64, 1 from 128."""
    return max(1, math.ceil(min_px / max(1, size)))


def upscale_nearest(images: torch.Tensor, factor: int) -> torch.Tensor:
    """`[..., H, W]` → `[..., factor·H, factor·W]`, every pixel a `factor × factor` block (nearest neighbour, exact)."""
    if factor < 1:
        raise BadArgumentError(f"upscale factor must be a positive integer, got {factor}")
    if factor == 1:
        return images
    return images.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)


def make_grid(images: torch.Tensor, nrow: int | None = None, pad: int = 2, upscale: int = 1) -> torch.Tensor:
    """`[B, 3, H, W]` in [0, 1] → one `[3, H', W']` grid with `nrow` images per row (default ≈ √B), each image
    enlarged `upscale` times (nearest neighbour); `pad` pixels of white between images."""
    images = upscale_nearest(images.detach().cpu(), upscale)
    b, c, h, w = images.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(b)))
    rows = math.ceil(b / nrow)
    grid = torch.ones(c, rows * (h + pad) + pad, nrow * (w + pad) + pad, dtype=images.dtype)
    for i in range(b):
        r, col = divmod(i, nrow)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        grid[:, y : y + h, x : x + w] = images[i]
    return grid


def save_png(image: torch.Tensor, path: str | os.PathLike, caption: str | None = None) -> None:
    """Save one `[3, H, W]` image in [0, 1] as PNG, atomically; `caption`: text on a white strip below it."""
    from PIL import Image

    path = ensure_writable(path)
    picture = Image.fromarray(to_uint8(image[None])[0].numpy())
    if caption:
        picture = _with_caption(picture, caption)
    with atomic_path(path) as tmp:
        picture.save(tmp, format="PNG")


def _with_caption(picture, caption: str):
    """The picture with `caption` (word-wrapped to its width) in dark grey on a white strip underneath."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=14)
    draw = ImageDraw.Draw(picture)
    width = picture.width - 8
    lines: list[str] = []
    for word in caption.split():
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    line_height = 18
    out = Image.new("RGB", (picture.width, picture.height + line_height * len(lines) + 6), "white")
    out.paste(picture, (0, 0))
    draw = ImageDraw.Draw(out)
    for k, line in enumerate(lines):
        draw.text((4, picture.height + 3 + k * line_height), line, fill=(40, 40, 40), font=font)
    return out


def save_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int | None = None, *, upscale: int | None = None,
              caption: str | None = None) -> int:
    """Write `[B, 3, H, W]` images in [0, 1] as one PNG grid; returns the enlargement used.

    upscale: integer nearest-neighbour factor per image (default: `readable_scale`, so 32-px images become 128 px;
    1 keeps the native size). caption: a line of text under the grid (e.g. method, steps, toy-FID).
    """
    factor = readable_scale(max(images.shape[-2:])) if upscale is None else upscale
    save_png(make_grid(images, nrow, upscale=factor), path, caption=caption)
    return factor
