"""Readable grids: small images are enlarged by an integer factor, nearest neighbour, and can carry a caption."""

import numpy as np
import pytest
import torch
from PIL import Image

from ardistill.cli import main
from ardistill.images import make_grid, readable_scale, save_grid, to_uint8


def run(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_readable_scale():
    assert [readable_scale(s) for s in (16, 32, 64, 128, 256)] == [8, 4, 2, 1, 1]


def _assert_nearest_blocks(png, images, factor, pad=2, nrow=None):
    """Every image of the grid is its source with each pixel an exact factor × factor block."""
    arr = np.asarray(Image.open(png).convert("RGB"))
    b, _, h, w = images.shape
    nrow = nrow or int(np.ceil(np.sqrt(b)))
    src = to_uint8(images).numpy()  # [B, H, W, 3]
    for i in range(b):
        r, c = divmod(i, nrow)
        y, x = pad + r * (h * factor + pad), pad + c * (w * factor + pad)
        tile = arr[y:y + h * factor, x:x + w * factor]
        blocks = tile.reshape(h, factor, w, factor, 3)
        assert (blocks == blocks[:, :1, :, :1]).all(), "pixel blocks are not constant"
        assert (blocks[:, 0, :, 0] == src[i]).all(), "block colours are not the source pixels"


def test_32px_grid_is_enlarged_4x_with_constant_blocks(tmp_path):
    images = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    png = tmp_path / "g.png"
    assert save_grid(images, png, nrow=3) == 4
    assert Image.open(png).size == (3 * (128 + 2) + 2, 2 * (128 + 2) + 2)
    _assert_nearest_blocks(png, images, 4, nrow=3)
    assert save_grid(images, png, nrow=3, upscale=1) == 1
    assert Image.open(png).size == (3 * 34 + 2, 2 * 34 + 2)
    assert make_grid(images, 3).shape == make_grid(images, 3, upscale=1).shape  # make_grid itself stays native


def test_caption_adds_a_strip_below_and_keeps_the_grid(tmp_path):
    images = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    plain, captioned = tmp_path / "a.png", tmp_path / "b.png"
    save_grid(images, plain)
    save_grid(images, captioned, caption="teacher · 10 AR steps · toy-FID 2.04 (1000 images)")
    a, b = np.asarray(Image.open(plain).convert("RGB")), np.asarray(Image.open(captioned).convert("RGB"))
    assert b.shape[1] == a.shape[1] and b.shape[0] > a.shape[0]
    assert (b[:a.shape[0]] == a).all()
    strip = b[a.shape[0]:]
    assert (strip < 128).any(), "no text drawn in the caption strip"


def test_sample_cli_enlarges_32px_models_by_default(tmp_path, capsys):
    out = tmp_path / "grid.png"
    code, stdout, err = run(["sample", "--teacher", "var-toy-s", "--random-init", "--num-images", "4", "--nrow", "2",
                             "--out", str(out)], capsys)
    assert code in (0, None), err
    native = tmp_path / "native.png"
    code, _, err = run(["sample", "--teacher", "var-toy-s", "--random-init", "--num-images", "4", "--nrow", "2",
                        "--upscale", "1", "--out", str(native)], capsys)
    assert code in (0, None), err
    w, h = Image.open(native).size
    size = (w - 2) // 2 - 2  # the model's image size
    factor = readable_scale(size)
    assert factor > 1 and "shown" in stdout
    assert Image.open(out).size == (2 * (size * factor + 2) + 2, 2 * (size * factor + 2) + 2)
    # the enlarged grid is the native one with every pixel repeated (same seed, same images)
    big = np.asarray(Image.open(out).convert("RGB"))
    small = np.asarray(Image.open(native).convert("RGB"))
    for r in range(2):
        for c in range(2):
            s_tile = small[2 + r * (size + 2):2 + r * (size + 2) + size, 2 + c * (size + 2):2 + c * (size + 2) + size]
            b_tile = big[2 + r * (size * factor + 2):2 + r * (size * factor + 2) + size * factor,
                         2 + c * (size * factor + 2):2 + c * (size * factor + 2) + size * factor]
            assert (b_tile == s_tile.repeat(factor, 0).repeat(factor, 1)).all()
