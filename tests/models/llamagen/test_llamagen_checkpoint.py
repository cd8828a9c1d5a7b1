"""Strict loading of official-layout LlamaGen files (nested, bare, compiled, safetensors), the real configs' keys and
parameter counts, recognising files, and one-line errors."""

import argparse

import pytest
import torch

from ardistill import load_teacher
from ardistill.errors import CheckpointError, WeightsMissingError
from ardistill.models.llamagen.checkpoint import (empty_module, guess_llamagen_checkpoint, image_size_from_filename, load_llamagen_gpt,
                                                  load_vq_model)
from ardistill.models.llamagen.config import VQConfig, gpt_config
from ardistill.models.llamagen.gpt import LlamaGenGPT, ffn_hidden_dim
from ardistill.models.llamagen.vq import VQModel
from ardistill.registry import list_models


def guess(state_dict):
    """The family's guesser as the registry calls it: matched against the models registered now."""
    return guess_llamagen_checkpoint(state_dict, known=list_models())


def _equal_state(module: torch.nn.Module, sd: dict) -> bool:
    own = module.state_dict()
    return set(own) == set(sd) and all(torch.equal(own[k], sd[k]) for k in sd)


@pytest.mark.parametrize("variant", ["gpt_pt", "gpt_bare", "gpt_compiled", "gpt_st"])
def test_strict_load_every_official_layout(variant, tiny_cfg, tiny_files, tiny_sds):
    gpt = load_llamagen_gpt(tiny_files[variant], tiny_cfg)
    assert _equal_state(gpt, tiny_sds[0]) and not gpt.training


@pytest.mark.parametrize("variant", ["vq_pt", "vq_st"])
def test_strict_load_vq(variant, tiny_cfg, tiny_files, tiny_sds):
    vq = load_vq_model(tiny_files[variant], tiny_cfg.vq)
    assert _equal_state(vq, tiny_sds[1]) and not vq.training
    assert "quantize.codebook_used" in vq.state_dict()  # a buffer the official files carry


def test_stray_freqs_cis_entry_is_dropped(tmp_path, tiny_cfg, tiny_sds):
    sd = dict(tiny_sds[0], freqs_cis=torch.zeros(17, 8, 2))
    torch.save({"model": sd}, tmp_path / "c2i.pt")
    assert _equal_state(load_llamagen_gpt(tmp_path / "c2i.pt", tiny_cfg), tiny_sds[0])


@pytest.mark.parametrize("size, params, hidden", [("B", 110_888_448, 2048), ("L", 342_910_976, 2816), ("XL", 774_699_520, 3584),
                                                   ("XXL", 1_410_972_672, 4096), ("3B", 3_096_659_200, 8704)])
