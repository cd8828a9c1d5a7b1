"""Numbers of the official FoundationVision/VAR code for a tiny seeded model, pinned so that a change breaking
exactness is caught without the official code (how they were produced: docs/exactness.md, "## VAR").

The tiny model is the official layout at a small size: `build_vae_var(patch_nums=(1, 2, 3, 4), V=64, Cvae=8, ch=32,
num_classes=10, depth=2)` (width 128, 2 heads; VQVAE ch_mult (1, 1, 2, 2, 4), 64×64 images). Its weights are a pure
function of a seed, `fill_official_layout_(state_dict, seed)`: walking the state-dict keys in sorted order, one
`torch.randn` per floating tensor from a CPU generator seeded with `seed`, scaled by a rule on the key name. The
structural buffers (`lvl_1L`, `attn_bias_for_masking`, `*.zero_k_bias`, `quantize.ema_vocab_hit_SV`) keep their
constructed values. The official script applied this very function to the official modules' state dicts.
"""

from __future__ import annotations


import pytest
import torch

from ardistill.models.var.config import VARConfig, VQVAEConfig
from ardistill.models.var.transformer import VARTransformer
from ardistill.models.var.vqvae import VQVAE
from ardistill.sampling.var import sample_var
from ardistill.teachers.var import VARTeacher
from official_layout import fill_official_layout_  # noqa: E402  (tests/ is on sys.path)

PIN_PATCH_NUMS = (1, 2, 3, 4)
PIN_VAR_SEED, PIN_VAE_SEED = 1234, 2234  # transformer, tokenizer
# name → (labels, official autoregressive_infer_cfg settings; more_smooth=False)
SAMPLING_CASES = {
    "guided_topk_topp": ([1, 9], dict(cfg=3.0, top_k=20, top_p=0.9, seed=42)),
    "plain": ([7], dict(cfg=1.5, top_k=0, top_p=0.0, seed=1)),
}


def pin_config() -> VARConfig:
    """The tiny official-layout config (build_vae_var(..., V=64, Cvae=8, ch=32, num_classes=10, depth=2))."""
    vae = VQVAEConfig(vocab_size=64, z_channels=8, ch=32, patch_nums=PIN_PATCH_NUMS)
    return VARConfig(depth=2, num_classes=10, patch_nums=PIN_PATCH_NUMS, vocab_size=64, z_channels=8, vae=vae)


def teacher_forcing_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    """labels [2], tokens [2, 30] from a formula (no random stream involved)."""
    i = torch.arange(30)
    tokens = torch.stack([(37 * i + 11 * b + 5) % 64 for b in range(2)])
    return torch.tensor([3, 8]), tokens


def encode_input() -> torch.Tensor:
    """A smooth [1, 3, 64, 64] image in [0, 1] from a formula."""
    y, x = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    return torch.stack([0.5 + 0.4 * torch.sin(0.21 * x + c) * torch.cos(0.13 * y + 0.5 * c) for c in range(3)]).unsqueeze(0)


def pixel_probe(images: torch.Tensor) -> torch.Tensor:
    """[B, 3, 64, 64] → [B, 3, 2, 2]: a few pixels spread over the image."""
    return images[:, :, 10::27, 20::27]


