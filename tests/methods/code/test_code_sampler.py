"""CoDe sampling: the N = K and N = 0 identities token for token, the hand-over semantics, argument errors."""

import pytest
import torch

from ardistill import CoDe
from ardistill.errors import ArdistillError
from ardistill.models.var.vqvae import VQVAE
from ardistill.sampling.var import apply_cfg, guidance_at_scale, sample_from_logits

from tiny_code_pair import make_teacher, randomize_, tiny_vae_config

SETTINGS = dict(cfg=2.5, top_k=[0, 30, 25, 20, 15], top_p=0.9, temperature=[1.2, 1.1, 1.0, 0.9, 1.0])
LABELS = [1, 4, 9]


def test_draft_steps_k_is_the_drafter_alone(tiny_pair):
    drafter, refiner = tiny_pair
    code = CoDe(drafter, refiner)
    for seed in (0, 5):
        assert torch.equal(code.sample(LABELS, draft_steps=5, seed=seed, **SETTINGS), drafter.sample(LABELS, seed=seed, **SETTINGS))


def test_draft_steps_0_is_the_refiner_alone(tiny_pair):
    drafter, refiner = tiny_pair
    code = CoDe(drafter, refiner)
    for seed in (0, 5):
        assert torch.equal(code.sample(LABELS, draft_steps=0, seed=seed, **SETTINGS), refiner.sample(LABELS, seed=seed, **SETTINGS))


def test_drafted_prefix_is_the_drafters_and_the_rest_differs(tiny_pair):
    drafter, refiner = tiny_pair
    code = CoDe(drafter, refiner)
    alone = drafter.sample(LABELS, seed=3, **SETTINGS)
    for N in (1, 2, 3, 4):
        tokens = code.sample(LABELS, draft_steps=N, seed=3, **SETTINGS)
        P = drafter.transformer.scale_slices[N - 1][1]
        assert tokens.shape == alone.shape
        assert torch.equal(tokens[:, :P], alone[:, :P])  # the drafter's stream up to its exit
        assert not torch.equal(tokens[:, P:], alone[:, P:])  # the refiner made the rest


def reference_refine(refiner, vae, drafted_tokens, labels, N, seed, top_k, top_p, temperature, cfg):
    """The CoDe refiner written the slow way: a full (uncached) teacher-forced forward over scales 0..N for the
    entry scale, N discarded draws, then the refiner's own cached steps rebuilt from scratch by prefix replay."""
    t = refiner.transformer
    B = labels.shape[0]
    g = torch.Generator().manual_seed(seed)
    pieces = list(torch.split(drafted_tokens, [pn * pn for pn in t.patch_nums[:N]], dim=1))
    dummy = [torch.zeros(B, pn * pn, dtype=torch.long) for pn in t.patch_nums[N:]]
    x = vae.quantize.idx_to_var_input(pieces + dummy)  # [B, L − 1, Cvae]; only scales ≤ N matter below
    both = t(torch.cat((labels, torch.full_like(labels, t.num_classes))), x.repeat(2, 1, 1))  # [2B, L, V] block-causal
    for a in range(N):
        b0, b1 = t.scale_slices[a]
        sample_from_logits(both[:B, b0:b1].clone(), top_k=top_k[a], top_p=top_p, temperature=temperature[a], generator=g)
    b0, b1 = t.scale_slices[N]
    guided = apply_cfg(both[:, b0:b1], guidance_at_scale(cfg, N, len(t.patch_nums)))
    return sample_from_logits(guided, top_k=top_k[N], top_p=top_p, temperature=temperature[N], generator=g)


@pytest.mark.parametrize("N", [1, 3])
def test_entry_scale_matches_an_uncached_reference(tiny_pair, N):
    """The prefill + discarded draws equal a full block-causal forward and the same draws (float tolerance aside,
    the sampled tokens agree)."""
    drafter, refiner = tiny_pair
    code = CoDe(drafter, refiner)
    labels = torch.tensor(LABELS)
    tokens = code.sample(labels, draft_steps=N, seed=8, **SETTINGS)
    P = drafter.transformer.scale_slices[N - 1][1]
    b0, b1 = refiner.transformer.scale_slices[N]
    expected = reference_refine(refiner, refiner.vae, tokens[:, :P], labels, N, 8, SETTINGS["top_k"], SETTINGS["top_p"],
                                SETTINGS["temperature"], SETTINGS["cfg"])
    assert torch.equal(tokens[:, b0:b1], expected)


def test_discarded_draws_matter(tiny_pair):
    """Without the N discarded draws the entry scale would come out differently (the quirk is reproduced)."""
    drafter, refiner = tiny_pair
    code = CoDe(drafter, refiner)
    labels = torch.tensor(LABELS)
    N = 3
    tokens = code.sample(labels, draft_steps=N, seed=8, **SETTINGS)
    b0, b1 = refiner.transformer.scale_slices[N]
    g = torch.Generator().manual_seed(8)
    t = refiner.transformer
    x = refiner.vae.quantize.idx_to_var_input(list(torch.split(tokens, [pn * pn for pn in t.patch_nums], dim=1)))
    both = t(torch.cat((labels, torch.full_like(labels, t.num_classes))), x.repeat(2, 1, 1))
    guided = apply_cfg(both[:, b0:b1], guidance_at_scale(SETTINGS["cfg"], N, 5))
    first_draw = sample_from_logits(guided, top_k=SETTINGS["top_k"][N], top_p=0.9, temperature=SETTINGS["temperature"][N], generator=g)
    assert not torch.equal(first_draw, tokens[:, b0:b1])


def test_decode_and_shapes(tiny_pair):
    code = CoDe(*tiny_pair)
    tokens = code.sample([2, 3], draft_steps=2, seed=0)
    assert tokens.shape == (2, code.tokens_per_image) and tokens.dtype == torch.long
    images = code.decode(tokens)
    assert images.shape[:2] == (2, 3) and float(images.min()) >= 0 and float(images.max()) <= 1


def test_errors(tiny_pair):
    drafter, refiner = tiny_pair
    code = CoDe(drafter, refiner)
    for bad in (-1, 6, 2.5):
        with pytest.raises(ArdistillError, match="draft_steps"):
            code.sample(LABELS, draft_steps=bad, seed=0)
    with pytest.raises(ArdistillError, match="top_k"):
        code.sample(LABELS, draft_steps=2, top_k=[5, 5], seed=0)
    other_vae = randomize_(VQVAE(tiny_vae_config()), seed=99)
    stranger = make_teacher("stranger", 1, 64, 12, other_vae)
    with pytest.raises(ArdistillError, match="do not share the tokenizer"):
        CoDe(drafter, stranger)
