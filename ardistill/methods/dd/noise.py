"""Per-sample noise and class labels of DD trajectory datasets, keyed by (seed, global sample index).

Every sample i of a dataset with seed s gets its own CPU `torch.Generator`, seeded with

    key(tag, s, i) = int.from_bytes(SHA-256(f"ardistill-dd/{tag}/{s}/{i}")[:8], "little") & (2**63 − 1)

with tag "noise" for ε and "label" for the class. So the noise and label of a sample do not depend on batch size,
shard size, device or the number of processes, and anyone (the student trainer) regenerates them bit-exactly
from (seed, index) alone. Noise is drawn on the CPU in fp32 (CPU streams are the same on every machine).
Labels are uniform over the classes (as DD draws them), not balanced.
"""

from __future__ import annotations

import hashlib

import torch

from ardistill.errors import BadArgumentError


def sample_key(tag: str, seed: int, index: int) -> int:
    """The 63-bit generator seed of one sample's stream `tag` (see the module docstring)."""
    digest = hashlib.sha256(f"ardistill-dd/{tag}/{int(seed)}/{int(index)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def _indices(indices) -> list[int]:
    idx = torch.as_tensor(indices).reshape(-1)
    if idx.is_floating_point() or (idx.numel() and int(idx.min()) < 0):
        raise BadArgumentError("sample indices must be non-negative integers")
    return idx.tolist()


def trajectory_noise(seed: int, indices: torch.Tensor, length: int, dim: int) -> torch.Tensor:
    """Noise ε of samples `indices` [n]: fp32 N(0, I) on the CPU, [n, L = length, C = dim].

    Position order is the token order of the teacher (VAR: scales coarse → fine; LlamaGen: raster).
    """
    if length < 1 or dim < 1:
        raise BadArgumentError(f"noise needs length ≥ 1 and dim ≥ 1, got {length} and {dim}")
    idx = _indices(indices)
    out = torch.empty(len(idx), length, dim, dtype=torch.float32)
    g = torch.Generator(device="cpu")
    for row, i in enumerate(idx):
        g.manual_seed(sample_key("noise", seed, i))
        torch.randn(length, dim, generator=g, out=out[row])
    return out


def trajectory_labels(seed: int, indices: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Class labels of samples `indices` [n]: int64 [n], uniform over [0, num_classes)."""
    if num_classes < 1:
        raise BadArgumentError(f"num_classes must be ≥ 1, got {num_classes}")
    idx = _indices(indices)
    out = torch.empty(len(idx), dtype=torch.int64)
    g = torch.Generator(device="cpu")
    for row, i in enumerate(idx):
        g.manual_seed(sample_key("label", seed, i))
        out[row] = torch.randint(num_classes, (1,), generator=g)[0]
    return out


__all__ = ["trajectory_noise", "trajectory_labels", "sample_key"]
