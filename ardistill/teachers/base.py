"""The Teacher protocol shared by every AR family (VAR, LlamaGen), and sampling-argument validation.

Shapes: B batch, L tokens per image, V vocabulary size, C code dimension, H×W image size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Protocol, Sequence, runtime_checkable

import torch

from ardistill.errors import BadArgumentError

PerScale = float | int | Sequence[float] | Sequence[int]


@dataclass(frozen=True)
class SamplingSettings:
    """Sampler settings. `top_k` / `temperature` may be per-AR-step lists for VAR (one value per scale)."""

    cfg: float = 1.0
    top_k: PerScale = 0
    top_p: float = 0.0
    temperature: PerScale = 1.0

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("top_k", "temperature"):
            if not isinstance(d[k], (int, float)):
                d[k] = list(d[k])
        return d


@runtime_checkable
class Teacher(Protocol):
    """An AR image generator with its tokenizer.

    Token sequences are `[B, L]` int64. VAR: L = Σ pn² (680 at 256 px), scales concatenated coarse→fine,
    raster order inside a scale. LlamaGen: L = (H/16)², raster order.
    """

    name: str
    family: str
    num_classes: int
    vocab_size: int
    tokens_per_image: int
    image_size: int
    default_sampling: SamplingSettings

    @property
    def codebook(self) -> torch.Tensor:
        """`[V, C]` code embeddings as the model consumes them (LlamaGen: L2-normalised)."""
        ...

    @property
    def device(self) -> torch.device: ...

    def logits(self, labels: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits `[B, L, V]` (fp32, one forward pass, no CFG): position i predicts token i."""
        ...

    def sample(
        self,
        labels: torch.Tensor,
        *,
        cfg: float | None = None,
        top_k: PerScale | None = None,
        top_p: float | None = None,
        temperature: PerScale | None = None,
        seed: int | None = None,
    ) -> torch.Tensor:
        """Tokens `[B, L]` sampled with the official sampler's semantics and random-number use."""
        ...

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens `[B, L]` → images `[B, 3, H, W]` in [0, 1]."""
        ...

    def decode_embeddings(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Continuous code vectors `[B, L, C]` (not necessarily codebook rows) → images `[B, 3, H, W]` in [0, 1]."""
        ...

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images `[B, 3, H, W]` in [0, 1] → tokens `[B, L]`."""
        ...


def check_labels(labels: torch.Tensor | Sequence[int] | int, num_classes: int, *, device=None, batch: int | None = None) -> torch.Tensor:
    """Labels as a `[B]` int64 tensor; a class id outside [0, num_classes) is a one-line error."""
    if isinstance(labels, int):
        labels = [labels] * (batch or 1)
    t = torch.as_tensor(labels, dtype=torch.long, device=device)
    if t.dim() != 1:
        raise BadArgumentError(f"labels must be a 1-D list of class ids, got shape {list(t.shape)}")
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= num_classes):
        bad = int(t.max()) if int(t.max()) >= num_classes else int(t.min())
        raise BadArgumentError(f"class id {bad} out of range: this model has classes 0..{num_classes - 1}")
    return t


def resolve_per_step(value: PerScale, steps: int, name: str) -> list:
    """A scalar or a per-step list → a list of `steps` values."""
    if isinstance(value, (int, float)):
        return [value] * steps
    values = list(value)
    if len(values) != steps:
        raise BadArgumentError(f"{name} has {len(values)} values; expected 1 or {steps} (one per step)")
    return values


def check_sampling(s: SamplingSettings, *, vocab_size: int, steps: int) -> None:
    """Validate ranges: cfg ≥ 0, 0 ≤ top_k ≤ V, 0 ≤ top_p ≤ 1, temperature > 0."""
    import math

    if not math.isfinite(s.cfg) or s.cfg < 0:
        raise BadArgumentError(f"cfg must be a finite number ≥ 0, got {s.cfg}")
    for k in resolve_per_step(s.top_k, steps, "top_k"):
        if int(k) != k or k < 0 or k > vocab_size:
            raise BadArgumentError(f"top_k must be an integer in [0, {vocab_size}] (0 = off), got {k}")
    if not (0.0 <= s.top_p <= 1.0):
        raise BadArgumentError(f"top_p must be in [0, 1] (0 or 1 = off), got {s.top_p}")
    for t in resolve_per_step(s.temperature, steps, "temperature"):
        if not (t > 0 and math.isfinite(t)):
            raise BadArgumentError(f"temperature must be > 0, got {t}")


def merge_sampling(defaults: SamplingSettings, **overrides) -> SamplingSettings:
    kw = {k: v for k, v in overrides.items() if v is not None}
    return SamplingSettings(**{**defaults.to_dict(), **kw})
