"""Strict loading of the official VAR files and recognising them from their keys (for `ardistill inspect`).

Official layout: `var_d{16,20,24,30,36}.pth` and `vae_ch160v4096z32.pth` are plain state dicts (no nesting,
no `module.` prefix). Loading never guesses: every key and shape must match the config, else a one-line
CheckpointError names the first differing keys.
"""

from __future__ import annotations

import math
import os
import re
from typing import Callable, Mapping, Sequence

import torch
from torch import nn

from ardistill.io import load_state_dict_file, load_strict
from ardistill.models.checkpoint_guess import CheckpointGuess
from ardistill.models.var.config import PATCH_NUMS_256, PATCH_NUMS_512, VARConfig, VQVAEConfig
from ardistill.models.var.transformer import VARTransformer
from ardistill.models.var.vqvae import VQVAE

# Fields of VARConfig that decide the state dict and the computation (not the training-only init/drop settings).
_ARCH_FIELDS = ("depth", "width", "heads", "mlp_ratio", "num_classes", "patch_nums", "vocab_size", "z_channels",
                "norm_eps", "shared_aln", "attn_l2_norm")


def empty_module(factory: Callable[[], nn.Module], device: str | torch.device = "cpu") -> nn.Module:
    """Build on the meta device (no init cost), then allocate uninitialised storage on `device`.
    Every tensor must be overwritten afterwards (strict load or `init_weights`)."""
    with torch.device("meta"):
        module = factory()
    return module.to_empty(device=device)


def load_var_transformer(path: str | os.PathLike, config: VARConfig, *, device: str | torch.device = "cpu") -> VARTransformer:
    """An official VAR transformer file → VARTransformer (fp32, eval mode) with every tensor from the file."""
    state_dict = load_state_dict_file(path)
    model = empty_module(lambda: VARTransformer(config), device)
    load_strict(model, state_dict, what=f"{path} (VAR transformer, depth {config.depth})")
    return model.eval()


def load_vqvae(path: str | os.PathLike, config: VQVAEConfig, *, device: str | torch.device = "cpu") -> VQVAE:
    """An official VQVAE file → VQVAE (fp32, eval mode, frozen)."""
    state_dict = dict(load_state_dict_file(path))
    model = empty_module(lambda: VQVAE(config), device)
    ema_key = "quantize.ema_vocab_hit_SV"
    own = model.quantize.ema_vocab_hit_SV
    if ema_key in state_dict and state_dict[ema_key].dim() == 2 and state_dict[ema_key].shape[0] != own.shape[0]:
        # The official VQVAE.load_state_dict keeps its own usage statistics when the number of scales differs.
        state_dict[ema_key] = torch.zeros_like(own, device="cpu")
    load_strict(model, state_dict, what=f"{path} (VQVAE tokenizer)")
    return model.eval().requires_grad_(False)


# ------------------------------------------------------------------------------------------------ guessing
def _indices(state_dict: Mapping[str, torch.Tensor], prefix: str) -> list[int]:
    pat = re.compile(re.escape(prefix) + r"(\d+)\.")
    return sorted({int(m.group(1)) for k in state_dict if (m := pat.match(k))})


def _patch_nums_from(state_dict: Mapping[str, torch.Tensor], length: int) -> tuple[int, ...] | None:
    lvl = state_dict.get("lvl_1L")
    if lvl is not None and lvl.numel() == length and not lvl.is_floating_point() and not lvl.is_meta:
        counts = torch.bincount(lvl.reshape(-1).long()).tolist()
        pns = tuple(math.isqrt(c) for c in counts)
        if all(p * p == c and p > 0 for p, c in zip(pns, counts)):
            return pns
    return {sum(p * p for p in PATCH_NUMS_256): PATCH_NUMS_256, sum(p * p for p in PATCH_NUMS_512): PATCH_NUMS_512}.get(length)


def same_architecture(a: VARConfig, b: VARConfig) -> bool:
    return all(getattr(a, f) == getattr(b, f) for f in _ARCH_FIELDS)


def _registered_var_name(config: VARConfig, known: Sequence) -> str | None:
    """The first of `known` (registered specs: .name, .family, .config) with this architecture, or None."""
    for spec in known:
        if spec.family == "var" and isinstance(spec.config, VARConfig) and same_architecture(spec.config, config):
            return spec.name
    return None


