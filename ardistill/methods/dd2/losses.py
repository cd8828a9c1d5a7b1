"""DD2's two losses (spec §4): conditional score distillation (CSD) for the generator, fake conditional score (FCS)
for the guidance network, and the noise-level draws they share.

Everything is in clean-token (x̂0) terms; a score s and its x̂0 are tied by s = ((1 − t)·x̂0 − x)/t² (`score.py`).
The methods are generic over two callables, so a per-family driver (VAR, LlamaGen) plugs in its own:

- `TeacherProbs`: q `[B, L, C]` (the generator's clean tokens, detached) → p `[B, L, V]`, the teacher's probabilities
  at every position after its CFG / temperature / top-k / top-p (zeros allowed), where row i depends on q_<i only
  (one teacher-forced pass over the nearest codes of q). The teacher thereby scores the generator's **own** prefix.
- `Guidance`: (x `[B, L, C]` noisy tokens, t `[B, L]`, prefix `[B, L, C]` clean tokens) → x̂0 `[B, L, C]`, the
  guidance network's prediction of the generator's clean token at each position, causal in the prefix.

Shapes: B batch, L positions, C code dimension, V codebook size. t in [t_min, t_max] ⊂ (0, 1), per position.
"""

from __future__ import annotations

from typing import Callable

import torch

from ardistill.errors import BadArgumentError
from ardistill.methods.dd2.score import clean_token_prediction, log_probs_from_probs

TeacherProbs = Callable[[torch.Tensor], torch.Tensor]
Guidance = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

T_MIN, T_MAX = 0.02, 0.98
T_DISTRIBUTIONS = ("logit_normal", "uniform")
GENERATOR_WEIGHTINGS = ("none", "dmd")


def sample_t(
    shape: tuple[int, ...],
    *,
    distribution: str = "logit_normal",
    generator: torch.Generator | None = None,
    loc: float = 0.0,
    scale: float = 1.0,
    t_min: float = T_MIN,
    t_max: float = T_MAX,
    device=None,
    dtype=torch.float32,
) -> torch.Tensor:
    """Noise levels `shape` (usually [B, L]): logit-normal sigmoid(N(loc, scale²)) or uniform on [t_min, t_max],
    clipped to [t_min, t_max]. Drawn on the CPU from `generator`, so the draws do not depend on the device."""
    if distribution not in T_DISTRIBUTIONS:
        raise BadArgumentError(f"unknown t distribution {distribution!r}; use {' or '.join(T_DISTRIBUTIONS)}")
    if not (0 < t_min < t_max < 1):
        raise BadArgumentError(f"need 0 < t_min < t_max < 1, got {t_min}, {t_max}")
    if distribution == "uniform":
        t = t_min + (t_max - t_min) * torch.rand(shape, generator=generator, dtype=torch.float64)
    else:
        t = torch.sigmoid(loc + scale * torch.randn(shape, generator=generator, dtype=torch.float64))
    return t.clamp(t_min, t_max).to(device=device, dtype=dtype)


def progressive_ema_rate(step: int, max_rate: float = 0.9999) -> float:
    """The paper's progressive EMA decay after `step` updates: min(max_rate, (k + 1)/(k + 10))."""
    return min(max_rate, (step + 1) / (step + 10))


