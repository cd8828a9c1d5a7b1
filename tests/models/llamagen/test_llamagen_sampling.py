"""The reference sampler: filtering and CFG on hand-checked numbers, the official step/RNG semantics re-derived from
full (uncached) forwards, seeds."""

import math

import pytest
import torch

from ardistill.sampling.llamagen import apply_cfg, filter_top_k_top_p_, sample_llamagen, sample_next_token


def test_top_k_keeps_ties_and_top_p_keeps_the_crossing_token():
    x = torch.tensor([[1.0, 3.0, 3.0, 2.0, 0.0]])
    assert torch.isinf(filter_top_k_top_p_(x.clone(), top_k=2)).tolist() == [[True, False, False, True, True]]
    assert torch.isinf(filter_top_k_top_p_(x.clone(), top_k=3)).tolist() == [[True, False, False, False, True]]
    p = torch.tensor([[0.15, 0.5, 0.05, 0.3]]).log()
    kept = lambda top_p: (~torch.isinf(filter_top_k_top_p_(p.clone(), top_p=top_p))).tolist()[0]  # noqa: E731
    assert kept(0.7) == [False, True, False, True]  # cum 0.5, 0.8 (crosses: kept), 0.95, 1.0
    assert kept(0.5) == [False, True, False, True]  # 0.5 is not > 0.5, so the next one is the crossing token
    assert kept(0.4) == [False, True, False, False]  # the most likely token always survives
    assert kept(1.0) == [True] * 4
    both = filter_top_k_top_p_(p.clone(), top_k=3, top_p=0.6)  # top-k first, then top-p on the renormalised rest
    assert (~torch.isinf(both)).tolist()[0] == [False, True, False, True]


def test_cfg_formula_and_batch_order():
    logits = torch.tensor([[[2.0, 0.0]], [[1.0, 1.0]]])  # [cond; uncond]
    assert apply_cfg(logits, 3.0).tolist() == [[[4.0, -2.0]]]  # uncond + (cond − uncond)·3


def test_one_multinomial_per_row_with_temperature():
    logits = torch.tensor([[[0.0, 1.0, 2.0]], [[2.0, 1.0, 0.0]]])
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    got = sample_next_token(logits, temperature=0.5, generator=g1)
    want = torch.multinomial(torch.softmax(logits[:, -1] / 0.5, dim=-1), 1, generator=g2)
    assert got.shape == (2, 1) and torch.equal(got, want)
    assert torch.equal(g1.get_state(), g2.get_state())  # exactly the same random numbers consumed
    greedy = sample_next_token(logits, temperature=0.0, generator=g1)  # max(temperature, 1e-5)
    assert greedy.flatten().tolist() == [2, 0]


def _reference_stream(gpt, labels, *, cfg, cfg_interval, temperature, top_k, top_p, seed, prefix=None):
    """The official generate() loop written with full causal forwards (no KV cache)."""
    g = torch.Generator().manual_seed(seed)
    guided = cfg > 1.0
    null = torch.full_like(labels, gpt.num_classes)
    tokens = torch.zeros(labels.shape[0], 0, dtype=torch.long) if prefix is None else prefix
    for i in range(tokens.shape[1], gpt.config.block_size):
        cond = gpt(labels, tokens)[:, -1:]
        if guided and (i == 0 or cfg_interval == -1 or i - 1 <= cfg_interval):
            logits = apply_cfg(torch.cat([cond, gpt(null, tokens)[:, -1:]]), cfg)
        else:
            logits = cond
        tokens = torch.cat([tokens, sample_next_token(logits, temperature=temperature, top_k=top_k, top_p=top_p, generator=g)], dim=1)
    return tokens


@pytest.mark.parametrize("settings", [
    dict(cfg=3.0, cfg_interval=-1, temperature=1.0, top_k=0, top_p=1.0),
    dict(cfg=3.0, cfg_interval=4, temperature=0.9, top_k=20, top_p=1.0),
    dict(cfg=1.0, cfg_interval=-1, temperature=1.2, top_k=0, top_p=0.9),
])
def test_sampler_matches_the_official_loop(settings, tiny_teacher):
    gpt = tiny_teacher.gpt
    labels = torch.tensor([2, 5, 9])
    with torch.no_grad():
        want = _reference_stream(gpt, labels, seed=11, **settings)
    got = sample_llamagen(gpt, labels, seed=11, **settings)
    assert got.shape == (3, 16) and torch.equal(got, want)
    assert gpt.causal_mask is None and gpt.layers[0].attention.kv_cache is None  # caches released


