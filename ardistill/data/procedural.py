"""The procedural image world: class-conditional images that are a pure function of `(seed, index)`.

Every image is drawn from a counter-based hash (SplitMix64 of the seed and the global index), never from a
stateful generator, so image `i` has the same pixels whatever batch, process or machine renders it. The label is
`index % NUM_CLASSES`, so every run of consecutive indices is class-balanced.

A scene lives in continuous coordinates `[-1, 1]²`; `size` only sets how finely it is sampled, so the 32 px
image of an index is the 64 px image rendered at half resolution.

Same bits on every machine: the world is built only from operations IEEE 754 rounds correctly, which every CPU,
SIMD width and kernel library computes identically — +, −, ×, ÷, sqrt, abs, min/max/clamp, floor, round/rint,
comparisons, where/sign, float64 → float32 casts (round to nearest), and wrap-around uint64 arithmetic for the hash.
Each is its own numpy ufunc or torch op, so nothing can be fused into a multiply-add. There are no transcendental
kernels, reductions, matrix products or resampling: their results depend on the instruction set (numpy dispatches
float64 sin/cos/exp/log by CPU feature, e.g. to SVML on AVX-512 in numpy 1.22–1.24; torch's kernels by
ATEN_CPU_CAPABILITY; a sum's order by vector width). The one place that needs trigonometry, the per-image angles,
uses `sin_cos`: Cody–Waite range reduction and Taylor polynomials in float64 from + − × and rint alone, within
1.4 ulp of the exact values. It replaced np.sin/np.cos (2026-12-02); the two differ by 1 ulp in 11.7% of 8 M
angles but never after the cast to float32 (a 1-ulp float64 change moves a float32 value with probability ≈ 2^-29),
and 100,000 images (32 and 64 px, rotation 30 and 360, seeds 0 and 1) rendered bit-identical before and after, so
the world the shipped tokenizers, teachers and evaluator were trained on is unchanged, digests included.
Square roots are numpy's: torch's CPU sqrt is not correctly rounded (2.14.1: one ulp low for ~0.6% of inputs, as an
rsqrt estimate refined by one Newton step would be), which made the world's last bits differ between machines until 2026-12-03 (then
≈ 23% of 32-px images differed from the correctly rounded world in a few pixels by ≤ 1e-6; shipped models unaffected
beyond that). tests/data/test_procedural.py renders the world under lower numpy and torch instruction sets, forbids
the non-exact kernels (torch.sqrt included) while rendering, and checks numpy's sqrt against float64's.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch

from ardistill.errors import BadArgumentError

SIZES = (32, 64)
NUM_UNIFORMS = 20  # random numbers drawn per image (fixed, so adding a use never shifts the others)

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser, elementwise on uint64 (wrap-around arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return (z ^ (z >> np.uint64(31))) & _MASK64


def image_uniforms(indices: np.ndarray, seed: int, k: int = NUM_UNIFORMS) -> np.ndarray:
    """`[N]` global indices → `[N, k]` float64 uniforms in [0, 1), a pure function of (seed, index, k-th draw)."""
    key = _splitmix64(_splitmix64(np.full(indices.shape, seed, dtype=np.uint64)) ^ indices.astype(np.uint64))
    draws = _splitmix64(key[:, None] ^ _splitmix64(np.arange(1, k + 1, dtype=np.uint64))[None, :])
    return (draws >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


# ------------------------------------------------------------------------------------------ trigonometry
# sin and cos of the per-image angles from + − × and rint alone. Those are correctly rounded in IEEE 754, so every
# CPU, SIMD width and library gives the same bits; numpy's np.sin/np.cos go to libm or, by CPU features and
# version, to SIMD kernels (e.g. SVML on AVX-512 in numpy 1.22–1.24) that differ in the last bit.
# Cody–Waite reduction x = k·π/2 + r, |r| ≤ π/4, with π/2 split in three parts: the first two have ≤ 33 significant
# bits, so k·_PIO2_1 and k·_PIO2_2 are exact for |k| ≤ 2^20, and x − k·_PIO2_1 is exact (Sterbenz).
_PIO2_1 = float.fromhex("0x1.921fb544p+0")        # π/2 to 33 bits
_PIO2_2 = float.fromhex("0x1.0b4611a6p-34")       # the next 33 bits
_PIO2_3 = float.fromhex("0x1.3198a2e037073p-69")  # the rest, to double precision
_TWO_OVER_PI = float.fromhex("0x1.45f306dc9c883p-1")
_MAX_TRIG_ARGUMENT = 2.0**19 * math.pi  # |k| ≤ 2^20
# Taylor coefficients (exact integer ratios, correctly rounded by Python): on |r| ≤ π/4 the first omitted terms,
# r^19/19! and r^20/20!, are below 1e-19, under a thousandth of an ulp of the result.
_SIN_COEFFICIENTS = tuple((-1) ** k / math.factorial(2 * k + 1) for k in range(8, 0, -1))  # r^17 … r^3
_COS_COEFFICIENTS = tuple((-1) ** k / math.factorial(2 * k) for k in range(9, 1, -1))  # r^18 … r^4


def _horner(z: np.ndarray, coefficients: Sequence[float]) -> np.ndarray:
    acc = np.full_like(z, coefficients[0])
    for c in coefficients[1:]:
        acc = acc * z + c  # two numpy ufunc calls: two roundings, never a fused multiply-add
    return acc


def sin_cos(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`[N]` float64 radians (|x| ≤ 2^19·π) → (sin x, cos x), each `[N]` float64, bit-identical on every machine.

    Measured within 1.4 ulp of the exact values (200-bit mpmath, 27,000 angles in [−40, 40]) and at most one
    representable value from glibc's math.sin/math.cos (tests/data/test_procedural.py)."""
    x = np.asarray(x, dtype=np.float64)
    if x.size and not np.abs(x).max() <= _MAX_TRIG_ARGUMENT:
        raise ValueError(f"sin_cos: arguments must be finite and within ±{_MAX_TRIG_ARGUMENT:.4g}")
    k = np.rint(x * _TWO_OVER_PI)
    r = ((x - k * _PIO2_1) - k * _PIO2_2) - k * _PIO2_3
    z = r * r
    sin_r = r + (r * z) * _horner(z, _SIN_COEFFICIENTS)
    half_z = 0.5 * z
    w = 1.0 - half_z  # w ≥ 0.69: (1 − w) − half_z is exactly this subtraction's rounding error (Fast2Sum); add it back
    cos_r = w + (((1.0 - w) - half_z) + (z * z) * _horner(z, _COS_COEFFICIENTS))
    quadrant = k.astype(np.int64) & 3  # x = k·π/2 + r: sin x = sin r, cos r, −sin r, −cos r
    sin_x = np.choose(quadrant, (sin_r, cos_r, -sin_r, -cos_r))
    cos_x = np.choose(quadrant, (cos_r, -sin_r, -cos_r, sin_r))
    return sin_x, cos_x


