"""The closed-form teacher score equals autograd of the Gaussian-mixture log-density, and DD1's flow velocity."""

import pytest
import torch

from ardistill.errors import BadArgumentError
from ardistill.methods.dd.flow import _denoise
from ardistill.methods.dd2 import (
    clean_token_prediction,
    conditional_score,
    log_probs_from_probs,
    mixture_log_density,
    posterior_weights,
    score_from_clean,
    velocity_from_clean,
)


def problem(B=3, L=4, V=12, C=8, dtype=torch.float64, seed=0, zero_frac=0.4):
    g = torch.Generator().manual_seed(seed)
    codebook = torch.randn(V, C, generator=g, dtype=torch.float64)
    probs = torch.rand(B, L, V, generator=g, dtype=torch.float64)
    probs = probs * (torch.rand(B, L, V, generator=g, dtype=torch.float64) > zero_frac)
    probs[..., 0] += 0.05  # every position keeps at least one code
    probs = probs / probs.sum(-1, keepdim=True)
    clean = codebook[torch.multinomial(probs.view(-1, V), 1, generator=g).view(B, L)]
    return g, codebook.to(dtype), probs.to(dtype), clean.to(dtype)


def noisy(g, clean, t):
    eps = torch.randn(clean.shape, generator=g, dtype=torch.float64).to(clean.dtype)
    return (1 - t)[..., None] * clean + t[..., None] * eps


def autograd_score(probs, codebook, x, t):
    x = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(mixture_log_density(log_probs_from_probs(probs), codebook, x, t).sum(), x)
    return grad


@pytest.mark.parametrize("t_value", [0.02, 0.5, 0.98])
def test_score_matches_autograd_fp64(t_value):
    g, codebook, probs, clean = problem()
    t = torch.full(clean.shape[:2], t_value, dtype=torch.float64)
    x = noisy(g, clean, t)
    closed = conditional_score(log_probs_from_probs(probs), codebook, x, t)
    ref = autograd_score(probs, codebook, x, t)
    assert torch.isfinite(closed).all()
    assert (closed - ref).abs().max() <= 1e-9 * ref.abs().max().clamp_min(1.0)


@pytest.mark.parametrize("t_value", [0.02, 0.98])
def test_fp32_clean_prediction_is_accurate_and_score_error_is_bounded(t_value):
    g, codebook, probs, clean = problem()
    t64 = torch.full(clean.shape[:2], t_value, dtype=torch.float64)
    x64 = noisy(g, clean, t64)
    x0_64 = clean_token_prediction(log_probs_from_probs(probs), codebook, x64, t64)
    x32, t32, cb32 = x64.float(), t64.float(), codebook.float()
    x0_32 = clean_token_prediction(log_probs_from_probs(probs.float()), cb32, x32, t32)
    assert x0_32.dtype == torch.float32
    assert (x0_32.double() - x0_64).abs().max() < 1e-4 * codebook.abs().max()
    # The score formed in fp32 carries the 1/t² amplification of the fp32 rounding; it stays within 1e-3 relative.
    s32 = score_from_clean(x0_32, x32, t32).double()
    ref = autograd_score(probs, codebook, x64, t64)
    assert ((s32 - ref).abs().max() / ref.abs().max()) < 1e-3


def test_zero_probabilities_get_zero_weight_and_finite_gradients():
    g, codebook, probs, clean = problem(zero_frac=0.6)
    assert (probs == 0).any()
    t = torch.full(clean.shape[:2], 0.3, dtype=torch.float64)
    x = noisy(g, clean, t)
    w = posterior_weights(log_probs_from_probs(probs), codebook, x, t)
    assert (w[probs == 0] == 0).all()
    assert torch.allclose(w.sum(-1), torch.ones_like(w[..., 0]))
    p = probs.clone().requires_grad_(True)
    xg = x.clone().requires_grad_(True)
    cb = codebook.clone().requires_grad_(True)
    clean_token_prediction(log_probs_from_probs(p), cb, xg, t).square().sum().backward()
    for grad in (p.grad, xg.grad, cb.grad):
        assert torch.isfinite(grad).all()
    assert (p.grad[probs == 0] == 0).all()


