"""Strict loading of DD student weights: the official release files and our own student folders.

Official layouts (microsoft/distilled_decoding):
- VAR `var-d{16,20,24}.pth`: `ckpt["trainer"]["ema_parameters"]` (what VAR/sample.py loads with --ema), else
  `ckpt["trainer"]["var_wo_ddp"]`. The EMA dict may omit the config-derived buffers (`lvl_1L`,
  `attn_bias_for_masking`, `blocks.*.attn.zero_k_bias`); those are filled from the module, every parameter must be
  in the file with the right shape.
- LlamaGen `llamagen-{B,L}.pt`: `ckpt["ema"]` (all README commands pass --ema), else `model` / `module` /
  `state_dict`, as eval_fewstep.py.
Our folders: `student.safetensors` (plain state dict) + `student.json`.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ardistill.errors import CheckpointError
from ardistill.io import NESTING_KEYS, extract_state_dict, load_state_dict_file, load_strict, read_checkpoint
from ardistill.models.dd.llamagen_student import LlamaGenStudent
from ardistill.models.dd.var_student import DERIVED_BUFFERS, VARStudent
from ardistill.models.llamagen.config import GPTConfig
from ardistill.models.llamagen.gpt import rope_2d_table
from ardistill.models.var.checkpoint import empty_module
from ardistill.models.var.config import VARConfig

VAR_NESTING = ("ema_parameters", "var_wo_ddp") + NESTING_KEYS
LLAMAGEN_NESTING = ("ema",) + NESTING_KEYS


def build_student(family: str, teacher_config, *, device: str | torch.device = "cpu", empty: bool = False):
    """A fresh student for a teacher config (family "var" or "llamagen"); `empty`: uninitialised storage (to be loaded)."""
    if family == "var":
        assert isinstance(teacher_config, VARConfig)
        factory = lambda: VARStudent(teacher_config)  # noqa: E731
    elif family == "llamagen":
        assert isinstance(teacher_config, GPTConfig)
        factory = lambda: LlamaGenStudent(teacher_config)  # noqa: E731
    else:
        raise CheckpointError(f"no DD student for family {family!r} (known: var, llamagen)")
    if not empty:
        return factory().to(device)
    model = empty_module(factory, device)
    if family == "var":
        model.reset_buffers()
    else:
        cfg = model.config
        model.rope = rope_2d_table(cfg.grid_size, cfg.head_dim, cfg.rope_base, cfg.cls_token_num)
    return model


def official_student_state_dict(path: str | os.PathLike, family: str) -> dict[str, torch.Tensor]:
    """The student state dict inside an official DD release file (see the module docstring for the nesting)."""
    obj = read_checkpoint(path)
    if family == "var" and isinstance(obj, dict) and isinstance(obj.get("trainer"), dict):
        obj = obj["trainer"]
    return extract_state_dict(obj, prefer=VAR_NESTING if family == "var" else LLAMAGEN_NESTING, what=str(path))


def load_student_weights(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], *, what: str) -> torch.nn.Module:
    """Strict load; for the VAR student the config-derived buffers may be absent from the file (filled in)."""
    if isinstance(model, VARStudent):
        own = dict(model.named_buffers())
        for name in DERIVED_BUFFERS:  # the release's var_wo_ddp has them; they must agree in shape, values are rebuilt
            if name in state_dict and tuple(state_dict[name].shape) != tuple(own[name].shape):
                raise CheckpointError(f"{what}: {name} has shape {list(state_dict[name].shape)}, expected {list(own[name].shape)}")
        state_dict = {**model.derived_buffers(), **{k: v for k, v in state_dict.items() if k not in DERIVED_BUFFERS}}
    load_strict(model, state_dict, what=what)
    return model.eval()


def load_official_student(path: str | os.PathLike, family: str, teacher_config, *, device: str | torch.device = "cpu"):
    """An official DD release file → VARStudent / LlamaGenStudent (fp32, eval mode), every parameter from the file."""
    sd = official_student_state_dict(path, family)
    model = build_student(family, teacher_config, device=device, empty=True)
    return load_student_weights(model, sd, what=f"{path} (official DD {family} student)")


def load_student_file(path: str | os.PathLike, family: str, teacher_config, *, device: str | torch.device = "cpu"):
    """Our `student.safetensors` → student module (strict)."""
    path = Path(path)
    model = build_student(family, teacher_config, device=device, empty=True)
    return load_student_weights(model, load_state_dict_file(path), what=f"{path} (DD {family} student)")


__all__ = ["build_student", "official_student_state_dict", "load_student_weights", "load_official_student", "load_student_file"]
