"""The GPT and the VQ tokenizer on tiny configs: 2-D RoPE properties, KV-cached decode == full causal forward (also
with GQA), label handling, and VQ encode / decode shapes and semantics."""

from dataclasses import replace

import torch

from ardistill.models.llamagen.gpt import LlamaGenGPT, apply_rope, find_multiple, rope_2d_table
from ardistill.models.llamagen.vq import VQModel

from conftest import seeded_state_dict, gpt_shapes


def test_rope_table_layout():
    table = rope_2d_table(grid_size=4, head_dim=16, base=10000.0, cls_token_num=1)
    assert table.shape == (17, 8, 2) and table.dtype == torch.float32
    assert torch.equal(table[0], torch.zeros(8, 2))  # the class row zeroes the class token's q and k
    freqs = 1.0 / (10000.0 ** (torch.arange(0, 8, 2).float() / 8))  # hd/4 = 4 frequencies, exponent over hd/2
    k = 1 + 2 * 4 + 3  # image token at row 2, column 3
    torch.testing.assert_close(table[k, :4, 0], torch.cos(2 * freqs), rtol=0, atol=1e-7)  # first half: the row
    torch.testing.assert_close(table[k, 4:, 1], torch.sin(3 * freqs), rtol=0, atol=1e-7)  # second half: the column
    assert rope_2d_table(24, 100).shape == (577, 50, 2)  # GPT-3B at 384 px: head dim 100


def test_rope_rotates_interleaved_pairs_and_is_relative():
    g = torch.Generator().manual_seed(0)
    table = rope_2d_table(4, 16)
    q, k = torch.randn(1, 1, 1, 16, generator=g), torch.randn(1, 1, 1, 16, generator=g)
    zero = apply_rope(q, table[:1])
    assert torch.equal(zero, torch.zeros_like(q))
    rq = apply_rope(q, table[6:7])
    assert torch.allclose(rq.norm(), q.norm(), atol=1e-5)  # a rotation
    c, s = table[6, 0]
    torch.testing.assert_close(rq[..., :2].flatten(), torch.stack([q[..., 0] * c - q[..., 1] * s, q[..., 1] * c + q[..., 0] * s]).flatten())

    def score(pq: int, pk: int) -> float:  # q at grid position pq, k at pk (token index + 1 for the class row)
        return (apply_rope(q, table[pq + 1 : pq + 2]) * apply_rope(k, table[pk + 1 : pk + 2])).sum().item()

    # same 2-D offset (+1 row, +1 column) at two places in the grid → same attention logit
    assert abs(score(5, 0) - score(15, 10)) < 1e-5
    assert abs(score(5, 0) - score(6, 0)) > 1e-3


def _tiny_model(tiny_cfg, **changes) -> LlamaGenGPT:
    cfg = replace(tiny_cfg, **changes)
    model = LlamaGenGPT(cfg)
    model.load_state_dict(seeded_state_dict(gpt_shapes(cfg), 3))
    return model.eval()


def _cached_logits(model: LlamaGenGPT, labels: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Prefill with the class, then feed tokens one at a time: [B, 1 + T, V]."""
    B, T = tokens.shape
    model.setup_caches(B, model.max_positions)
    out = [model.forward_cached(torch.arange(1), labels=labels)]
    for i in range(T):
        out.append(model.forward_cached(torch.tensor([1 + i], dtype=torch.int), tokens=tokens[:, i : i + 1]))
    model.clear_caches()
    return torch.cat(out, dim=1)


def test_kv_cached_decode_equals_full_causal_forward(tiny_cfg):
    for changes in ({}, {"n_kv_head": 2}):  # MHA and GQA (2 key/value heads for 4 query heads)
        model = _tiny_model(tiny_cfg, **changes)
        g = torch.Generator().manual_seed(1)
        labels = torch.tensor([0, 9, 4])
        tokens = torch.randint(0, tiny_cfg.vocab_size, (3, tiny_cfg.block_size - 1), generator=g)
        full = model(labels, tokens)
        assert full.shape == (3, tiny_cfg.block_size, tiny_cfg.vocab_size) and full.dtype == torch.float32
        torch.testing.assert_close(_cached_logits(model, labels, tokens), full, rtol=0, atol=2e-5)
        # causality: changing a later token never changes earlier outputs
        changed = tokens.clone()
        changed[:, 7] = (changed[:, 7] + 1) % tiny_cfg.vocab_size
        other = model(labels, changed)
        assert torch.equal(other[:, :8], full[:, :8]) and not torch.allclose(other[:, 8:], full[:, 8:])


def test_cache_length_and_state_dict_untouched(tiny_cfg):
    model = _tiny_model(tiny_cfg)
    keys = set(model.state_dict())
    model.setup_caches(4, model.max_positions)
    assert model.layers[0].attention.kv_cache.k.shape == (4, 4, find_multiple(17, 8), 16) == (4, 4, 24, 16)
    assert set(model.state_dict()) == keys  # caches, mask and RoPE table are never saved
    model.clear_caches()
    assert model.layers[0].attention.kv_cache is None


def test_class_token_and_null_row(tiny_cfg):
    model = _tiny_model(tiny_cfg)
    tokens = torch.zeros(2, 3, dtype=torch.long)
    a = model(torch.tensor([1, 10]), tokens)  # 10 = num_classes = the CFG null class
    assert not torch.allclose(a[0], a[1])
    model.train()
    torch.manual_seed(0)
    dropped = model.cls_embedding(torch.full((1000,), 3)).squeeze(1)
    frac = (dropped == model.cls_embedding.embedding_table.weight[10]).all(-1).float().mean().item()
    assert 0.05 < frac < 0.15  # label dropout (p = 0.1) only in training
    model.eval()
    assert torch.equal(model.cls_embedding(torch.full((4,), 3)).squeeze(1), model.cls_embedding.embedding_table.weight[3].expand(4, -1))


def test_bf16_model_keeps_fp32_rope_and_logits(tiny_cfg):
    model = _tiny_model(tiny_cfg).to(torch.bfloat16)
    assert model.rope.dtype == torch.float32
    out = model(torch.tensor([1]), torch.zeros(1, 3, dtype=torch.long))
    assert out.dtype == torch.float32


def test_vq_encode_decode_semantics(tiny_cfg):
    vq = VQModel(tiny_cfg.vq)
    vq.load_state_dict(seeded_state_dict({k: tuple(v.shape) for k, v in vq.state_dict().items()}, 4))
    vq.eval()
    codebook = vq.quantize.codebook()
    assert torch.allclose(codebook.norm(dim=-1), torch.ones(64), atol=1e-6)
    idx = torch.tensor([[5, 6, 7, 8, 1, 2, 3, 4, 9, 10, 11, 12, 13, 14, 15, 0]])
    codes = vq.quantize.lookup(idx, (4, 4))
    assert codes.shape == (1, 8, 4, 4) and torch.equal(codes[0, :, 1, 2], codebook[3])  # token k = (row k // w, col k % w)
    # the nearest code of a code vector (any positive scale: codes are l2-normalised first) is itself
    assert torch.equal(vq.quantize.nearest_indices(codes * 3.0), idx)
    with torch.no_grad():
        images = vq.decode_indices(idx, (4, 4))
        assert images.shape == (1, 3, 16, 16)
        assert torch.equal(images, vq.decode(codes))
        assert vq.encode_indices(images).shape == (1, 16)