# ------------------------------------------------------------------------------------------ signed distances
# Each takes local (rotated, centred) coordinates lx, ly [n, H, W], the size s [n, 1, 1] and class-specific
# uniforms a, b [n, 1, 1]; it returns a signed distance [n, H, W] (negative inside the foreground).
Tensor = torch.Tensor


def _length(x: Tensor, y: Tensor) -> Tensor:
    # numpy's float32 sqrt (the IEEE operation, correctly rounded), not torch.sqrt: torch 2.14.1's CPU sqrt is one ulp
    # low for ~0.6% of inputs (measured 2026-12-03; a model of an rsqrt estimate refined by one Newton step matches
    # 99.999% of its outputs), and its bits differ between machines.
    return torch.from_numpy(np.sqrt((x * x + y * y).contiguous().numpy()))


def _box(lx: Tensor, ly: Tensor, hx: Tensor, hy: Tensor) -> Tensor:
    qx, qy = lx.abs() - hx, ly.abs() - hy
    return _length(qx.clamp(min=0), qy.clamp(min=0)) + torch.maximum(qx, qy).clamp(max=0)


def sdf_disc(lx, ly, s, a, b):
    return _length(lx, ly) - s


def sdf_square(lx, ly, s, a, b):
    return _box(lx, ly, 0.78 * s, 0.78 * s)


def sdf_triangle(lx, ly, s, a, b):
    """Equilateral triangle with circumradius s, centred on its centroid (after Inigo Quilez)."""
    k = math.sqrt(3.0)
    r = s * (k / 2)
    px, py = lx.abs() - r, ly + r / k
    fold = (px + k * py) > 0
    px, py = torch.where(fold, (px - k * py) / 2, px), torch.where(fold, (-k * px - py) / 2, py)
    px = px - torch.minimum(torch.maximum(px, -2 * r), torch.zeros_like(px))
    return -_length(px, py) * torch.sign(py)


def sdf_ring(lx, ly, s, a, b):
    return (_length(lx, ly) - 0.82 * s).abs() - s * (0.16 + 0.1 * a)


def sdf_cross(lx, ly, s, a, b):
    w = s * (0.22 + 0.12 * a)
    return torch.minimum(_box(lx, ly, s, w), _box(lx, ly, w, s))


def sdf_ellipse(lx, ly, s, a, b):
    """Approximate distance to an ellipse with semi-axes (s, (0.34..0.52)·s)."""
    ry = s * (0.34 + 0.18 * a)
    k0 = _length(lx / s, ly / ry)
    k1 = _length(lx / (s * s), ly / (ry * ry))
    return k0 * (k0 - 1) / (k1 + 1e-6)