def _guess_transformer(sd: Mapping[str, torch.Tensor], known: Sequence) -> CheckpointGuess | None:
    depth = len(_indices(sd, "blocks."))
    pos = sd["pos_1LC"]
    if depth == 0 or pos.dim() != 3:
        return None
    length, width = pos.shape[1], pos.shape[2]
    patch_nums = _patch_nums_from(sd, length)
    if patch_nums is None:
        return None
    scale_mul = sd.get("blocks.0.attn.scale_mul_1H11")
    heads = scale_mul.shape[1] if scale_mul is not None else width // 64
    fc1 = sd.get("blocks.0.ffn.fc1.weight")
    config = VARConfig(
        depth=depth,
        embed_dim=None if width == 64 * depth else width,
        num_heads=None if heads == depth else heads,
        mlp_ratio=fc1.shape[0] / width if fc1 is not None else 4.0,
        num_classes=sd["class_emb.weight"].shape[0] - 1,
        patch_nums=patch_nums,
        vocab_size=sd["head.weight"].shape[0],
        z_channels=sd["word_embed.weight"].shape[1],
        shared_aln="shared_ada_lin.1.weight" in sd,
        attn_l2_norm=scale_mul is not None,
        vae=VQVAEConfig(patch_nums=patch_nums, num_ema_scales=10 if len(patch_nums) != 10 else None),
    )
    name = _registered_var_name(config, known)
    aln = ", shared AdaLN" if config.shared_aln else ""
    return CheckpointGuess(
        family="var",
        component="VAR transformer",
        config_name=f"depth {depth}, width {width}, {heads} heads{aln}, {length} tokens, patch_nums {list(patch_nums)}, "
        f"{config.num_classes} classes, V {config.vocab_size}",
        build=lambda: empty_module(lambda: VARTransformer(config), "meta"),
        spec_name=name,
    )


def _guess_vqvae(sd: Mapping[str, torch.Tensor]) -> CheckpointGuess | None:
    conv_in = sd["encoder.conv_in.weight"]
    emb = sd["quantize.embedding.weight"]
    ch = conv_in.shape[0]
    levels = _indices(sd, "encoder.down.")
    if not levels or conv_in.dim() != 4 or emb.dim() != 2:
        return None
    ch_mult = tuple(sd[f"encoder.down.{i}.block.0.conv1.weight"].shape[0] // ch for i in levels)
    num_res_blocks = len(_indices(sd, "encoder.down.0.block."))
    n_phi = len(_indices(sd, "quantize.quant_resi.qresi_ls."))
    n_phi_per_scale = len(_indices(sd, "quantize.quant_resi."))  # share_quant_resi=0: keys quant_resi.{si}
    has_single_phi = "quantize.quant_resi.qresi.weight" in sd
    ema = sd.get("quantize.ema_vocab_hit_SV")
    rows = ema.shape[0] if ema is not None and ema.dim() == 2 else len(PATCH_NUMS_256)
    config = VQVAEConfig(
        vocab_size=emb.shape[0],
        z_channels=emb.shape[1],
        ch=ch,
        ch_mult=ch_mult,
        num_res_blocks=num_res_blocks,
        in_channels=conv_in.shape[1],
        using_sa=f"encoder.down.{levels[-1]}.attn.0.qkv.weight" in sd,
        using_mid_sa="encoder.mid.attn_1.qkv.weight" in sd,
        quant_conv_ks=sd["quant_conv.weight"].shape[-1] if "quant_conv.weight" in sd else 3,
        quant_resi=0.5 if (n_phi or n_phi_per_scale or has_single_phi) else 0.0,
        share_quant_resi=1 if has_single_phi else (0 if n_phi_per_scale else (n_phi or 4)),
        default_qresi_counts=n_phi_per_scale if n_phi_per_scale != len(PATCH_NUMS_256) else 0,
        num_ema_scales=None if rows == len(PATCH_NUMS_256) else rows,
    )
    official = " (the official vae_ch160v4096z32, shared by every VAR model)" if config == VQVAEConfig() else ""
    return CheckpointGuess(
        family="var",
        component="VQVAE tokenizer (multi-scale)",
        config_name=f"ch {ch}, ch_mult {list(ch_mult)}, V {config.vocab_size}, Cvae {config.z_channels}{official}",
        build=lambda: empty_module(lambda: VQVAE(config), "meta"),
        spec_name=None,  # a tokenizer is not a teacher by itself
    )


def guess_var_checkpoint(state_dict: Mapping[str, torch.Tensor], known: Sequence = ()) -> CheckpointGuess | None:
    """Recognise an official-layout VAR transformer or VQVAE state dict; None for anything else.

    known: registered model specs (`ardistill.registry.checkpoint_guessers` passes them); `spec_name` names the first
    whose config has the guessed architecture."""
    try:
        if all(k in state_dict for k in ("encoder.conv_in.weight", "quantize.embedding.weight", "decoder.conv_out.weight")):
            return _guess_vqvae(state_dict)
        if all(k in state_dict for k in ("pos_1LC", "class_emb.weight", "word_embed.weight", "head.weight", "blocks.0.attn.mat_qkv.weight")):
            return _guess_transformer(state_dict, known)
    except (KeyError, IndexError, ValueError, RuntimeError, ZeroDivisionError):
        return None
    return None


__all__ = ["load_var_transformer", "load_vqvae", "guess_var_checkpoint", "empty_module", "same_architecture"]
