"""What a state dict looks like to a model family (`ardistill inspect`, loading a teacher from a file path).

It lives with the models, below the registry, so that a family's guesser needs nothing above `ardistill.models`:
the registered models a guess is matched against are passed in (`known`), never looked up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


@dataclass(frozen=True)
class CheckpointGuess:
    """What a state dict looks like to a family: used by `ardistill inspect`."""

    family: str
    component: str  # e.g. "VAR transformer", "VQVAE tokenizer"
    config_name: str  # e.g. "depth 16, width 1024"
    build: Callable[[], torch.nn.Module]  # builds the expected module (on the meta device is fine)
    spec_name: str | None = None  # registered model (among those passed in) whose transformer has exactly this config


__all__ = ["CheckpointGuess"]
