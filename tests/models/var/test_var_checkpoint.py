"""Strict loading of official-layout VAR / VQVAE files, key counts of the real configs, and recognising files."""

import argparse

import pytest
import torch

from ardistill import load_teacher
from ardistill.errors import CheckpointError, WeightsMissingError
from ardistill.models.var.checkpoint import empty_module, guess_var_checkpoint, load_var_transformer, load_vqvae
from ardistill.models.var.config import PATCH_NUMS_512, VQVAEConfig, var_config
from ardistill.models.var.transformer import VARTransformer
from ardistill.models.var.vqvae import VQVAE
from ardistill.registry import list_models


def guess(state_dict):
    """The family's guesser as the registry calls it: matched against the models registered now."""
    return guess_var_checkpoint(state_dict, known=list_models())


def _equal_state(module: torch.nn.Module, sd: dict) -> bool:
    own = module.state_dict()
    return set(own) == set(sd) and all(torch.equal(own[k], sd[k]) for k in sd)


@pytest.mark.parametrize("fmt", ["pth", "st"])
def test_strict_load_pth_and_safetensors(fmt, tiny_cfg, tiny_files, tiny_state_dicts):
    var_sd, vae_sd = tiny_state_dicts
    var = load_var_transformer(tiny_files[f"var_{fmt}"], tiny_cfg)
    vae = load_vqvae(tiny_files[f"vae_{fmt}"], tiny_cfg.vae)
    assert _equal_state(var, var_sd) and _equal_state(vae, vae_sd)
    assert not var.training and not vae.training
    # buffers come from the file too: the block-causal mask and the scale index of each position
    assert var.lvl_1L.tolist()[0] == [0, 1, 1, 1, 1] + [2] * 9 + [3] * 16
    assert torch.isinf(var.attn_bias_for_masking[0, 0, 0, 1]) and var.attn_bias_for_masking[0, 0, 4, 1] == 0


@pytest.mark.parametrize("depth", [16, 20, 24, 30])
def test_real_key_count_formula(depth):
    sd = empty_module(lambda: VARTransformer(var_config(depth)), "meta").state_dict()
    assert len(sd) == 8 + 13 * depth + 4
    assert not any(k.startswith(("encoder.", "decoder.", "quantize.", "vae")) for k in sd)  # no tokenizer inside
    for k in ("lvl_1L", "attn_bias_for_masking", "blocks.0.attn.zero_k_bias", "blocks.0.attn.scale_mul_1H11", "blocks.0.ada_lin.1.weight"):
        assert k in sd


def test_real_d16_and_d36_shapes():
    d16 = empty_module(lambda: VARTransformer(var_config(16)), "meta")
    assert sum(p.numel() for p in d16.parameters()) == 310_283_520  # README: 310M
    assert tuple(d16.state_dict()["pos_1LC"].shape) == (1, 680, 1024)
    assert d16.state_dict()["lvl_1L"].dtype == torch.int64
    d36 = empty_module(lambda: VARTransformer(var_config(36)), "meta").state_dict()
    assert len(d36) == 8 + 2 + 12 * 36 + 4  # shared AdaLN: ada_gss per block, shared_ada_lin once
    assert tuple(d36["attn_bias_for_masking"].shape) == (1, 1, 2240, 2240)
    assert tuple(d36["blocks.0.ada_gss"].shape) == (1, 1, 6, 2304)


def test_real_vqvae_keys():
    vae = empty_module(lambda: VQVAE(VQVAEConfig()), "meta")
    sd = vae.state_dict()
    assert len(sd) == 324 and len(list(vae.parameters())) == 323
    assert tuple(sd["quantize.ema_vocab_hit_SV"].shape) == (10, 4096)
    assert tuple(sd["encoder.down.4.attn.1.qkv.weight"].shape) == (1920, 640, 1, 1)
    assert tuple(sd["decoder.up.1.block.0.nin_shortcut.weight"].shape) == (160, 320, 1, 1)
    assert "decoder.up.4.attn.2.proj_out.bias" in sd and "decoder.up.0.upsample.conv.weight" not in sd
    assert [k for k in sd if "quant_resi" in k] == [f"quantize.quant_resi.qresi_ls.{i}.{w}" for i in range(4) for w in ("weight", "bias")]