def logits_probe(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """[B, L, V] → [B, 5]: the logit of the target token at one position of every scale and the last position."""
    pos = torch.tensor([0, 2, 7, 20, 29])
    return logits[:, pos].gather(-1, tokens[:, pos, None])[..., 0]


# Produced by the official code (FoundationVision/VAR @ HEAD of 2026-11-25, torch 2.14.1, CPU, fp32) on the model above.
OFFICIAL = {
    "guided_topk_topp": {
        "tokens": [[42, 12, 35, 54, 11, 10, 27, 26, 27, 26, 12, 12, 27, 12, 31, 31, 19, 39, 31, 21, 27, 19, 31, 55, 12, 19, 12, 31, 40, 5],
                   [11, 12, 32, 40, 40, 14, 54, 22, 14, 55, 22, 21, 40, 54, 31, 31, 54, 40, 35, 21, 40, 40, 40, 35, 40, 40, 55, 35, 21, 54]],
        "pixels": [0.4670545, 0.4960621, 0.6733624, 0.4327431, 0.5628988, 0.3366488, 0.7366405, 0.7668619, 0.545496, 0.3980023, 0.0,
                   0.5201445, 0.5890849, 0.554182, 0.3594397, 0.3919117, 0.442759, 0.7241664, 0.7458864, 0.518337, 0.1597643, 0.6805451,
                   0.4774739, 0.2369214],
        "mean": [0.4851639, 0.48078],
    },
    "plain": {
        "tokens": [[59, 16, 41, 32, 15, 62, 48, 62, 43, 9, 48, 63, 44, 45, 40, 30, 41, 62, 12, 24, 0, 6, 62, 49, 32, 48, 62, 6, 23, 12]],
        "pixels": [0.0, 0.5812904, 0.3931135, 0.4808685, 0.2730365, 0.6827701, 0.754451, 0.5635935, 0.6283224, 0.0, 0.5792043, 0.3160014],
        "mean": [0.4775383],
    },
    "logits": {
        "probe": [0.7496353, 0.89766, -1.5692378, 1.1920214, -0.6810508, 0.2239325, 0.8961213, -0.2404212, -1.1476159, -0.7507565],
        "mean": [-0.0390469, -0.1586296],
    },
    "decode": {
        "pixels": [0.6996685, 0.2363139, 0.2610512, 0.4609741, 0.3644217, 0.4039503, 1.0, 0.6553074, 0.2678754, 0.5017908, 0.4867105,
                   0.3019548, 0.2417527, 0.3281703, 0.8076127, 1.0, 0.7143772, 0.5620563, 0.3974306, 0.0237742, 0.525508, 0.0, 1.0, 0.179746],
        "mean": [0.4801845, 0.4796625],
    },
    # autoregressive_infer_cfg(B=1, label_B=None, g_seed=5, cfg=2.0, top_k=10, top_p=0.9): the class is drawn first
    "random_label": [[12, 1, 1, 35, 9, 24, 56, 54, 35, 35, 43, 10, 5, 18, 60, 18, 35, 31, 35, 35, 31, 5, 60, 35, 54, 35, 35, 35, 55, 5]],
    "encode": [[19, 58, 6, 58, 6, 33, 25, 5, 33, 33, 58, 33, 33, 5, 59, 55, 21, 6, 42, 0, 49, 16, 25, 31, 32, 16, 22, 5, 31, 36]],
}
FLOAT_TOL = 1e-5


@pytest.fixture(scope="module")
def pinned_teacher() -> VARTeacher:
    cfg = pin_config()
    transformer, vae = VARTransformer(cfg), VQVAE(cfg.vae)
    fill_official_layout_(transformer.state_dict(), PIN_VAR_SEED)
    fill_official_layout_(vae.state_dict(), PIN_VAE_SEED)
    return VARTeacher("var-pinned", transformer, vae)


def _assert_floats(actual: torch.Tensor, expected: list[float]) -> None:
    expected_t = torch.tensor(expected, dtype=torch.float64)
    err = (actual.double().reshape(-1) - expected_t).abs().max().item()
    assert err <= FLOAT_TOL, f"max abs error {err:.2e} vs the official code"


def test_pinned_weights_are_a_pure_function_of_the_seed(pinned_teacher):
    other = VARTransformer(pin_config())
    fill_official_layout_(other.state_dict(), PIN_VAR_SEED)
    assert all(torch.equal(a, b) for a, b in zip(other.state_dict().values(), pinned_teacher.transformer.state_dict().values()))
    assert pinned_teacher.vae.quantize.phi_table == (0, 1, 2, 3)


@pytest.mark.parametrize("case", sorted(SAMPLING_CASES))
def test_sampling_matches_official_autoregressive_infer_cfg(pinned_teacher, case):
    labels, s = SAMPLING_CASES[case]
    tokens = pinned_teacher.sample(torch.tensor(labels), cfg=s["cfg"], top_k=s["top_k"], top_p=s["top_p"], temperature=1.0, seed=s["seed"])
    assert tokens.tolist() == OFFICIAL[case]["tokens"]
    images = pinned_teacher.decode(tokens)
    _assert_floats(pixel_probe(images), OFFICIAL[case]["pixels"])
    _assert_floats(images.mean(dim=(1, 2, 3)), OFFICIAL[case]["mean"])


def test_teacher_forced_logits_match_official_forward(pinned_teacher):
    labels, tokens = teacher_forcing_inputs()
    logits = pinned_teacher.logits(labels, tokens)
    _assert_floats(logits_probe(logits, tokens), OFFICIAL["logits"]["probe"])
    _assert_floats(logits.mean(dim=(1, 2)), OFFICIAL["logits"]["mean"])


def test_decode_and_encode_match_official_vqvae(pinned_teacher):
    _, tokens = teacher_forcing_inputs()
    images = pinned_teacher.decode(tokens)
    _assert_floats(pixel_probe(images), OFFICIAL["decode"]["pixels"])
    _assert_floats(images.mean(dim=(1, 2, 3)), OFFICIAL["decode"]["mean"])
    assert pinned_teacher.encode(encode_input()).tolist() == OFFICIAL["encode"]


def test_random_labels_use_the_official_generator_stream(pinned_teacher):
    t = pinned_teacher
    tokens = sample_var(t.transformer, t.vae, None, batch_size=1, cfg=2.0, top_k=10, top_p=0.9, seed=5)
    assert tokens.tolist() == OFFICIAL["random_label"]
