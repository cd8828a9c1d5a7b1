"""The teacher as a conditional score model, in closed form (DD2 spec §1).

At one token position the teacher gives a categorical distribution p = (p_1..p_V) over codebook vectors
c_j ∈ R^C (after its CFG, temperature, top-k / top-p: zeros allowed). Rectified-flow noising of a clean token q,

    x = (1 − t)·q + t·ε,   ε ~ N(0, I_C),   t ∈ (0, 1)   (t = 0: data, t = 1: noise),

turns q ~ Σ_j p_j δ(c_j) into the Gaussian mixture p_t(x) = Σ_j p_j N(x; (1 − t)·c_j, t²·I), whose posterior is

    w_j(x, t) = softmax_j( log p_j − ‖x − (1 − t)·c_j‖² / (2t²) )          (p_j = 0 → weight exactly 0)
    x̂0(x, t) = Σ_j w_j c_j                                                (posterior mean of the clean token)
    ∇_x log p_t(x) = ((1 − t)·x̂0 − x) / t²                                 (the teacher's conditional score)
    v(x, t) = E[ε − q | x] = (x − x̂0) / t                                 (the flow velocity, dx/dt)

‖x‖² is common to every j and is dropped from the softmax argument, which becomes
log p_j + ((1 − t)⟨x, c_j⟩ − (1 − t)²‖c_j‖²/2) / t².

DD1's flow map (`ardistill.methods.dd.flow`) uses the mirrored time s = 1 − t (x_s = s·x_1 + (1 − s)·ε): its denoiser
D(x, s) is this x̂0(x, 1 − s) and its velocity (D − x)/(1 − s) is −v(x, t).

Numerics. The score has a 1/t² that cancels a (1 − t)·x̂0 − x of size O(t): in fp32 at t = 0.02 it loses ~1e-4
relative precision (measured, docs/dd2.md). Losses therefore work in x̂0 terms; `conditional_score` is for tests and
fp64 use. Keep t in [0.02, 0.98].

Shapes: B batch, L positions, V codebook size, C code dimension. t is [B, L] or [B, 1] (broadcast over L).
Memory: the [N, V] softmax is built `chunk_positions` positions at a time (default: ≤ 2^24 elements per chunk, i.e.
64 MiB in fp32 at V = 16384 → 1024 positions per chunk); autograd keeps each chunk's weights for the backward pass.
"""

from __future__ import annotations

import torch

from ardistill.errors import BadArgumentError

CHUNK_ELEMENTS = 1 << 24


def log_probs_from_probs(probs: torch.Tensor) -> torch.Tensor:
    """log p with −inf where p = 0, and finite gradients (d log p / dp = 0 there, never inf·0 = NaN)."""
    positive = probs > 0
    safe = torch.where(positive, probs, torch.ones_like(probs))
    return torch.where(positive, safe.log(), torch.full_like(probs, float("-inf")))


