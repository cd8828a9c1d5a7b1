"""The shipped evaluator: class accuracy of generated images and features for FID/KID/precision-recall.

`load_evaluator()` reads `ardistill/weights/evaluator/{evaluator.safetensors, card.json}` (or another folder).
Inputs are `[B, 3, H, W]` in [0, 1] (uint8 in [0, 255] is accepted too); any H = W other than the trained size
(64) is resized to it first, so 32 px images are scored as their bilinear 64 px upsampling.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ardistill.errors import BadArgumentError, CheckpointError, WeightsMissingError
from ardistill.eval.network import EvaluatorConfig, ToyClassifier, to_input_size
from ardistill.io import atomic_save_safetensors, atomic_write_json, load_strict, read_checkpoint

PACKAGE_EVALUATOR_DIR = Path(__file__).resolve().parent.parent / "weights" / "evaluator"
WEIGHTS_FILE = "evaluator.safetensors"
CARD_FILE = "card.json"
EXTRACTOR_NAME = "ardistill-toy"  # its name as a torch-fidelity feature extractor (registered by ardistill.eval.fidelity)


class Evaluator:
    """A trained `ToyClassifier` in eval mode, with batched, gradient-free helpers."""

    def __init__(self, network: ToyClassifier, card: dict | None = None, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.network = network.to(self.device).eval()  # inference uses no_grad; requires_grad is left as is
        self.config: EvaluatorConfig = network.cfg
        self.card = dict(card or {})
        # Features are divided by their RMS on held-out images (measured at training time) so that FID/KID have a
        # scale comparable to Inception features (raw SiLU features are ~10× larger and blow up KID's cubic kernel).
        self.feature_scale = float(self.card.get("feature_rms", 1.0))

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    @property
    def feature_dim(self) -> int:
        return self.config.feature_dim

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
            shape = list(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise BadArgumentError(f"evaluator expects images [B, 3, H, W], got {shape}")
        if images.shape[-1] != images.shape[-2]:
            raise BadArgumentError(f"evaluator expects square images, got {images.shape[-2]}×{images.shape[-1]}")
        x = images.to(self.device)
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        return to_input_size(x, self.config.image_size)

    @torch.no_grad()
    def features_and_logits(self, images: torch.Tensor, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
        """`[B, 3, H, W]` → (features `[B, D]`, logits `[B, num_classes]`), float32 on the CPU."""
        feats, logits = [], []
        for chunk in images.split(batch_size):
            f, lg = self.network(self._prepare(chunk))
            feats.append(f.float().cpu() / self.feature_scale)
            logits.append(lg.float().cpu())
        if not feats:
            return torch.empty(0, self.feature_dim), torch.empty(0, self.num_classes)
        return torch.cat(feats), torch.cat(logits)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate features `[B, D]`, RMS-normalised (what FID/KID/precision-recall compare)."""
        return self.features_and_logits(images)[0]

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.features_and_logits(images)[1]

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Predicted class `[B]` int64."""
        return self.logits(images).argmax(dim=1)

    def accuracy(self, images: torch.Tensor, labels) -> float:
        """Fraction of images classified as their (requested) label."""
        labels = torch.as_tensor(labels, dtype=torch.int64).reshape(-1).cpu()
        if labels.numel() != images.shape[0]:
            raise BadArgumentError(f"{images.shape[0]} images but {labels.numel()} labels")
        if labels.numel() == 0:
            raise BadArgumentError("accuracy of an empty set of images")
        return float((self.predict(images) == labels).float().mean())


def save_evaluator(network: ToyClassifier, out_dir: str | os.PathLike, card: dict) -> Path:
    """Write `evaluator.safetensors` and `card.json` (the card gets the config) into `out_dir`."""
    out_dir = Path(out_dir)
    atomic_save_safetensors(network.state_dict(), out_dir / WEIGHTS_FILE, metadata={"config": json.dumps(network.cfg.to_dict())})
    atomic_write_json(out_dir / CARD_FILE, {**card, "config": network.cfg.to_dict(), "weights": WEIGHTS_FILE})
    return out_dir


def load_evaluator(path: str | os.PathLike | None = None, *, device: str | torch.device = "cpu") -> Evaluator:
    """The shipped evaluator (default), or the one in folder `path` (as written by `ardistill evaluator train`)."""
    folder = Path(path) if path is not None else PACKAGE_EVALUATOR_DIR
    weights, card_path = folder / WEIGHTS_FILE, folder / CARD_FILE
    if not weights.is_file() or not card_path.is_file():
        raise WeightsMissingError(
            f"no evaluator in {folder} (needs {WEIGHTS_FILE} and {CARD_FILE}); train one with `ardistill evaluator train --out {folder}`"
        )
    try:
        card = json.loads(card_path.read_text())
        cfg = EvaluatorConfig.from_dict(card["config"])
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise CheckpointError(f"{card_path}: not a valid evaluator card ({e})") from None
    network = ToyClassifier(cfg).requires_grad_(False)
    load_strict(network, read_checkpoint(weights), what=str(weights))
    return Evaluator(network, card, device)