def test_real_gpt_configs(size, params, hidden):
    cfg = gpt_config(size, 384 if size in ("XL", "XXL", "3B") else 256)
    gpt = empty_module(lambda: LlamaGenGPT(cfg), "meta")
    sd = gpt.state_dict()
    assert ffn_hidden_dim(cfg) == hidden
    assert sum(p.numel() for p in gpt.parameters()) == params  # spec §2.2
    assert len(sd) == 2 + 7 * cfg.n_layer + 2  # nothing else: no RoPE table, no caches, no causal mask
    assert tuple(sd["cls_embedding.embedding_table.weight"].shape) == (1001, cfg.dim)  # the null row of CFG
    assert tuple(sd["layers.0.attention.wqkv.weight"].shape) == (3 * cfg.dim, cfg.dim)
    assert tuple(gpt.rope.shape) == (1 + cfg.block_size, cfg.head_dim // 2, 2)


def test_real_vq16_keys_and_size():
    vq = empty_module(lambda: VQModel(VQConfig()), "meta")
    sd = vq.state_dict()
    n = sum(p.numel() for p in vq.parameters())
    assert 71_800_000 < n < 71_950_000  # spec §1.1: ≈ 71.88 M
    assert tuple(sd["quantize.codebook_used"].shape) == (65536,) and tuple(sd["quantize.embedding.weight"].shape) == (16384, 8)
    assert tuple(sd["encoder.conv_blocks.4.res.0.nin_shortcut.weight"].shape) == (512, 256, 1, 1)
    assert tuple(sd["decoder.conv_blocks.1.res.0.nin_shortcut.weight"].shape) == (256, 512, 1, 1)
    assert "decoder.conv_blocks.0.attn.2.proj_out.bias" in sd and "decoder.conv_blocks.4.upsample.conv.weight" not in sd
    assert "encoder.conv_blocks.3.downsample.conv.weight" in sd and "encoder.conv_blocks.4.downsample.conv.weight" not in sd
    assert tuple(sd["quant_conv.weight"].shape) == (8, 256, 1, 1) and tuple(sd["decoder.conv_out.weight"].shape) == (3, 128, 3, 3)


def test_wrong_file_is_one_line_error_naming_keys(tiny_cfg, tiny_files):
    with pytest.raises(CheckpointError) as e:
        load_llamagen_gpt(tiny_files["vq_pt"], tiny_cfg)  # the tokenizer file given as the GPT
    msg = str(e.value)
    assert "\n" not in msg and "missing keys" in msg and "unexpected keys" in msg and "tok_embeddings.weight" in msg


def test_shape_mismatch_names_key(tiny_cfg, tiny_files):
    from dataclasses import replace

    with pytest.raises(CheckpointError, match=r"shape mismatches: \S+ expects \[") as e:
        load_llamagen_gpt(tiny_files["gpt_pt"], replace(tiny_cfg, vocab_size=128))
    assert "\n" not in str(e.value)


def test_pickled_training_state_is_refused(tmp_path, tiny_cfg, tiny_sds):
    torch.save({"model": tiny_sds[0], "args": argparse.Namespace(lr=1e-4)}, tmp_path / "c2i.pt")
    with pytest.raises(CheckpointError, match="refused"):
        load_llamagen_gpt(tmp_path / "c2i.pt", tiny_cfg)


def test_guess_registered_gpts_and_vq():
    for name, size, res in (("llamagen-b", "B", 256), ("llamagen-xl", "XL", 384), ("llamagen-3b", "3B", 384)):
        sd = empty_module(lambda: LlamaGenGPT(gpt_config(size, res)), "meta").state_dict()
        g = guess(sd)
        assert g.family == "llamagen" and g.spec_name == name
        assert {k: tuple(v.shape) for k, v in g.build().state_dict().items()} == {k: tuple(v.shape) for k, v in sd.items()}
    assert "head dim 100" in guess(empty_module(lambda: LlamaGenGPT(gpt_config("3B", 384)), "meta").state_dict()).config_name
    gv = guess(empty_module(lambda: VQModel(VQConfig()), "meta").state_dict())
    assert gv.spec_name is None and "official" in gv.config_name and "downsample 16" in gv.config_name
    assert guess({"weight": torch.zeros(2)}) is None


def test_guess_tiny_files(tiny_spec, tiny_sds):
    g = guess(tiny_sds[0])
    assert g.spec_name == tiny_spec.name and "2 layers, width 64, 4 heads" in g.config_name
    gv = guess(tiny_sds[1])
    assert {k: tuple(v.shape) for k, v in gv.build().state_dict().items()} == {k: tuple(v.shape) for k, v in tiny_sds[1].items()}


def test_image_size_comes_from_the_file_name():
    assert image_size_from_filename("c2i_B_384.pt") == 384 and image_size_from_filename("/w/c2i_L_256.safetensors") == 256
    assert image_size_from_filename("gpt_b.pt") is None


def test_load_teacher_from_path_finds_tokenizer_next_to_it(tiny_spec, tiny_files, tiny_sds):
    teacher = load_teacher(tiny_files["gpt_pt"])  # recognised from its keys; vq_tiny.pt found in the same folder
    assert teacher.name == tiny_spec.name and teacher.family == "llamagen"
    assert _equal_state(teacher.vq, tiny_sds[1]) and _equal_state(teacher.gpt, tiny_sds[0])
    st = load_teacher(tiny_files["gpt_st"], vae=tiny_files["vq_st"])
    assert _equal_state(st.gpt, tiny_sds[0])


def test_384_file_selects_the_384_model(tmp_path):
    from ardistill.registry import get_model_spec
    from ardistill.teachers.llamagen import _spec_for_file

    spec = get_model_spec("llamagen-b")
    assert _spec_for_file(spec, tmp_path / "c2i_B_384.pt").name == "llamagen-b-384"
    assert _spec_for_file(spec, tmp_path / "c2i_B_256.pt").name == "llamagen-b"
    assert get_model_spec("llamagen-b-384").config.block_size == 576


def test_registered_name_without_files_is_one_line_error(tmp_path):
    with pytest.raises(WeightsMissingError, match="c2i_B_256.pt not found"):
        load_teacher("llamagen-b", weights_dir=tmp_path)