def test_cfg_interval_and_no_guidance_below_one(tiny_teacher):
    labels = torch.tensor([2, 5])
    s = lambda **kw: tiny_teacher.sample(labels, seed=3, top_k=0, top_p=1.0, temperature=1.0, **kw)  # noqa: E731
    assert torch.equal(s(cfg=0.5), s(cfg=1.0))  # cfg ≤ 1: the unguided batch, as the official generate
    full, stopped = s(cfg=4.0), s(cfg=4.0, cfg_interval=3)
    assert torch.equal(full[:, :5], stopped[:, :5])  # guidance for the prefill and decode steps 0..3
    assert not torch.equal(full, stopped)


def test_seeds(tiny_teacher):
    labels = torch.tensor([1, 1, 8])
    a = tiny_teacher.sample(labels, seed=0)
    assert torch.equal(a, tiny_teacher.sample(labels, seed=0)) and not torch.equal(a, tiny_teacher.sample(labels, seed=1))
    torch.manual_seed(0)  # seed=None draws from torch's global generator: the official torch.manual_seed stream
    assert torch.equal(tiny_teacher.sample(labels), a)
    assert a.dtype == torch.long and int(a.min()) >= 0 and int(a.max()) < 64


def test_sampled_distribution_follows_guided_probabilities(tiny_teacher):
    """Token 0 of 4000 images: the empirical frequencies match softmax(guided logits / T) (chi-square)."""
    gpt = tiny_teacher.gpt
    labels = torch.full((4000,), 6)
    gpt.setup_caches(2, gpt.max_positions)
    with torch.no_grad():
        logits = apply_cfg(gpt.forward_cached(torch.arange(1), labels=torch.tensor([6, 10])), 2.0)
    gpt.clear_caches()
    probs = torch.softmax(logits[0, -1] / 0.8, dim=-1).double()
    from ardistill.sampling.llamagen import LlamaGenStepRun

    with LlamaGenStepRun(gpt, labels, cfg=2.0, temperature=0.8, seed=5) as run:
        first = run.advance()[:, 0]
    counts = torch.bincount(first, minlength=64).double()
    expected = probs * labels.numel()
    keep = expected > 5
    chi2 = (((counts - expected) ** 2) / expected)[keep].sum().item()
    dof = int(keep.sum()) - 1
    assert chi2 < dof + 5 * math.sqrt(2 * dof)


def test_prefix_is_fed_in_the_prefill_and_continued(tiny_teacher):
    from ardistill.sampling.llamagen import LlamaGenStepRun

    gpt = tiny_teacher.gpt
    labels = torch.tensor([2, 5])
    prefix = torch.tensor([[1, 2, 3, 4, 5], [9, 8, 7, 6, 5]])
    kw = dict(temperature=1.0, top_k=0, top_p=1.0)
    with LlamaGenStepRun(gpt, labels, cfg=2.5, seed=4, prefix=prefix, **kw) as run:
        assert run.step == 5
        got = run.run()
    with torch.no_grad():
        want = _reference_stream(gpt, labels, cfg=2.5, cfg_interval=-1, seed=4, prefix=prefix, **kw)
    assert got.shape == (2, 16) and torch.equal(got[:, :5], prefix) and torch.equal(got, want)


def test_stop_early_then_continue_is_one_stream(tiny_teacher):
    from ardistill.sampling.llamagen import LlamaGenStepRun

    gpt = tiny_teacher.gpt
    labels = torch.tensor([2, 5])
    with LlamaGenStepRun(gpt, labels, cfg=2.0, seed=9) as run:
        run.run(stop=7)
        assert run.step == 7 and run.tokens().shape == (2, 7)
        tokens = run.run()
    assert torch.equal(tokens, sample_llamagen(gpt, labels, cfg=2.0, seed=9))
