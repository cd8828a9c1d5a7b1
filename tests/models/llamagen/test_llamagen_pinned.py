"""Outputs of the OFFICIAL LlamaGen code (gpt.py / generate.py / vq_model.py @ ce98ec4, fp32 CPU, torch 2.14),
computed once on the seed-built tiny weights of conftest.tiny_state_dicts() and pinned here: sampled tokens exactly,
logits and decoded pixels to 1e-5. The comparison script that produced them lives outside the repository."""

import torch

LABELS = [3, 7]
# generate(gpt, [3, 7], 16, cfg_scale=2.0, top_k=0, top_p=1.0, temperature=1.0) after torch.manual_seed(0)
TOKENS_CFG2_SEED0 = [[47, 42, 52, 52, 36, 59, 42, 46, 19, 3, 55, 58, 47, 19, 41, 27],
                     [10, 59, 56, 51, 52, 24, 17, 4, 29, 12, 45, 43, 1, 25, 7, 44]]
# generate(..., cfg_scale=4.0, cfg_interval=5, top_k=20, top_p=0.9, temperature=0.8) after torch.manual_seed(1)
TOKENS_CFG4_SEED1 = [[48, 35, 42, 41, 52, 48, 4, 59, 41, 12, 3, 27, 36, 14, 52, 33],
                     [2, 10, 10, 10, 10, 2, 45, 32, 50, 38, 27, 29, 18, 50, 7, 2]]
# gpt(idx=x[:, :-1], cond_idx=[3, 7], input_pos=arange(16)), x = arange(32).view(2, 16)·7 mod 64:
# logits[b, p, :6] for b in (0, 1), p in (0, 5, 15)
LOGITS = [[0.853897, -0.035428, 0.604374, 1.98339, -0.156677, 0.301737],
          [0.258045, 0.743212, -0.055034, 0.899851, -0.181846, -0.200875],
          [0.193491, -0.049161, -0.979492, 0.999488, -0.081335, -0.863415],
          [-0.974517, -0.146421, 1.925578, 2.115397, -0.490986, 0.955084],
          [0.105995, 0.177526, 0.2285, 0.979369, -0.158371, -1.236598],
          [0.163836, 1.930916, 0.811351, 0.452359, -1.027494, -0.374614]]
# vq.decode_code(TOKENS_CFG2_SEED0[:1], [1, 8, 4, 4])[0, :, 0, :4] (raw decoder output, ≈ [-1, 1])
PIXELS = [0.177088, 0.281886, 0.556003, 0.368875, -0.142355, -0.350458, -0.134969, -0.208057, -0.44643, -0.347331, -0.07439, 0.097358]


def test_official_tokens(tiny_teacher):
    labels = torch.tensor(LABELS)
    assert tiny_teacher.sample(labels, cfg=2.0, top_k=0, top_p=1.0, temperature=1.0, seed=0).tolist() == TOKENS_CFG2_SEED0
    got = tiny_teacher.sample(labels, cfg=4.0, top_k=20, top_p=0.9, temperature=0.8, seed=1, cfg_interval=5)
    assert got.tolist() == TOKENS_CFG4_SEED1


def test_official_logits_and_pixels(tiny_teacher):
    x = torch.arange(32).view(2, 16) * 7 % 64
    logits = tiny_teacher.logits(torch.tensor(LABELS), x)
    got = torch.stack([logits[b, p, :6] for b in range(2) for p in (0, 5, 15)])
    torch.testing.assert_close(got, torch.tensor(LOGITS), rtol=0, atol=1e-5)
    raw = tiny_teacher.vq.decode_indices(torch.tensor(TOKENS_CFG2_SEED0[:1]), (4, 4))
    torch.testing.assert_close(raw[0, :, 0, :4].flatten(), torch.tensor(PIXELS), rtol=0, atol=1e-5)
    torch.testing.assert_close(tiny_teacher.decode(torch.tensor(TOKENS_CFG2_SEED0[:1]))[0, :, 0, :4].flatten(),
                               ((torch.tensor(PIXELS) + 1) / 2).clamp(0, 1), rtol=0, atol=1e-5)