def sdf_frame(lx, ly, s, a, b):
    return _box(lx, ly, 0.8 * s, 0.8 * s).abs() - s * (0.12 + 0.08 * a)


def sdf_two_blobs(lx, ly, s, a, b):
    r = s * (0.36 + 0.1 * a)
    off = r + s * (0.15 + 0.25 * b)
    return torch.minimum(_length(lx - off, ly), _length(lx + off, ly)) - r


def sdf_crescent(lx, ly, s, a, b):
    bite = _length(lx - s * (0.35 + 0.25 * a), ly) - 0.8 * s
    return torch.maximum(_length(lx, ly) - s, -bite)


def sdf_dot_grid(lx, ly, s, a, b):
    """3×3 lattice of dots (spacing ≥ 4.9 px and dot radius ≥ 1.6 px at 32 px: one dot per 4-px token cell or fewer)."""
    g = s * (0.8 + 0.1 * a)
    qx, qy = (lx / g).round().clamp(-1, 1) * g, (ly / g).round().clamp(-1, 1) * g
    return _length(lx - qx, ly - qy) - g * (0.33 + 0.05 * b)


def _stripe_distance(u: Tensor, period: Tensor, phase: Tensor) -> Tensor:
    t = u / period + phase
    return ((t - torch.floor(t) - 0.5).abs() - 0.25) * period


def sdf_stripes(lx, ly, s, a, b):
    """Parallel stripes over the whole image; the size sets the period (7.6–12.8 px at 32 px)."""
    return _stripe_distance(lx, 1.25 * s, a)


def sdf_checkerboard(lx, ly, s, a, b):
    period = 1.4 * s  # 8.5–14.3 px at 32 px: cells of ≥ 4 px, the side of a token cell of the 4× tokenizers
    d1, d2 = _stripe_distance(lx, period, a), _stripe_distance(ly, period, b)
    # XOR of two stripe sets: inside where exactly one is inside; |distance| is the nearer edge.
    return torch.where((d1 < 0) ^ (d2 < 0), -1.0, 1.0) * torch.minimum(d1.abs(), d2.abs())


# name, signed distance, extent (how far the shape reaches from its centre, in units of s; 0 = whole image)
CLASSES: tuple[tuple[str, Callable, float], ...] = (
    ("disc", sdf_disc, 1.0),
    ("square", sdf_square, 1.1),
    ("triangle", sdf_triangle, 1.0),
    ("ring", sdf_ring, 1.1),
    ("cross", sdf_cross, 1.05),
    ("ellipse", sdf_ellipse, 1.0),
    ("frame", sdf_frame, 1.15),
    ("two_blobs", sdf_two_blobs, 1.3),
    ("crescent", sdf_crescent, 1.0),
    ("dot_grid", sdf_dot_grid, 1.3),
    ("stripes", sdf_stripes, 0.0),
    ("checkerboard", sdf_checkerboard, 0.0),
)
CLASS_NAMES = tuple(name for name, _, _ in CLASSES)
# Shapes turn by an angle uniform in [0°, ROTATION°). At 32 px the CPU-trained teachers drew rotated corners badly at
# every angle (docs/data.md), so the world keeps rotation as a nuisance but within a 30° range.
ROTATION = 30.0
NUM_CLASSES = len(CLASSES)


def labels_of(indices: Sequence[int] | np.ndarray | torch.Tensor) -> torch.Tensor:
    """The label of a global index: `index % NUM_CLASSES` → `[N]` int64."""
    return torch.as_tensor(np.asarray(indices, dtype=np.int64) % NUM_CLASSES, dtype=torch.int64)


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """`[N]` hue (turns), saturation, value → `[N, 3]` RGB in [0, 1]."""
    out = []
    for n in (5, 3, 1):
        k = (n + h[:, None] * 6) % 6
        out.append(v[:, None] - v[:, None] * s[:, None] * np.clip(np.minimum(k, 4 - k), 0, 1))
    return np.concatenate(out, axis=1)