def _noisy(q: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    return (1 - t)[..., None] * q + t[..., None] * noise


def csd_generator_loss(
    q: torch.Tensor,
    teacher_probs: TeacherProbs,
    guidance: Guidance,
    codebook: torch.Tensor,
    *,
    t: torch.Tensor,
    noise: torch.Tensor,
    weighting: str = "none",
    detach_inputs: bool = True,
    chunk_positions: int | None = None,
) -> tuple[torch.Tensor, dict]:
    """The generator's CSD loss, SiD form with α = 1 in x̂0 terms, averaged over B and L (summed over C).

    At every position, x = (1 − t)·q + t·ε′ with fresh ε′ (`noise`); the teacher predicts x̂0_T at x from its
    probabilities on sg(q)'s prefix, the guidance network x̂0_ψ = ψ(x, t, sg(q)); with ω(t) computed without gradient

        L = ω · (x̂0_T − x̂0_ψ)ᵀ (x̂0_ψ − q).

    `detach_inputs=True` (default, docs/dd2.md decision 2): the networks' inputs are detached, so the gradient is
    DMD's, ∂L/∂q = g = ω·(x̂0_ψ − x̂0_T); implemented as ½‖q − sg(q − g)‖², whose value ½‖g‖² is the logged loss.
    `detach_inputs=False`: the SiD loss itself, with gradients also through x into both predictions (the guidance
    network's parameters get gradients too: freeze them, or zero them before its own step).

    Several noise draws per sample (`t` `[m·B, L]`, `noise` `[m·B, L, C]`, draw r of sample b at row r·B + b, the
    FCS loss's layout) average the gradient over m draws of (t, ε′) at the cost of the heads only: the teacher scores
    each prefix once and the guidance network receives each prefix m times (`bind_labels` folds the repeats, so its
    backbone runs once). The loss is the mean over draws, so m = 1 and m > 1 have the same scale.

    Args:
        q: `[B, L, C]` generator outputs (with gradient).
        t: `[m·B, L]` noise levels; noise: `[m·B, L, C]` fresh Gaussian noise (m ≥ 1).
        weighting: "none" (ω = 1, decision 3) or "dmd" (ω = 1 / mean over L, C of |q − x̂0_T|, per row).
    Returns:
        (scalar loss, metrics: `csd_gap` = mean ‖x̂0_T − x̂0_ψ‖², `weight` = mean ω).
    """
    if weighting not in GENERATOR_WEIGHTINGS:
        raise BadArgumentError(f"unknown generator weighting {weighting!r}; use {' or '.join(GENERATOR_WEIGHTINGS)}")
    B = q.shape[0]
    if noise.dim() != 3 or noise.shape[0] % B or noise.shape[1:] != q.shape[1:] or t.shape != noise.shape[:2]:
        raise BadArgumentError(f"t must be [m·B, L] and noise [m·B, L, C] for q {list(q.shape)}; got {list(t.shape)}, {list(noise.shape)}")
    m = noise.shape[0] // B
    with torch.no_grad():
        log_p = log_probs_from_probs(teacher_probs(q.detach()))
    if m > 1:
        q, log_p = q.repeat(m, 1, 1), log_p.repeat(m, 1, 1)
    prefix = q.detach()
    x = _noisy(q, t, noise)
    x_in = x.detach() if detach_inputs else x
    with torch.set_grad_enabled(torch.is_grad_enabled() and not detach_inputs):
        x0_teacher = clean_token_prediction(log_p, codebook, x_in, t, chunk_positions=chunk_positions).to(q.dtype)
        x0_guidance = guidance(x_in, t, prefix)
    with torch.no_grad():
        if weighting == "dmd":
            w = 1.0 / (q - x0_teacher).abs().mean(dim=(1, 2), keepdim=True).clamp_min(1e-5)
        else:
            w = torch.ones(q.shape[0], 1, 1, dtype=q.dtype, device=q.device)
        gap = ((x0_teacher - x0_guidance) ** 2).sum(-1).mean()
    if detach_inputs:
        g = w * (x0_guidance - x0_teacher)
        loss = 0.5 * ((q - (q - g).detach()) ** 2).sum(-1).mean()
    else:
        loss = (w * (x0_teacher - x0_guidance) * (x0_guidance - q)).sum(-1).mean()
    return loss, {"csd_gap": float(gap), "weight": float(w.mean())}


def fcs_guidance_loss(guidance: Guidance, q: torch.Tensor, *, t: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """The guidance network's FCS loss: denoising score matching in x̂0 terms on detached generator samples,

        L = mean over draws, B, L of ‖ψ(x, t, sg(q)) − sg(q)‖²,   x = (1 − t)·q + t·ε,

    with m noise draws per sample (MAR's multi-sample trick). Its minimiser is E[q_i | x, q_<i] under the
    generator, i.e. the generator's conditional score via s = ((1 − t)·x̂0 − x)/t² (an x̂0-MSE is the score-matching
    loss weighted by t⁴/(1 − t)²: decision 4).

    Args:
        q: `[B, L, C]` generator samples (detached here).
        t: `[m·B, L]` noise levels; noise: `[m·B, L, C]`; draw r of sample b is row r·B + b.
    """
    B = q.shape[0]
    if noise.dim() != 3 or noise.shape[0] % B or noise.shape[1:] != q.shape[1:] or t.shape != noise.shape[:2]:
        raise BadArgumentError(f"noise must be [m·B, L, C] and t [m·B, L] for q {list(q.shape)}; got {list(noise.shape)}, {list(t.shape)}")
    m = noise.shape[0] // B
    clean = q.detach().repeat(m, 1, 1)
    pred = guidance(_noisy(clean, t, noise), t, clean)
    loss = ((pred - clean) ** 2).sum(-1).mean()
    return loss, {"fcs": float(loss.detach())}

