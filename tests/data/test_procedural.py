"""The procedural world: determinism (batching, processes, instruction sets), labels, content vs nuisance variation,
errors."""

import hashlib
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ardistill.data import CLASS_NAMES, NUM_CLASSES, make_images, procedural
from ardistill.data.procedural import image_uniforms, sin_cos
from ardistill.errors import BadArgumentError


def digest(images: torch.Tensor) -> str:
    return hashlib.sha256(images.contiguous().numpy().tobytes()).hexdigest()


@pytest.mark.parametrize("size", [64, 32])
def test_pixels_do_not_depend_on_batching(size):
    batch, _ = make_images(range(128), seed=3, size=size)
    picked = [0, 5, 17, 77, 127]
    alone, _ = make_images(picked, seed=3, size=size)
    assert torch.equal(batch[picked], alone)
    one, _ = make_images([77], seed=3, size=size)
    assert torch.equal(one[0], batch[77])


def test_pixels_are_identical_in_another_process():
    code = (
        "import hashlib; from ardistill.data import make_images; "
        "x, y = make_images(range(1000, 1040), seed=11, size=64); "
        "print(hashlib.sha256(x.contiguous().numpy().tobytes()).hexdigest(), y.tolist())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"OMP_NUM_THREADS": "1", "PATH": ""}).stdout.split(" ", 1)
    images, labels = make_images(range(1000, 1040), seed=11, size=64)
    assert out[0] == digest(images)
    assert out[1].strip() == str(labels.tolist())


def test_shapes_range_and_balanced_labels():
    images, labels = make_images(range(7, 7 + 10 * NUM_CLASSES), seed=0, size=64)
    assert images.shape == (10 * NUM_CLASSES, 3, 64, 64) and images.dtype == torch.float32
    assert images.min() >= 0 and images.max() <= 1
    assert torch.equal(labels, torch.arange(7, 7 + 10 * NUM_CLASSES) % NUM_CLASSES)
    assert torch.bincount(labels, minlength=NUM_CLASSES).tolist() == [10] * NUM_CLASSES
    assert NUM_CLASSES >= 10 and len(set(CLASS_NAMES)) == NUM_CLASSES


def test_seeds_give_different_worlds():
    a, la = make_images(range(48), seed=0)
    b, lb = make_images(range(48), seed=1)
    assert torch.equal(la, lb)
    assert all((a[i] - b[i]).abs().max() > 0.1 for i in range(48))


def test_each_class_varies_in_nuisances():
    """Within a class no two images are alike: colour, size, position, rotation and background all vary."""
    images, labels = make_images(range(NUM_CLASSES * 16), seed=0, size=64)
    for c in range(NUM_CLASSES):
        x = images[labels == c].flatten(1)
        dists = torch.cdist(x, x) / x.shape[1] ** 0.5  # RMS pixel difference
        off_diagonal = dists[~torch.eye(len(x), dtype=torch.bool)]
        assert off_diagonal.min() > 0.02, CLASS_NAMES[c]
        mean_colours = images[labels == c].mean(dim=(2, 3))
        assert mean_colours.std(dim=0).mean() > 0.05, CLASS_NAMES[c]


def test_edges_are_anti_aliased():
    """A soft edge leaves pixels strictly between foreground and background, not just two colours."""
    images, labels = make_images(range(0, NUM_CLASSES * 8), seed=0, size=64)
    for img in images[labels == CLASS_NAMES.index("disc")]:
        grey = img.mean(0)
        # the background may be a gradient, so count values along the horizontal line through a steep edge
        diffs = (grey[:, 1:] - grey[:, :-1]).abs()
        steps = diffs[diffs > 0.02]
        assert steps.numel() > 0 and steps.max() < 0.95 * (grey.max() - grey.min())


def test_32px_is_the_same_scene_as_64px():
    big, _ = make_images(range(24), seed=5, size=64)
    small, _ = make_images(range(24), seed=5, size=32)
    assert small.shape == (24, 3, 32, 32)
    assert (F.avg_pool2d(big, 2) - small).abs().mean() < 0.03


def test_bad_arguments_are_user_errors():
    with pytest.raises(BadArgumentError, match="size"):
        make_images([0], seed=0, size=48)
    with pytest.raises(BadArgumentError, match="non-negative"):
        make_images([-1], seed=0)
    with pytest.raises(BadArgumentError, match="seed"):
        make_images([0], seed=-3)


def test_empty_request():
    images, labels = make_images(np.array([], dtype=np.int64), seed=0, size=32)
    assert images.shape == (0, 3, 32, 32) and labels.shape == (0,)


def test_full_rotation_is_the_world_the_tokenizers_were_trained_on():
    """rotation=360 is world version 1 (shapes at any angle), which the shipped tokenizers were trained on
    (recipes/toy/*-tokenizer.yaml), so their recipes stay reproducible after the default world changed to 30°. The
    digest is that of the correctly rounded world (numpy's sqrt since 2026-12-03; torch's inexact sqrt had given
    1d815c04… on one machine and ef43957d… on another)."""
    images, _ = make_images(range(48), seed=0, size=32, rotation=360)
    assert digest(images) == "00bca050ea8d096f514a345a00379c34289dca186ef5e5d8f0e7ee89484d62dd"
    default, _ = make_images(range(48), seed=0, size=32)
    assert not torch.equal(default, images)


@pytest.mark.parametrize("rotation", [-1, 361])
def test_bad_rotation(rotation):
    with pytest.raises(BadArgumentError):
        make_images(range(2), seed=0, size=32, rotation=rotation)


# ------------------------------------------------------------------------ the same bits on every machine
# The world must not depend on the CPU's instruction set (numpy dispatches SIMD kernels by CPU feature, torch by
# ATEN_CPU_CAPABILITY). These render it at lower instruction sets, forbid the kernels whose last bit varies, and
# check the replacement trigonometry.

_WORLD_DIGESTS = """
import hashlib, json
import numpy as np, torch
from ardistill.data import make_images
from ardistill.data.procedural import NUM_CLASSES, _scene_parameters, image_uniforms
try:
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
except ImportError:  # numpy < 2
    from numpy.core._multiarray_umath import __cpu_dispatch__, __cpu_features__
idx = np.arange(300)
digests = {"numpy features": sorted(f for f in __cpu_dispatch__ if __cpu_features__.get(f)),
           "torch capability": torch.backends.cpu.get_cpu_capability()}
for rotation in (30.0, 360.0):
    params = _scene_parameters(image_uniforms(idx, 4), idx % NUM_CLASSES, rotation)
    digests[f"float64 scene parameters, rotation {rotation:g}"] = hashlib.sha256(
        b"".join(np.ascontiguousarray(params[k]).tobytes() for k in sorted(params))).hexdigest()
    images, _ = make_images(idx, seed=4, size=32, rotation=rotation)
    digests[f"32 px images, rotation {rotation:g}"] = hashlib.sha256(images.numpy().tobytes()).hexdigest()
"""


def _world_digests(**env) -> dict:
    """Digests of 300 images' float64 scene parameters and 32 px pixels (and the instruction sets they were made
    with): in this process, or with `env` in a fresh one."""
    if not env:
        namespace = {}
        exec(_WORLD_DIGESTS, namespace)
        return namespace["digests"]
    base = {k: v for k, v in os.environ.items() if k not in ("NPY_DISABLE_CPU_FEATURES", "ATEN_CPU_CAPABILITY")}
    out = subprocess.run([sys.executable, "-c", _WORLD_DIGESTS + "print(json.dumps(digests))"], capture_output=True,
                         text=True, env={**base, "OMP_NUM_THREADS": "1", **env})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def _stages(digests: dict) -> dict:
    return {k: v for k, v in digests.items() if k not in ("numpy features", "torch capability")}


def test_world_is_the_same_under_every_instruction_set():
    """Scene parameters (float64) and pixels are bit-identical with numpy's dispatched SIMD kernels switched off and
    torch at its baseline (no-AVX) kernels, against this process (this CPU's best: AVX2 here, AVX-512 where the CPU
    has it). The parameters are compared too because the float32 cast hides most last-bit differences of float64
    maths. One fresh process checks both; on a mismatch, one per library says which one differs."""
    here = _world_digests()
    numpy_features, torch_capability = here["numpy features"], here["torch capability"]
    here = _stages(here)
    lowest_numpy = dict(NPY_DISABLE_CPU_FEATURES=" ".join(numpy_features))
    lowest_torch = dict(ATEN_CPU_CAPABILITY="default")
    there = _world_digests(**lowest_numpy, **lowest_torch)
    assert there["numpy features"] == [], "NPY_DISABLE_CPU_FEATURES did not take effect"
    assert there["torch capability"] == "DEFAULT", "ATEN_CPU_CAPABILITY did not take effect"
    there = _stages(there)
    if there != here:
        culprits = [name for name, env in ((f"numpy without {' '.join(numpy_features)}", lowest_numpy),
                                           (f"torch at default kernels, not {torch_capability}", lowest_torch))
                    if _stages(_world_digests(**env)) != here]
        differing = [stage for stage in here if there[stage] != here[stage]]
        pytest.fail(f"the world depends on the instruction set: {', '.join(differing)} differ under "
                    f"{' and '.join(culprits) or 'numpy and torch at their lowest together'}")


_NOT_CORRECTLY_ROUNDED = {
    np: ["sin", "cos", "tan", "arcsin", "arccos", "arctan", "arctan2", "hypot", "sinh", "cosh", "tanh", "arcsinh",
         "arccosh", "arctanh", "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "logaddexp", "power",
         "float_power", "cbrt", "sum", "mean", "dot", "matmul", "einsum"],
    torch: ["sqrt", "rsqrt", "sin", "cos", "tan", "atan2", "tanh", "sigmoid", "exp", "expm1", "log", "log1p", "pow", "lerp",
            "addcmul", "addcdiv", "addmm", "matmul", "mm", "bmm", "einsum", "sum", "mean", "cumsum", "logsumexp",
            "softmax"],
    torch.Tensor: ["sqrt", "rsqrt", "sin", "cos", "tan", "atan2", "tanh", "sigmoid", "exp", "expm1", "log", "log1p", "pow", "lerp",
                   "addcmul", "addcdiv", "matmul", "sum", "mean", "cumsum", "softmax", "__pow__", "__rpow__",
                   "__matmul__"],
    F: ["interpolate", "conv2d", "avg_pool2d", "softmax", "sigmoid"],
}


def test_world_uses_only_correctly_rounded_operations(monkeypatch):
    """No kernel whose last bit depends on the CPU (transcendentals, torch's sqrt, fused multiply-adds, reductions,
    matrix products, resampling) runs while the world renders: each raises here."""
    for owner, names in _NOT_CORRECTLY_ROUNDED.items():
        for name in names:
            def forbidden(*args, _name=name, **kwargs):
                raise AssertionError(f"the world called {_name}, whose last bit depends on the CPU")
            monkeypatch.setattr(owner, name, forbidden)
    for size in (32, 64):
        for rotation in (30, 360):
            images, _ = make_images(range(2 * NUM_CLASSES), seed=0, size=size, rotation=rotation)
            assert images.shape == (2 * NUM_CLASSES, 3, size, size)


def _ulp_steps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Number of representable float64 steps from a to b (±0 count as one value)."""
    def order(v: np.ndarray) -> np.ndarray:  # float64 → int64, monotone
        return np.where(v < 0, -np.abs(v).view(np.int64), v.view(np.int64))
    return np.abs(order(a) - order(b))


def test_sin_cos_is_within_an_ulp_of_libm_over_the_angles_the_world_uses():
    angles = np.concatenate([np.linspace(0, 2 * math.pi, 20001), 2 * math.pi * image_uniforms(np.arange(5000), 0)[:, 3],
                             np.linspace(-40, 40, 4001), [0.0, -0.0, 1e-300, math.pi / 2, math.pi, 1.5 * math.pi]])
    sin, cos = sin_cos(angles)
    assert sin.dtype == cos.dtype == np.float64
    libm_sin = np.array([math.sin(a) for a in angles])
    libm_cos = np.array([math.cos(a) for a in angles])
    # libm is within 1 ulp of exact and so is sin_cos (1.4 ulp measured against 200-bit mpmath); values near a zero
    # of sin or cos are compared in absolute terms (the reduced argument carries ~1e-32 absolute error).
    for ours, ref in ((sin, libm_sin), (cos, libm_cos)):
        steps = np.where(np.abs(ref) > 1e-6, _ulp_steps(ours, ref), 0)
        assert steps.max() <= 1
        assert np.abs(ours - ref).max() <= 2.3e-16
    zero_sin, zero_cos = sin_cos(np.array([0.0]))
    assert zero_sin[0] == 0.0 and zero_cos[0] == 1.0
    assert np.allclose(sin * sin + cos * cos, 1.0, rtol=0, atol=4.5e-16)


def test_sin_cos_range_reduction_constants():
    """π/2 = _PIO2_1 + _PIO2_2 + _PIO2_3 (to half an ulp of the last part, 2^-122), and the first two parts have
    ≤ 33 significant bits, so k·part is exact for |k| ≤ 2^20."""
    from decimal import Decimal
    from fractions import Fraction

    half_pi = Fraction(Decimal("1.570796326794896619231321691639751442098584699687552910487472296153908"))
    parts = [procedural._PIO2_1, procedural._PIO2_2, procedural._PIO2_3]
    assert abs(sum(map(Fraction, parts)) - half_pi) <= Fraction(1, 2**122)
    for part in parts[:2]:
        mantissa = Fraction(part) / Fraction(2) ** math.frexp(part)[1]  # in [0.5, 1)
        assert (mantissa * 2**33).denominator == 1
    with pytest.raises(ValueError):
        sin_cos(np.array([1e9]))
    with pytest.raises(ValueError):
        sin_cos(np.array([np.nan]))


def test_sin_cos_bits_are_pinned():
    """The float64 angles' sines and cosines are part of the world's definition (the image digests would not notice a
    last-bit change: the float32 cast hides it)."""
    u = image_uniforms(np.arange(4096), 0)
    sin, cos = sin_cos(2 * math.pi * u[:, 3])
    digest_of_bits = hashlib.sha256(sin.tobytes() + cos.tobytes()).hexdigest()
    assert digest_of_bits == "e1b8f066fedc48619e48906fc0f73f17290989be590acea048dae5f0af09ad88"


def test_world_square_root_is_correctly_rounded():
    """The world's lengths √(x² + y²) are correctly rounded float32 square roots of the float32 x² + y²: equal to
    float32(√ in float64), which is correctly rounded for float32 (53 ≥ 2·24 + 2 bits, so the double rounding is
    harmless). torch.sqrt is not (2.14.1 on the CPU: one ulp low for ~0.6% of inputs), which is why the world does not
    use it. 1M pairs over the ranges the signed distances take, and tiny and large ones."""
    g = np.random.default_rng(0)
    x = np.concatenate([g.uniform(-2, 2, 600_000), g.uniform(-1e-3, 1e-3, 200_000), 2.0 ** g.uniform(-40, 40, 200_000)])
    y = g.permutation(x)
    x, y = torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.float32))
    squared = (x * x + y * y).numpy()
    want = np.sqrt(squared.astype(np.float64)).astype(np.float32)
    got = procedural._length(x, y)
    assert got.dtype == torch.float32 and np.array_equal(got.numpy(), want)
