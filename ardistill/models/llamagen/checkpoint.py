"""Strict loading of the official LlamaGen files and recognising them from their keys (for `ardistill inspect`).

Official layout: `c2i_{B,L,XL}_*.pt` nest the state dict under "model" (DDP training), `c2i_{XXL,3B}_384.pt` are bare
state dicts (FSDP), `vq_ds16_c2i.pt` nests under "model"; "module" / "state_dict" nesting and `module.` /
`_orig_mod.` prefixes are accepted too (`ardistill.io.load_state_dict_file`). A stray `freqs_cis` entry (not part of
the model) is dropped. Every other key and shape must match, else a one-line CheckpointError names them.

The image size (256 or 384 px) is not visible in the GPT weights: a file name with `_384` / `_256` decides between
registered models of the same architecture, else the smallest registered resolution is assumed.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch
from torch import nn

from ardistill.io import load_state_dict_file, load_strict
from ardistill.models.checkpoint_guess import CheckpointGuess
from ardistill.models.llamagen.config import GPT_PRESETS, GPTConfig, VQConfig
from ardistill.models.llamagen.gpt import LlamaGenGPT, ffn_hidden_dim, rope_2d_table
from ardistill.models.llamagen.vq import VQModel

# Fields of GPTConfig that decide the state dict (block_size does not: it only sizes the RoPE table).
_ARCH_FIELDS = ("dim", "n_layer", "n_head", "kv_heads", "num_classes", "vocab_size", "cls_token_num")
_IGNORED_KEYS = ("freqs_cis",)


def empty_module(factory: Callable[[], nn.Module], device: str | torch.device = "cpu") -> nn.Module:
    """Build on the meta device (no init cost), then allocate uninitialised storage on `device`; every tensor must
    be overwritten afterwards (strict load or `init_weights`)."""
    with torch.device("meta"):
        module = factory()
    module = module.to_empty(device=device)
    if isinstance(module, LlamaGenGPT):  # the RoPE table is a plain attribute: rebuild it for real
        cfg = module.config
        module.rope = rope_2d_table(cfg.grid_size, cfg.head_dim, cfg.rope_base, cfg.cls_token_num)
    return module


def load_llamagen_gpt(path: str | os.PathLike, config: GPTConfig, *, device: str | torch.device = "cpu") -> LlamaGenGPT:
    """An official c2i GPT file → LlamaGenGPT (fp32 as stored, eval mode) with every tensor from the file."""
    state_dict = {k: v for k, v in load_state_dict_file(path).items() if k not in _IGNORED_KEYS}
    model = empty_module(lambda: LlamaGenGPT(config), device)
    load_strict(model, state_dict, what=f"{path} (LlamaGen GPT, {config.n_layer} layers, width {config.dim})")
    return model.eval()


def load_vq_model(path: str | os.PathLike, config: VQConfig, *, device: str | torch.device = "cpu") -> VQModel:
    """An official VQ tokenizer file (`vq_ds16_c2i.pt`, weights under "model") → VQModel (eval mode, frozen)."""
    model = empty_module(lambda: VQModel(config), device)
    load_strict(model, load_state_dict_file(path), what=f"{path} (LlamaGen VQ tokenizer)")
    return model.eval().requires_grad_(False)


def image_size_from_filename(path: str | os.PathLike | None) -> int | None:
    """`c2i_B_384.pt` → 384; None when the name says nothing."""
    if path is None:
        return None
    m = re.search(r"[_-](256|384|512)(?:\D|$)", Path(path).stem)
    return int(m.group(1)) if m else None


def same_architecture(a: GPTConfig, b: GPTConfig) -> bool:
    same = all(getattr(a, f) == getattr(b, f) for f in _ARCH_FIELDS)
    return same and a.head_dim == b.head_dim and ffn_hidden_dim(a) == ffn_hidden_dim(b)


def registered_llamagen_specs(config: GPTConfig, known: Sequence) -> list:
    """The LlamaGen models among `known` (registered specs) whose GPT has the architecture of `config` (any
    resolution), smallest first."""
    found = [s for s in known if s.family == "llamagen" and isinstance(s.config, GPTConfig) and same_architecture(s.config, config)]
    return sorted(found, key=lambda s: s.config.block_size)


# ------------------------------------------------------------------------------------------------ guessing
def _indices(state_dict: Mapping[str, torch.Tensor], prefix: str) -> list[int]:
    pat = re.compile(re.escape(prefix) + r"(\d+)\.")
    return sorted({int(m.group(1)) for k in state_dict if (m := pat.match(k))})


def _guess_heads(sd: Mapping[str, torch.Tensor], n_layer: int, dim: int, known: Sequence) -> tuple[int, int | None]:
    """(n_head, n_kv_head): heads are not visible in MHA weights; the official presets (head dim 64, 100 for
    GPT-3B) and registered models decide, else head dim 64."""
    qkv_rows = sd["layers.0.attention.wqkv.weight"].shape[0]
    for spec in known:
        c = spec.config
        if spec.family == "llamagen" and isinstance(c, GPTConfig) and (c.n_layer, c.dim) == (n_layer, dim):
            if (c.n_head + 2 * c.kv_heads) * c.head_dim == qkv_rows:
                return c.n_head, c.n_kv_head
    for layers, heads, width in GPT_PRESETS.values():
        if (layers, width) == (n_layer, dim) and qkv_rows == 3 * dim:
            return heads, None
    n_head = max(dim // 64, 1)
    hd = dim // n_head
    kv = (qkv_rows // hd - n_head) // 2
    return n_head, None if kv == n_head else kv


def _guess_gpt(sd: Mapping[str, torch.Tensor], known: Sequence) -> CheckpointGuess | None:
    n_layer = len(_indices(sd, "layers."))
    vocab, dim = sd["tok_embeddings.weight"].shape
    rows = sd["cls_embedding.embedding_table.weight"].shape[0]
    hidden = sd["layers.0.feed_forward.w1.weight"].shape[0]
    n_head, n_kv_head = _guess_heads(sd, n_layer, dim, known)
    config = GPTConfig(dim=dim, n_layer=n_layer, n_head=n_head, n_kv_head=n_kv_head, num_classes=rows - 1, vocab_size=vocab)
    if hidden != ffn_hidden_dim(config) and hidden >= int(2 * 4 * dim / 3):
        config = replace(config, multiple_of=hidden)  # a non-standard SwiGLU width
    specs = registered_llamagen_specs(config, known)
    if specs:
        config = specs[0].config
    names = ", ".join(s.name for s in specs)
    return CheckpointGuess(
        family="llamagen",
        component="LlamaGen class-conditional GPT",
        config_name=f"{n_layer} layers, width {dim}, {n_head} heads (head dim {dim // n_head}), {config.num_classes} classes, "
        f"V {vocab}" + (f"; matches {names} (image size from the file name)" if len(specs) > 1 else ""),
        build=lambda: empty_module(lambda: LlamaGenGPT(config), "meta"),
        spec_name=specs[0].name if specs else None,
    )


def _guess_vq(sd: Mapping[str, torch.Tensor]) -> CheckpointGuess | None:
    conv_in = sd["encoder.conv_in.weight"]
    ch = conv_in.shape[0]
    enc_levels = _indices(sd, "encoder.conv_blocks.")
    dec_levels = _indices(sd, "decoder.conv_blocks.")
    enc_mult = tuple(sd[f"encoder.conv_blocks.{i}.res.0.conv1.weight"].shape[0] // ch for i in enc_levels)
    dec_mult = tuple(sd[f"decoder.conv_blocks.{i}.res.0.conv1.weight"].shape[0] // ch for i in reversed(dec_levels))
    emb = sd["quantize.embedding.weight"]
    config = VQConfig(
        codebook_size=emb.shape[0],
        codebook_embed_dim=emb.shape[1],
        codebook_show_usage="quantize.codebook_used" in sd,
        encoder_ch_mult=enc_mult,
        decoder_ch_mult=dec_mult,
        z_channels=sd["encoder.conv_out.weight"].shape[0],
        ch=ch,
        num_res_blocks=len(_indices(sd, "encoder.conv_blocks.0.res.")),
    )
    official = " (the official vq_ds16_c2i, shared by every LlamaGen c2i model)" if config == VQConfig() else ""
    return CheckpointGuess(
        family="llamagen",
        component="VQ tokenizer (LlamaGen)",
        config_name=f"ch {ch}, ch_mult {list(enc_mult)}, V {config.codebook_size}, C {config.codebook_embed_dim}, "
        f"downsample {config.downsample}{official}",
        build=lambda: empty_module(lambda: VQModel(config), "meta"),
        spec_name=None,  # a tokenizer is not a teacher by itself
    )


def guess_llamagen_checkpoint(state_dict: Mapping[str, torch.Tensor], known: Sequence = ()) -> CheckpointGuess | None:
    """Recognise an official-layout LlamaGen GPT or VQ tokenizer state dict; None for anything else.

    known: registered model specs (`ardistill.registry.checkpoint_guessers` passes them); they decide the heads of an
    ambiguous width and `spec_name`."""
    try:
        if all(k in state_dict for k in ("encoder.conv_blocks.0.res.0.conv1.weight", "quantize.embedding.weight", "quant_conv.weight")):
            return _guess_vq(state_dict)
        if all(k in state_dict for k in ("tok_embeddings.weight", "cls_embedding.embedding_table.weight", "layers.0.attention.wqkv.weight", "output.weight")):
            return _guess_gpt(state_dict, known)
    except (KeyError, IndexError, ValueError, RuntimeError, ZeroDivisionError):
        return None
    return None


__all__ = ["load_llamagen_gpt", "load_vq_model", "guess_llamagen_checkpoint", "empty_module", "image_size_from_filename",
           "registered_llamagen_specs", "same_architecture"]