@pytest.mark.parametrize("share, keys", [(0, ["quant_resi.0", "quant_resi.1", "quant_resi.2", "quant_resi.3"]), (1, ["quant_resi.qresi"])])
def test_other_phi_sharing_layouts_match_official_keys(share, keys, tiny_cfg):
    """share_quant_resi 0 (one φ per scale, a bare ModuleList) and 1 (one shared φ), as the official quant.py names them."""
    from dataclasses import replace

    cfg = replace(tiny_cfg.vae, share_quant_resi=share)
    sd = empty_module(lambda: VQVAE(cfg), "meta").state_dict()
    assert [k for k in sd if "quant_resi" in k] == [f"quantize.{k}.{w}" for k in keys for w in ("weight", "bias")]
    g = guess(sd)
    assert g is not None and set(g.build().state_dict()) == set(sd)


def test_wrong_file_is_one_line_error_naming_keys(tiny_cfg, tiny_files):
    with pytest.raises(CheckpointError) as e:
        load_var_transformer(tiny_files["vae_pth"], tiny_cfg)  # a tokenizer file given as the transformer
    msg = str(e.value)
    assert "\n" not in msg and "missing keys" in msg and "unexpected keys" in msg
    assert "pos_start" in msg or "word_embed" in msg or "class_emb" in msg


def test_shape_mismatch_names_key(tiny_cfg, tiny_files):
    from dataclasses import replace

    wider = replace(tiny_cfg, embed_dim=128)
    with pytest.raises(CheckpointError, match=r"shape mismatches: \S+ expects \[") as e:
        load_var_transformer(tiny_files["var_pth"], wider)
    assert "\n" not in str(e.value)


def test_pickled_objects_are_refused(tmp_path, tiny_cfg, tiny_state_dicts):
    path = tmp_path / "trainer_state.pth"
    torch.save({"model": tiny_state_dicts[0], "args": argparse.Namespace(lr=1e-4)}, path)
    with pytest.raises(CheckpointError, match="refused"):
        load_var_transformer(path, tiny_cfg)


def test_vqvae_with_other_number_of_scales_keeps_its_own_usage_buffer(tmp_path, tiny_cfg, tiny_state_dicts):
    sd = dict(tiny_state_dicts[1])
    sd["quantize.ema_vocab_hit_SV"] = torch.ones(7, tiny_cfg.vae.vocab_size)  # official VQVAE.load_state_dict tolerates this
    torch.save(sd, tmp_path / "vae.pth")
    vae = load_vqvae(tmp_path / "vae.pth", tiny_cfg.vae)
    assert vae.quantize.ema_vocab_hit_SV.shape[0] == len(tiny_cfg.patch_nums)


def test_guess_registered_transformers():
    sd16 = empty_module(lambda: VARTransformer(var_config(16)), "meta").state_dict()
    g = guess(sd16)
    assert g.family == "var" and g.spec_name == "var-d16" and "depth 16" in g.config_name
    assert set(g.build().state_dict()) == set(sd16)
    g36 = guess(empty_module(lambda: VARTransformer(var_config(36)), "meta").state_dict())
    assert g36.spec_name == "var-d36" and str(list(PATCH_NUMS_512)) in g36.config_name


def test_guess_vqvae_and_tiny(tiny_state_dicts):
    gv = guess(empty_module(lambda: VQVAE(VQVAEConfig()), "meta").state_dict())
    assert gv.component.startswith("VQVAE") and gv.spec_name is None and "official" in gv.config_name
    var_sd, vae_sd = tiny_state_dicts
    gt = guess(var_sd)
    assert gt.spec_name is None and "depth 2" in gt.config_name  # tiny config not registered here
    assert {k: tuple(v.shape) for k, v in gt.build().state_dict().items()} == {k: tuple(v.shape) for k, v in var_sd.items()}
    gvt = guess(vae_sd)
    assert {k: tuple(v.shape) for k, v in gvt.build().state_dict().items()} == {k: tuple(v.shape) for k, v in vae_sd.items()}
    assert guess({"weight": torch.zeros(2)}) is None


def test_load_teacher_from_path_finds_tokenizer_next_to_it(tiny_spec, tiny_files, tiny_state_dicts):
    teacher = load_teacher(tiny_files["var_pth"])  # recognised from its keys; vae_tiny.pth found in the same folder
    assert teacher.name == tiny_spec.name and teacher.family == "var"
    assert _equal_state(teacher.vae, tiny_state_dicts[1])
    st = load_teacher(tiny_files["var_st"], vae=tiny_files["vae_st"])
    assert _equal_state(st.transformer, tiny_state_dicts[0])


def test_registered_name_without_files_is_one_line_error(tmp_path):
    with pytest.raises(WeightsMissingError, match="var_d16.pth not found"):
        load_teacher("var-d16", weights_dir=tmp_path)
