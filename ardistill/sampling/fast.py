"""Fast-inference options shared by the samplers: reduced-precision weights, `torch.compile`, CUDA graphs.

The reference path (fp32, eager, `FastOptions()`) reproduces the official code bit for bit and stays the default.
The fast path changes only how the same computation is executed:

- `fast=True`: the samplers' fast loops (LlamaGen: each decode step attends over the filled prefix of the static KV
  cache instead of the whole masked cache, and positions come from a pre-built tensor rather than a host→device copy
  per token). In fp32 it gives the same tokens as the reference at the same seed (tested on every built-in model).
- `dtype=bf16|fp16`: the transformer's matrices and the tokenizer decoder are stored in that dtype and run under
  autocast (halving the bytes read per step, and on CPUs with AVX512-BF16/AMX using the bf16 GEMM kernels); the
  quantiser, f_hat accumulation, RoPE tables and logits stay fp32.
- `compile=MODE`: `torch.compile` of the per-step forward with static shapes ("reduce-overhead" captures CUDA
  graphs on a GPU; "default" on CPU). Compiled graphs are cached on the model, one per shape.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterable

import torch
from torch import nn

from ardistill.errors import BadArgumentError

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
DTYPES = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
          "fp16": torch.float16, "float16": torch.float16}


@dataclass(frozen=True)
class FastOptions:
    """How a sampler executes. `FastOptions()` is the exact fp32 eager reference."""

    fast: bool = False
    compile: str | None = None  # one of COMPILE_MODES, or None (eager)
    dtype: torch.dtype = torch.float32

    @property
    def reference(self) -> bool:
        return not self.fast and self.compile is None and self.dtype == torch.float32

    def describe(self) -> str:
        if self.reference:
            return "reference (fp32, eager)"
        dt = str(self.dtype).removeprefix("torch.")
        return f"fast ({dt}, {'compile ' + self.compile if self.compile else 'eager'})"


def parse_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    """"fp32" / "bf16" / "fp16" (or a torch dtype) → torch dtype."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise BadArgumentError(f"unsupported dtype {dtype}; use float32, bfloat16 or float16")
        return dtype
    try:
        return DTYPES[str(dtype).lower()]
    except KeyError:
        raise BadArgumentError(f"unknown dtype {dtype!r}; choose fp32, bf16 or fp16") from None


def resolve_compile(compile: bool | str | None, device: torch.device | str) -> str | None:
    """compile=False/None/"off" → None; True/"auto" → "reduce-overhead" on CUDA (CUDA graphs), "default" elsewhere."""
    if compile in (None, False) or str(compile).lower() in ("", "off", "none", "false", "no"):
        return None
    if compile is True or str(compile).lower() in ("auto", "true", "on", "yes"):
        return "reduce-overhead" if torch.device(device).type == "cuda" else "default"
    if compile not in COMPILE_MODES:
        raise BadArgumentError(f"unknown compile mode {compile!r}; choose one of {', '.join(COMPILE_MODES)} (or auto / off)")
    return str(compile)


def make_fast_options(*, fast: bool = False, compile: bool | str | None = None, dtype: str | torch.dtype | None = None,
                      device: torch.device | str = "cpu") -> FastOptions:
    mode = resolve_compile(compile, device)
    dt = parse_dtype(dtype)
    if dt == torch.float16 and torch.device(device).type == "cpu":
        raise BadArgumentError("fp16 is not supported on CPU (no fp16 matrix kernels); use bf16")
    return FastOptions(fast=bool(fast) or mode is not None or dt != torch.float32, compile=mode, dtype=dt)


def cast_matrices_(module: nn.Module, dtype: torch.dtype, *, skip: Iterable[str] = ()) -> nn.Module:
    """Store the weights and biases of every Linear / Conv2d of `module` in `dtype`, in place (names in `skip`, as in
    `named_modules`, keep theirs). Everything else (norms, embeddings, position tables) stays as it is; run the module
    under `autocast(dtype)` so the activations meet the matrices in the same dtype."""
    skip = set(skip)
    for name, m in module.named_modules():
        if name in skip or not isinstance(m, (nn.Linear, nn.Conv2d)):
            continue
        m.weight.data = m.weight.data.to(dtype)
        if m.bias is not None:
            m.bias.data = m.bias.data.to(dtype)
    return module


def lower_precision_(module: nn.Module, dtype: torch.dtype) -> nn.Module:
    """A convolutional decoder entirely in `dtype`, channels-last (the layout oneDNN's bf16 kernels want)."""
    return module.to(dtype=dtype, memory_format=torch.channels_last)


def autocast(device: torch.device, dtype: torch.dtype):
    """autocast(dtype) on the device, or a null context for fp32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def compiled(owner: nn.Module, key: str, fn, mode: str):
    """`torch.compile(fn, mode=mode, dynamic=False)`, built once and kept on `owner` (one compiled callable per key
    and mode; dynamo keeps one graph per input shape under it)."""
    cache = owner.__dict__.setdefault("_ardistill_compiled", {})
    if (key, mode) not in cache:
        _raise_recompile_limit(64)
        cache[(key, mode)] = torch.compile(fn, mode=mode, dynamic=False)
    return cache[(key, mode)]


def _raise_recompile_limit(n: int) -> None:
    """VAR compiles one graph per scale (10, over dynamo's default limit of 8)."""
    import torch._dynamo.config as dc

    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(dc, name) and getattr(dc, name) < n:
            setattr(dc, name, n)


__all__ = ["FastOptions", "COMPILE_MODES", "parse_dtype", "resolve_compile", "make_fast_options", "cast_matrices_", "lower_precision_",
           "autocast", "compiled"]
