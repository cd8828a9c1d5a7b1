"""The DD flow map transports N(0, I) onto the teacher's categorical distribution, deterministically."""

import math

import pytest
import torch

from ardistill.errors import BadArgumentError
from ardistill.methods.dd import FlowMapConfig, flow_map_tokens, time_grid


def chi_square_pvalue(counts: torch.Tensor, probs: torch.Tensor) -> float:
    """Pearson χ² goodness of fit, bins with expected count < 5 merged into one."""
    n = counts.sum().item()
    expected = probs.double() * n
    small = expected < 5
    obs = torch.cat([counts[~small].double(), counts[small].double().sum().view(1)])
    exp = torch.cat([expected[~small], expected[small].sum().view(1)])
    keep = exp > 0
    obs, exp = obs[keep], exp[keep]
    stat = ((obs - exp) ** 2 / exp).sum()
    dof = obs.numel() - 1
    return torch.special.gammaincc(torch.tensor(dof / 2, dtype=torch.float64), stat / 2).item()


def unit_codebook(v, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    c = torch.randn(v, d, generator=g, dtype=torch.float64)
    return c / c.norm(dim=-1, keepdim=True)


def dirichlet(v, alpha, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch._standard_gamma(torch.full((v,), alpha, dtype=torch.float64), generator=g)
    return x / x.sum()


@pytest.mark.parametrize("solver,steps", [("euler", 200), ("heun", 200), ("dpm2m", 40)])
def test_frequencies_match_p(solver, steps):
    v, d, n = 16, 8, 20_000
    codebook, p = unit_codebook(v, d), dirichlet(v, 0.5, seed=1)
    noise = torch.randn(n, d, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    tokens = flow_map_tokens(p.log().expand(n, v), noise, codebook, FlowMapConfig(steps=steps, solver=solver))
    counts = torch.bincount(tokens, minlength=v)
    assert chi_square_pvalue(counts, p) > 1e-3
    # The test can fail: the same counts are rejected against another distribution.
    assert chi_square_pvalue(counts, dirichlet(v, 0.5, seed=7)) < 1e-6


def test_too_few_steps_bias_the_frequencies():
    v, d, n = 16, 8, 20_000
    codebook, p = unit_codebook(v, d), dirichlet(v, 0.5, seed=1)
    noise = torch.randn(n, d, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    tokens = flow_map_tokens(p.log().expand(n, v), noise, codebook, FlowMapConfig(steps=3, grid="uniform", t_end=0.05))
    assert chi_square_pvalue(torch.bincount(tokens, minlength=v), p) < 1e-3


@pytest.mark.parametrize("solver", ["euler", "dpm2m"])
def test_one_hot_and_masked_tokens(solver):
    v, d = 32, 8
    codebook = unit_codebook(v, d)
    noise = torch.randn(500, d, generator=torch.Generator().manual_seed(0))
    one_hot = torch.full((500, v), -math.inf)
    one_hot[:, 5] = 0
    assert (flow_map_tokens(one_hot, noise, codebook, FlowMapConfig(steps=20, solver=solver)) == 5).all()
    # top-k style masking: only tokens with finite logits are ever produced
    logits = torch.randn(500, v, generator=torch.Generator().manual_seed(1))
    allowed = torch.zeros(v, dtype=torch.bool)
    allowed[[1, 4, 9, 30]] = True
    logits[:, ~allowed] = -math.inf
    tokens = flow_map_tokens(logits, noise, codebook, FlowMapConfig(steps=50, solver=solver))
    assert allowed[tokens].all()


def test_deterministic_and_batch_independent():
    v, d = 64, 32
    codebook = torch.randn(v, d, generator=torch.Generator().manual_seed(0))
    logits = torch.randn(200, v, generator=torch.Generator().manual_seed(1))
    noise = torch.randn(200, d, generator=torch.Generator().manual_seed(2))
    cfg = FlowMapConfig(steps=100)
    full = flow_map_tokens(logits, noise, codebook, cfg)
    assert torch.equal(full, flow_map_tokens(logits, noise, codebook, cfg))
    idx = torch.tensor([3, 150, 7])
    assert torch.equal(full[idx], flow_map_tokens(logits[idx], noise[idx], codebook, cfg))


def test_permuting_codes_permutes_tokens():
    v, d = 16, 8
    codebook = unit_codebook(v, d)
    logits = torch.randn(300, v, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    noise = torch.randn(300, d, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    perm = torch.randperm(v, generator=torch.Generator().manual_seed(3))
    cfg = FlowMapConfig(steps=100)
    a = flow_map_tokens(logits, noise, codebook, cfg)
    b = flow_map_tokens(logits[:, perm], noise, codebook[perm], cfg)
    assert torch.equal(perm[b], a)


def test_nearby_noise_maps_to_same_token_and_final_state_is_a_code():
    v, d = 16, 8
    codebook = unit_codebook(v, d)
    logits = torch.zeros(1000, v, dtype=torch.float64)
    noise = torch.randn(1000, d, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    cfg = FlowMapConfig(steps=200)
    a = flow_map_tokens(logits, noise, codebook, cfg)
    b = flow_map_tokens(logits, noise + 1e-3 * torch.randn_like(noise), codebook, cfg)
    assert (a == b).float().mean() > 0.99


def test_grid_and_bad_config():
    ts = time_grid(FlowMapConfig(steps=10, t_end=1e-3))
    assert ts[0] == 0 and abs(ts[-1] - (1 - 1e-3)) < 1e-12 and (ts.diff() > 0).all()
    assert ts.diff()[-1] < ts.diff()[0]  # denser near t = 1
    # dpm2m: t = 0, then points uniform in log-SNR from t_start to 1 − δ
    ts = time_grid(FlowMapConfig(steps=10, t_end=1e-3, solver="dpm2m", t_start=1e-2))
    lam = (ts[1:] / (1 - ts[1:])).log()
    assert len(ts) == 11 and ts[0] == 0 and abs(ts[1] - 1e-2) < 1e-12 and abs(ts[-1] - (1 - 1e-3)) < 1e-12
    assert torch.allclose(lam.diff(), lam.diff()[0].expand(9))
    with pytest.raises(BadArgumentError):
        flow_map_tokens(torch.zeros(2, 4), torch.zeros(2, 3), torch.zeros(4, 2))
    with pytest.raises(BadArgumentError):
        flow_map_tokens(torch.zeros(2, 4), torch.zeros(2, 3), torch.zeros(4, 3), FlowMapConfig(solver="rk9"))
