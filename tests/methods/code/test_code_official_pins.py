"""Tokens of the official czg1225/CoDe code (draft + refine, CPU fp32) for a tiny seeded official-layout pair, pinned
so that a change breaking exactness is caught without the official code. How they were produced: docs/code.md
("Side by side with the official code"). The weights are a pure function of seeds (`fill_official_layout_`)."""

import pytest
import torch

from ardistill import CoDe
from tiny_code_pair import official_pair

# name → (official sampler arguments, tokens of the entry scale N (first 12), last 16 tokens, Σ tokens, Σ i·token_i)
PINS = {
    "n8_paper_like": (
        dict(N=8, labels=[1, 9], seed=42, cfg=4.0, top_k=[20] * 10, top_p=0.95, temp=[1.1] * 7 + [1.0] * 3),
        [[44, 42, 61, 44, 44, 36, 61, 23, 62, 41, 40, 23], [46, 10, 10, 53, 19, 21, 23, 23, 7, 51, 23, 63]],
        [[36, 36, 36, 61, 61, 61, 10, 30, 61, 61, 61, 61, 61, 62, 36, 32], [63, 2, 42, 42, 63, 36, 19, 19, 23, 2, 0, 23, 36, 36, 36, 36]],
        [25462, 22475], [9208564, 7176914],
    ),
    "n1": (
        dict(N=1, labels=[3], seed=7, cfg=1.5, top_k=[0, 5, 10, 15, 20, 25, 30, 35, 40, 45], top_p=0.0, temp=[1.0] * 10),
        [[20, 35, 31, 35]], [[57, 10, 56, 13, 25, 57, 38, 43, 23, 2, 20, 62, 7, 34, 62, 62]], [27102], [9562307],
    ),
}
OFFICIAL_PIXEL_SUM = {"n8_paper_like": 168148.1029098034, "n1": 83436.12423995137}  # Σ of the refiner's [0,1] images


@pytest.fixture(scope="module")
def code():
    return CoDe(*official_pair())


@pytest.mark.parametrize("name", sorted(PINS))
def test_official_code_tokens(code, name):
    args, entry, last16, total, weighted = PINS[name]
    N = args["N"]
    tokens = code.sample(args["labels"], draft_steps=N, seed=args["seed"], cfg=args["cfg"], top_k=args["top_k"],
                         top_p=args["top_p"], temperature=args["temp"])
    b0, b1 = code.refiner.transformer.scale_slices[N]
    assert tokens[:, b0:b1][:, :12].tolist() == entry
    assert tokens[:, -16:].tolist() == last16
    assert tokens.sum(1).tolist() == total
    assert (tokens * torch.arange(tokens.shape[1])).sum(1).tolist() == weighted
    pixels = float(code.decode(tokens).double().sum())
    assert pixels == pytest.approx(OFFICIAL_PIXEL_SUM[name], rel=1e-6)  # float sums differ in the last bits with the thread count
