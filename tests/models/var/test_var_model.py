"""VAR transformer and VQVAE semantics: KV-cached inference == masked full forward, φ table, shapes."""

import numpy as np
import pytest
import torch

from ardistill.models.var.transformer import VARTransformer
from ardistill.models.var.vqvae import VQVAE, phi_index_table, phi_ticks


def _cached_logits(model: VARTransformer, labels, x_BLCv) -> torch.Tensor:
    """Scale-by-scale forward through the static KV cache, inputs embedded as the sampler embeds them."""
    B = labels.shape[0]
    cond = model.class_emb(labels)
    lvl_pos = model.level_position_embedding()
    model.setup_kv_cache(B)
    out, pos = [], 0
    x = model.start_input(cond, lvl_pos)
    for si, (begin, end) in enumerate(model.scale_slices):
        out.append(model.forward_step(x, cond, cache_pos=pos))
        pos = end
        if si + 1 < len(model.scale_slices):
            nb, ne = model.scale_slices[si + 1]
            x = model.scale_input(x_BLCv[:, nb - model.first_l : ne - model.first_l], si + 1, lvl_pos)
    model.clear_kv_cache()
    return torch.cat(out, dim=1)


@torch.no_grad()
def test_kv_cached_steps_equal_masked_full_forward(tiny_cfg, tiny_state_dicts):
    model = VARTransformer(tiny_cfg).eval()
    model.load_state_dict(tiny_state_dicts[0])
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([3, 7, 10])  # 10 = the null class
    x = torch.randn(3, tiny_cfg.seq_len - 1, tiny_cfg.z_channels, generator=g)
    full = model(labels, x)
    assert full.shape == (3, tiny_cfg.seq_len, tiny_cfg.vocab_size) and full.dtype == torch.float32
    torch.testing.assert_close(_cached_logits(model, labels, x), full, rtol=1e-5, atol=1e-5)
    # a prefill of all scales at once with the block-causal mask (the path a second model takes over with)
    cond = model.class_emb(labels)
    lvl_pos = model.level_position_embedding()
    seq = torch.cat([model.start_input(cond, lvl_pos), model.word_embed(x) + lvl_pos[:, 1:]], dim=1)
    model.setup_kv_cache(3)
    prefill = model.forward_step(seq, cond, cache_pos=0, attn_bias=model.attn_bias_for_masking)
    torch.testing.assert_close(prefill, full, rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_future_scales_do_not_change_past_logits(tiny_cfg, tiny_state_dicts):
    model = VARTransformer(tiny_cfg).eval()
    model.load_state_dict(tiny_state_dicts[0])
    labels = torch.tensor([1, 2])
    x = torch.randn(2, tiny_cfg.seq_len - 1, tiny_cfg.z_channels)
    y = x.clone()
    y[:, 13:] += 1.0  # change the input of the last scale (positions 14..29) only
    a, b = model(labels, x), model(labels, y)
    assert torch.equal(a[:, :14], b[:, :14]) and not torch.allclose(a[:, 14:], b[:, 14:])


def test_label_drop_only_in_training(tiny_cfg, tiny_state_dicts):
    from dataclasses import replace

    model = VARTransformer(replace(tiny_cfg, cond_drop_rate=1.0, drop_path_rate=0.0)).eval()  # train mode: only label drop
    model.load_state_dict(tiny_state_dicts[0])
    labels = torch.tensor([1, 2])
    x = torch.randn(2, tiny_cfg.seq_len - 1, tiny_cfg.z_channels)
    with torch.no_grad():
        eval_logits = model(labels, x)
        null_logits = model(torch.full_like(labels, tiny_cfg.num_classes), x)
        model.train()
        train_logits = model(labels, x)  # every label replaced by the null class
    assert not torch.allclose(eval_logits, null_logits)
    torch.testing.assert_close(train_logits, null_logits)


def test_phi_table_official_tie_breaks():
    assert phi_index_table(10, 4) == (0, 0, 1, 1, 1, 2, 2, 3, 3, 3)
    # scales 2 and 7 are exact ties between two φ's; "round half down" would give φ0 and φ2
    ticks = phi_ticks(4)
    for si, chosen, other in ((2, 1, 0), (7, 3, 2)):
        assert abs(abs(ticks[chosen] - si / 9) - abs(ticks[other] - si / 9)) < 1e-12
    assert phi_index_table(4, 4) == tuple(int(np.argmin(np.abs(ticks - si / 3))) for si in range(4))


def test_vqvae_phi_used_per_scale(tiny_cfg):
    vae = VQVAE(tiny_cfg.vae)
    table = phi_index_table(len(tiny_cfg.patch_nums), 4)
    for si in range(len(tiny_cfg.patch_nums)):
        assert vae.quantize.phi(si) is vae.quantize.quant_resi.qresi_ls[table[si]]


@torch.no_grad()
def test_encode_decode_shapes_and_consistency(tiny_teacher):
    t = tiny_teacher
    images = torch.rand(2, 3, t.image_size, t.image_size)
    tokens = t.encode(images)
    assert tokens.shape == (2, t.tokens_per_image) and tokens.dtype == torch.int64
    assert 0 <= int(tokens.min()) and int(tokens.max()) < t.vocab_size
    decoded = t.decode(tokens)
    assert decoded.shape == (2, 3, t.image_size, t.image_size) and 0 <= decoded.min() and decoded.max() <= 1
    # continuous decoding of the codebook vectors is the same computation
    assert torch.equal(t.decode_embeddings(t.codebook[tokens]), decoded)
    # the encoder's cumulative f_hat equals the f_hat rebuilt from its tokens
    f = t.vae.quant_conv(t.vae.encoder(images * 2 - 1))
    f_hat_enc = t.vae.quantize.f_to_idx_or_fhat(f, to_fhat=True)[-1]
    torch.testing.assert_close(t.vae.idx_to_fhat(t.split_scales(tokens)), f_hat_enc, rtol=1e-5, atol=1e-5)
    # teacher-forcing input: the area-downsampled cumulative f_hat of every scale after the first
    x = t.vae.quantize.idx_to_var_input(t.split_scales(tokens))
    assert x.shape == (2, t.tokens_per_image - 1, tiny_teacher.vae.quantize.Cvae)


def test_logits_shape_and_bad_tokens(tiny_teacher):
    from ardistill.errors import BadArgumentError

    tokens = torch.randint(0, tiny_teacher.vocab_size, (2, tiny_teacher.tokens_per_image))
    logits = tiny_teacher.logits(torch.tensor([0, 9]), tokens)
    assert logits.shape == (2, tiny_teacher.tokens_per_image, tiny_teacher.vocab_size) and logits.dtype == torch.float32
    with pytest.raises(BadArgumentError, match="shape"):
        tiny_teacher.decode(tokens[:, :-1])
    with pytest.raises(BadArgumentError, match="token ids"):
        tiny_teacher.decode(tokens + tiny_teacher.vocab_size)


def test_kv_cache_is_not_state(tiny_cfg):
    model = VARTransformer(tiny_cfg)
    keys = set(model.state_dict())
    model.setup_kv_cache(4)
    assert set(model.state_dict()) == keys
    assert tuple(model.blocks[0].attn.kv_cache.k.shape) == (4, tiny_cfg.heads, tiny_cfg.seq_len, tiny_cfg.width // tiny_cfg.heads)
    model.clear_kv_cache()
    assert model.blocks[0].attn.kv_cache is None


def test_random_init_is_seeded_and_official_scheme(tiny_spec):
    from ardistill.teachers.var import load_var_teacher

    a = load_var_teacher(tiny_spec, random_init=True, seed=3)
    b = load_var_teacher(tiny_spec, random_init=True, seed=3)
    c = load_var_teacher(tiny_spec, random_init=True, seed=4)
    sa, sb, sc = a.transformer.state_dict(), b.transformer.state_dict(), c.transformer.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa) and not torch.equal(sa["head.weight"], sc["head.weight"])
    assert all(torch.equal(v, b.vae.state_dict()[k]) for k, v in a.vae.state_dict().items())
    C = tiny_spec.config.width
    ada = sa["blocks.0.ada_lin.1.weight"]
    assert ada[: 2 * C].abs().max() < 1e-3 and ada[2 * C :].abs().max() > 1e-3  # gammas scaled by init_adaln_gamma
    assert torch.all(sa["blocks.0.attn.q_bias"] == 0) and torch.allclose(sa["blocks.0.attn.scale_mul_1H11"], torch.tensor(4.0).log())
    assert torch.equal(sa["lvl_1L"], VARTransformer(tiny_spec.config).lvl_1L)
