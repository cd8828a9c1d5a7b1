"""The evaluator network: a small CNN classifier for the procedural world (≈ 0.56 M parameters).

64×64 input → four stride-2 stages (32, 16, 8, 4 px) → the 4×4×C map is flattened (so the features keep where
things are, not only what they are) → `features` [B, feature_dim] → `logits` [B, num_classes].
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ardistill.errors import ArdistillError


@dataclass(frozen=True)
class EvaluatorConfig:
    num_classes: int = 12
    image_size: int = 64
    widths: tuple[int, ...] = (16, 32, 64, 128)
    feature_dim: int = 128
    groups: int = 8  # GroupNorm groups

    def to_dict(self) -> dict:
        d = asdict(self)
        d["widths"] = list(self.widths)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "EvaluatorConfig":
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ArdistillError(f"unknown evaluator config key(s): {', '.join(sorted(unknown))}")
        d = dict(d)
        if "widths" in d:
            d["widths"] = tuple(int(w) for w in d["widths"])
        return cls(**d)


def _conv(cin: int, cout: int, stride: int, groups: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.GroupNorm(min(groups, cout), cout), nn.SiLU())


class ToyClassifier(nn.Module):
    """`[B, 3, S, S]` in [0, 1] (S = config.image_size) → (features `[B, D]`, logits `[B, num_classes]`)."""

    def __init__(self, cfg: EvaluatorConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.widths
        layers = [_conv(3, w[0], 2, cfg.groups)]
        for cin, cout in zip(w[:-1], w[1:]):
            layers += [_conv(cin, cout, 2, cfg.groups), _conv(cout, cout, 1, cfg.groups)]
        self.body = nn.Sequential(*layers)
        side = cfg.image_size // 2 ** len(w)
        self.to_features = nn.Linear(w[-1] * side * side, cfg.feature_dim)
        self.head = nn.Linear(cfg.feature_dim, cfg.num_classes)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.body(images * 2 - 1)
        features = F.silu(self.to_features(x.flatten(1)))
        return features, self.head(features)


def to_input_size(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize `[B, 3, H, W]` to `[B, 3, size, size]` (bilinear; anti-aliased when shrinking). 32 px images of the
    procedural world are upsampled this way, and the evaluator is trained on such upsampled images too."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    shrink = images.shape[-1] > size
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink)