def test_teacher_logits_with_minus_inf_work_as_they_are():
    g, codebook, probs, clean = problem()
    logits = log_probs_from_probs(probs) + 3.7  # any normalisation
    t = torch.rand(clean.shape[0], 1, generator=g, dtype=torch.float64) * 0.9 + 0.05  # [B, 1] broadcast over L
    x = noisy(g, clean, t.expand(clean.shape[:2]))
    a = clean_token_prediction(logits, codebook, x, t)
    b = clean_token_prediction(log_probs_from_probs(probs), codebook, x, t.expand(clean.shape[:2]))
    assert torch.allclose(a, b, atol=1e-12)


def test_chunking_over_positions_changes_nothing():
    g, codebook, probs, clean = problem(B=5, L=7)
    t = torch.rand(clean.shape[:2], generator=g, dtype=torch.float64) * 0.96 + 0.02
    x = noisy(g, clean, t)
    lp = log_probs_from_probs(probs)
    a, b = clean_token_prediction(lp, codebook, x, t, chunk_positions=3), clean_token_prediction(lp, codebook, x, t)
    assert torch.allclose(a, b, rtol=0, atol=1e-13)


def test_large_codebook_runs_in_chunks():
    """V = 16384, C = 8: 4096 positions are done in 4 chunks of 1024 rows of [1024, 16384] logits."""
    g = torch.Generator().manual_seed(0)
    V, C, B, L = 16384, 8, 4, 1024
    codebook = torch.randn(V, C, generator=g)
    logits = torch.randn(B, L, V, generator=g)
    logits[..., 900:] = float("-inf")  # top-k 900
    x = torch.randn(B, L, C, generator=g)
    t = torch.full((B, L), 0.5)
    x0 = clean_token_prediction(logits, codebook, x, t)
    assert x0.shape == (B, L, C) and torch.isfinite(x0).all()
    ref = clean_token_prediction(logits[:1, :8].double(), codebook.double(), x[:1, :8].double(), t[:1, :8].double())
    assert torch.allclose(x0[:1, :8].double(), ref, atol=1e-5)


def test_velocity_is_dd1_flow_velocity_in_mirrored_time():
    """DD1 (flow.py) runs s = 1 − t with x_s = s·x_1 + (1 − s)·ε: its denoiser D(x, s) is our x̂0(x, 1 − s) and its
    velocity (D − x)/(1 − s) is −(x − x̂0)/t."""
    g, codebook, probs, clean = problem(B=2, L=3)
    lp = log_probs_from_probs(probs)
    for t_value in (0.02, 0.3, 0.98):
        t = torch.full(clean.shape[:2], t_value, dtype=torch.float64)
        x = noisy(g, clean, t)
        x0 = clean_token_prediction(lp, codebook, x, t)
        s = 1 - t_value
        d = _denoise(x.view(-1, x.shape[-1]), s, torch.log_softmax(lp.view(-1, lp.shape[-1]), -1), codebook, (codebook**2).sum(-1))
        assert torch.allclose(d.view_as(x0), x0, atol=1e-10)
        dd1_velocity = (d - x.view(-1, x.shape[-1])) / (1 - s)
        assert torch.allclose(-dd1_velocity.view_as(x0), velocity_from_clean(x0, x, t), atol=1e-8)


def test_bad_shapes_and_empty_support_are_one_line_errors():
    g, codebook, probs, clean = problem()
    t = torch.full(clean.shape[:2], 0.5, dtype=torch.float64)
    with pytest.raises(BadArgumentError):
        clean_token_prediction(log_probs_from_probs(probs), codebook[:-1], clean, t)
    with pytest.raises(BadArgumentError):
        clean_token_prediction(log_probs_from_probs(probs), codebook, clean, t[:, :2])
    empty = probs.clone()
    empty[0, 0] = 0
    with pytest.raises(BadArgumentError):
        clean_token_prediction(log_probs_from_probs(empty), codebook, clean, t)