def _check(log_probs: torch.Tensor, codebook: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    if log_probs.dim() != 3 or x.dim() != 3 or log_probs.shape[:2] != x.shape[:2]:
        raise BadArgumentError(
            f"expected log-probabilities [B, L, V] and noisy tokens [B, L, C] with the same B, L; "
            f"got {list(log_probs.shape)} and {list(x.shape)}"
        )
    if codebook.dim() != 2 or codebook.shape != (log_probs.shape[2], x.shape[2]):
        raise BadArgumentError(f"codebook must be [V, C] = [{log_probs.shape[2]}, {x.shape[2]}], got {list(codebook.shape)}")
    if t.dim() == 1:
        t = t[:, None]
    if t.dim() != 2 or t.shape[0] != x.shape[0] or t.shape[1] not in (1, x.shape[1]):
        raise BadArgumentError(f"t must be [B, L] or [B, 1] for tokens {list(x.shape)}, got {list(t.shape)}")
    return t.expand(x.shape[0], x.shape[1])


def _posterior_logits(log_p: torch.Tensor, codebook: torch.Tensor, code_sq: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Unnormalised log-weights `[N, V]` for rows x `[N, C]`, t `[N]`."""
    a = (1 - t)[:, None]
    inv_var = (1.0 / (t * t))[:, None]
    return log_p + (a * (x @ codebook.T) - 0.5 * (a * a) * code_sq) * inv_var


def _chunks(n: int, v: int, chunk_positions: int | None):
    step = chunk_positions or max(1, CHUNK_ELEMENTS // max(v, 1))
    return [(s, min(n, s + step)) for s in range(0, n, step)]


def posterior_weights(
    log_probs: torch.Tensor, codebook: torch.Tensor, x: torch.Tensor, t: torch.Tensor, *, chunk_positions: int | None = None
) -> torch.Tensor:
    """The posterior over codes given the noisy token, w `[B, L, V]` (rows sum to 1, zero where p = 0).

    Args:
        log_probs: `[B, L, V]` log-probabilities, any normalisation, −inf for excluded codes
            (`log_probs_from_probs(p)` for probabilities with zeros; teacher logits work as they are).
        codebook: `[V, C]` code vectors.
        x: `[B, L, C]` noisy tokens, x = (1 − t)·q + t·ε.
        t: `[B, L]` or `[B, 1]` noise levels in (0, 1).
    Builds the full `[B, L, V]` output: for large V use `clean_token_prediction`, which never does.
    """
    t = _check(log_probs, codebook, x, t)
    B, L, V = log_probs.shape
    dtype = torch.promote_types(x.dtype, codebook.dtype)
    lp, xs, ts = log_probs.reshape(B * L, V).to(dtype), x.reshape(B * L, -1).to(dtype), t.reshape(B * L).to(dtype)
    cb = codebook.to(dtype)
    code_sq = (cb * cb).sum(-1)
    out = [torch.softmax(_posterior_logits(lp[s:e], cb, code_sq, xs[s:e], ts[s:e]), dim=-1) for s, e in _chunks(B * L, V, chunk_positions)]
    return torch.cat(out).reshape(B, L, V)


def clean_token_prediction(
    log_probs: torch.Tensor, codebook: torch.Tensor, x: torch.Tensor, t: torch.Tensor, *, chunk_positions: int | None = None
) -> torch.Tensor:
    """The teacher's posterior mean of the clean token, x̂0 = Σ_j w_j c_j, `[B, L, C]` in the dtype of x / codebook
    (promoted, at least fp32: computed outside any autocast region, whose low-precision matmuls would blur the
    posterior). Differentiable in x, log_probs and the codebook; finite gradients with −inf log-probabilities.
    Raises if some position excludes every code (its posterior is undefined)."""
    t = _check(log_probs, codebook, x, t)
    B, L, V = log_probs.shape
    if bool(torch.isneginf(log_probs).all(dim=-1).any()):
        raise BadArgumentError("a position has zero probability for every code; its posterior is undefined")
    dtype = torch.promote_types(torch.promote_types(x.dtype, codebook.dtype), torch.float32)
    with torch.autocast(x.device.type, enabled=False):
        return _clean_token_prediction(log_probs, codebook, x, t, dtype, chunk_positions)


def _clean_token_prediction(log_probs, codebook, x, t, dtype, chunk_positions):
    B, L, V = log_probs.shape
    lp, xs, ts = log_probs.reshape(B * L, V).to(dtype), x.reshape(B * L, -1).to(dtype), t.reshape(B * L).to(dtype)
    cb = codebook.to(dtype)
    code_sq = (cb * cb).sum(-1)
    out = [torch.softmax(_posterior_logits(lp[s:e], cb, code_sq, xs[s:e], ts[s:e]), dim=-1) @ cb
           for s, e in _chunks(B * L, V, chunk_positions)]
    return torch.cat(out).reshape(B, L, -1)


def score_from_clean(x0: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """∇_x log p_t(x) = ((1 − t)·x̂0 − x) / t², `[B, L, C]`, for any clean-token prediction x̂0 (teacher's or
    guidance network's). Loses precision in fp32 at small t (the 1/t²): prefer x̂0 terms there."""
    t = t[..., None] if t.dim() == x.dim() - 1 else t
    return ((1 - t) * x0 - x) / (t * t)


def velocity_from_clean(x0: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The flow velocity dx/dt = (x − x̂0) / t, `[B, L, C]` (DD1's velocity at s = 1 − t, negated)."""
    t = t[..., None] if t.dim() == x.dim() - 1 else t
    return (x - x0) / t


def conditional_score(
    log_probs: torch.Tensor, codebook: torch.Tensor, x: torch.Tensor, t: torch.Tensor, *, chunk_positions: int | None = None
) -> torch.Tensor:
    """The teacher's conditional score s_Φ(x, t) = ∇_x log p_t(x), `[B, L, C]`. Use fp64 at small t."""
    t = _check(log_probs, codebook, x, t)
    return score_from_clean(clean_token_prediction(log_probs, codebook, x, t, chunk_positions=chunk_positions), x, t)


def mixture_log_density(log_probs: torch.Tensor, codebook: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """log p_t(x) = logsumexp_j( log p_j + log N(x; (1 − t)·c_j, t²·I) ), `[B, L]`, with log p normalised over V.
    The reference the score is checked against (autograd of this is ∇_x log p_t); builds `[B, L, V, C]`."""
    t = _check(log_probs, codebook, x, t)
    C = x.shape[-1]
    lp = torch.log_softmax(log_probs.to(x.dtype), dim=-1)
    diff = x[:, :, None, :] - (1 - t)[:, :, None, None] * codebook.to(x.dtype)
    sq = (diff * diff).sum(-1)  # [B, L, V]
    log_norm = -0.5 * sq / (t * t)[..., None] - C * torch.log(t)[..., None] - 0.5 * C * torch.log(torch.tensor(2 * torch.pi, dtype=x.dtype))
    return torch.logsumexp(lp + log_norm, dim=-1)