def _scene_parameters(u: np.ndarray, labels: np.ndarray, rotation: float = ROTATION) -> dict[str, np.ndarray]:
    """Per-image nuisances from the uniforms `[N, NUM_UNIFORMS]`; shapes turn by an angle uniform in [0°, rotation°)."""
    dark_on_light = u[:, 10] < 0.3
    hue_fg = u[:, 4]
    hue_bg = (hue_fg + 0.25 + 0.5 * u[:, 7]) % 1.0
    val_fg = np.where(dark_on_light, 0.08 + 0.27 * u[:, 6], 0.75 + 0.25 * u[:, 6])
    val_bg = np.where(dark_on_light, 0.7 + 0.28 * u[:, 9], 0.06 + 0.34 * u[:, 9])
    sat_bg = 0.6 * u[:, 8]
    fg = _hsv_to_rgb(hue_fg, 0.5 + 0.5 * u[:, 5], val_fg)
    bg1 = _hsv_to_rgb(hue_bg, sat_bg, val_bg)
    # Half the backgrounds are a linear gradient towards a shifted colour (same light/dark side).
    gradient = u[:, 11] < 0.5
    shift = np.where(val_bg > 0.5, -1.0, 1.0) * (0.12 + 0.18 * u[:, 14]) * gradient
    bg2 = _hsv_to_rgb((hue_bg + 0.2 * (u[:, 13] - 0.5)) % 1.0, sat_bg, np.clip(val_bg + shift, 0, 1))
    s = 0.38 + 0.26 * u[:, 2]
    extent = np.array([e for _, _, e in CLASSES])[labels] * s
    reach = np.maximum(0.06, 0.94 - extent)
    angle = 2 * math.pi * (rotation / 360.0) * u[:, 3]  # rotation 360 gives exactly the 2π·u of world version 1
    grad_angle = 2 * math.pi * u[:, 12]
    sin, cos = sin_cos(angle)
    grad_sin, grad_cos = sin_cos(grad_angle)
    return dict(
        fg=fg, bg1=bg1, bg2=bg2, s=s, cx=(2 * u[:, 0] - 1) * reach, cy=(2 * u[:, 1] - 1) * reach,
        cos=cos, sin=sin, grad_cos=grad_cos, grad_sin=grad_sin,
        softness=0.8 + 1.2 * u[:, 15], a=u[:, 16], b=u[:, 17],
    )


def _check(indices, seed: int, size: int) -> np.ndarray:
    if size not in SIZES:
        raise BadArgumentError(f"image size must be one of {', '.join(map(str, SIZES))}, got {size}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise BadArgumentError(f"seed must be a non-negative integer, got {seed!r}")
    idx = np.asarray(indices.cpu() if isinstance(indices, torch.Tensor) else indices, dtype=np.int64).reshape(-1)
    if idx.size and idx.min() < 0:
        raise BadArgumentError("image indices must be non-negative")
    return idx


def make_images(indices, *, seed: int = 0, size: int = 64, rotation: float = ROTATION) -> tuple[torch.Tensor, torch.Tensor]:
    """Render the images of `indices` (global, ≥ 0) in stream `seed`.

    Returns (images `[N, 3, size, size]` float32 in [0, 1], labels `[N]` int64). Pixels of index i depend only on
    (seed, i, size, rotation). `rotation`: width in degrees of the range [0°, rotation°) the shapes turn in; the
    world is the default (30°); 360 is the full-rotation world the shipped tokenizers were trained on.
    """
    if not 0 <= rotation <= 360:
        raise BadArgumentError(f"rotation must be in [0, 360] degrees, got {rotation}")
    idx = _check(indices, seed, size)
    n = idx.size
    labels_np = idx % NUM_CLASSES
    images = torch.empty(n, 3, size, size, dtype=torch.float32)
    if n == 0:
        return images, torch.as_tensor(labels_np)
    p = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in _scene_parameters(image_uniforms(idx, seed), labels_np, rotation).items()}
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) * (2.0 / size) - 1.0
    ys, xs = coords.view(1, size, 1), coords.view(1, 1, size)
    pixel = 2.0 / size

    def col(v: Tensor) -> Tensor:  # [n] → [n, 1, 1]
        return v.view(-1, 1, 1)

    # Background: flat (bg2 == bg1) or a linear ramp along a random direction.
    ramp = ((xs * col(p["grad_cos"]) + ys * col(p["grad_sin"])) * (0.5 / math.sqrt(2.0)) + 0.5).clamp(0, 1)
    for c_label, (_, sdf, _) in enumerate(CLASSES):
        sel = np.nonzero(labels_np == c_label)[0]
        if sel.size == 0:
            continue
        sel_t = torch.as_tensor(sel)
        q = {k: v[sel_t] for k, v in p.items()}
        dx, dy = xs - col(q["cx"]), ys - col(q["cy"])
        lx = dx * col(q["cos"]) + dy * col(q["sin"])
        ly = dy * col(q["cos"]) - dx * col(q["sin"])
        dist = sdf(lx, ly, col(q["s"]), col(q["a"]), col(q["b"]))
        alpha = (0.5 - dist / (col(q["softness"]) * pixel)).clamp(0, 1).unsqueeze(1)  # anti-aliased edge
        t = ramp[sel_t].unsqueeze(1)
        bg1, bg2, fg = (q[k].view(-1, 3, 1, 1) for k in ("bg1", "bg2", "fg"))
        background = bg1 + (bg2 - bg1) * t
        images[sel_t] = (background + (fg - background) * alpha).clamp(0, 1)
    return images, torch.as_tensor(labels_np)
