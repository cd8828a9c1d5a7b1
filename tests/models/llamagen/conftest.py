"""Tiny LlamaGen fixtures: a 2-layer GPT (4×4 token grid) and a small VQ tokenizer with seeded random weights that
are a pure function of (config, seed), written as official-layout checkpoint files."""

import math

import pytest
import torch

from ardistill import registry
from ardistill.io import atomic_save_safetensors
from ardistill.models.llamagen.checkpoint import empty_module
from ardistill.models.llamagen.config import GPTConfig, VQConfig
from ardistill.models.llamagen.gpt import LlamaGenGPT
from ardistill.models.llamagen.vq import VQModel
from ardistill.registry import ModelSpec, WeightFile

TINY_NAME = "llamagen-tiny-test"


def tiny_vq_config() -> VQConfig:
    return VQConfig(codebook_size=64, codebook_embed_dim=8, encoder_ch_mult=(1, 1, 2), decoder_ch_mult=(1, 1, 2), z_channels=64, ch=32,
                    num_res_blocks=1)


def tiny_gpt_config() -> GPTConfig:
    # 4 heads of dim 16 (4 RoPE frequencies per axis), 4×4 grid → 16 tokens, 16 px images (downsample 4).
    return GPTConfig(dim=64, n_layer=2, n_head=4, num_classes=10, vocab_size=64, block_size=16, vq=tiny_vq_config())


def seeded_state_dict(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    """Random weights of a sensible scale, drawn key by key in sorted order from one seeded generator: a pure
    function of (key → shape, seed), independent of how a module is built (the official code builds the same dict)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name in sorted(shapes):
        shape = shapes[name]
        if name.endswith("codebook_used"):
            out[name] = torch.zeros(shape)
        elif "norm" in name and len(shape) == 1 and name.endswith("weight"):
            out[name] = 1 + 0.1 * torch.randn(shape, generator=g)
        elif name.endswith(("embedding_table.weight", "tok_embeddings.weight", "embedding.weight")):
            out[name] = torch.randn(shape, generator=g)
        elif len(shape) >= 2:
            out[name] = torch.randn(shape, generator=g) / math.sqrt(math.prod(shape[1:]))
        else:
            out[name] = 0.05 * torch.randn(shape, generator=g)
    return out


def gpt_shapes(cfg: GPTConfig) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in empty_module(lambda: LlamaGenGPT(cfg), "meta").state_dict().items()}


def vq_shapes(cfg: VQConfig) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in empty_module(lambda: VQModel(cfg), "meta").state_dict().items()}


def tiny_state_dicts(gpt_seed: int = 1, vq_seed: int = 2):
    cfg = tiny_gpt_config()
    return seeded_state_dict(gpt_shapes(cfg), gpt_seed), seeded_state_dict(vq_shapes(cfg.vq), vq_seed)


@pytest.fixture(scope="session")
def tiny_cfg() -> GPTConfig:
    return tiny_gpt_config()


@pytest.fixture(scope="session")
def tiny_sds():
    """(GPT state dict, VQ state dict) in the official layout."""
    return tiny_state_dicts()


@pytest.fixture
def tiny_spec(tiny_cfg, monkeypatch) -> ModelSpec:
    """A registered tiny LlamaGen model (registry entry removed after the test)."""
    registry.list_models()  # load the zoo first so it cannot overwrite the test entry
    spec = ModelSpec(
        name=TINY_NAME,
        family="llamagen",
        config=tiny_cfg,
        files=(WeightFile("transformer", "c2i_tiny_16.pt"), WeightFile("tokenizer", "vq_tiny.pt")),
        description="tiny LlamaGen for tests",
        tokens_per_image=tiny_cfg.block_size,
        image_size=tiny_cfg.image_size,
        sampling_defaults=dict(cfg=2.0, top_k=0, top_p=1.0, temperature=1.0),
    )
    monkeypatch.setitem(registry._MODELS, TINY_NAME, spec)
    return spec


@pytest.fixture
def tiny_files(tmp_path, tiny_sds):
    """Official-layout files: the GPT nested under "model" (DDP), a bare one (FSDP), a compiled one (`_orig_mod.`
    prefixes under "module"), the VQ under "model", and safetensors twins."""
    gpt_sd, vq_sd = tiny_sds
    paths = {
        "gpt_pt": tmp_path / "c2i_tiny_16.pt",
        "gpt_bare": tmp_path / "bare" / "c2i_tiny_16.pt",
        "gpt_compiled": tmp_path / "compiled" / "c2i_tiny_16.pt",
        "vq_pt": tmp_path / "vq_tiny.pt",
        "gpt_st": tmp_path / "st" / "c2i_tiny_16.safetensors",
        "vq_st": tmp_path / "st" / "vq_tiny.safetensors",
    }
    for p in paths.values():
        p.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": gpt_sd, "steps": 1000}, paths["gpt_pt"])
    torch.save(gpt_sd, paths["gpt_bare"])
    torch.save({"module": {f"_orig_mod.{k}": v for k, v in gpt_sd.items()}}, paths["gpt_compiled"])
    torch.save({"model": vq_sd, "steps": 1000}, paths["vq_pt"])
    atomic_save_safetensors(gpt_sd, paths["gpt_st"])
    atomic_save_safetensors(vq_sd, paths["vq_st"])
    return paths


@pytest.fixture
def tiny_teacher(tiny_spec, tiny_files):
    from ardistill.teachers.llamagen import load_llamagen_teacher

    return load_llamagen_teacher(tiny_spec, transformer_path=tiny_files["gpt_pt"], vae_path=tiny_files["vq_pt"])
