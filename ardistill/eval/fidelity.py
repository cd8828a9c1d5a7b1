"""The shipped evaluator as a torch-fidelity feature extractor.

Importing this module registers the feature extractor "ardistill-toy" with torch-fidelity, so the toy world runs
the very code path that Inception-FID runs on ImageNet, with a different extractor:

    torch_fidelity.calculate_metrics(input1=ds1, input2=ds2, feature_extractor="ardistill-toy", fid=True, ...)

Features: "features" (the evaluator's penultimate layer, [B, D]; FID, KID, PRC) and "logits" ([B, C]; IS).
`feature_extractor_weights_path` may name an evaluator folder (default: the shipped one). The evaluation protocol
(which images, which settings, the metric names) and `toy_fidelity_metrics` are in `ardistill.eval.protocol`.
"""

from __future__ import annotations

import torch
from torch_fidelity import register_feature_extractor
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.helpers import vassert
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from ardistill.eval.evaluator import EXTRACTOR_NAME, load_evaluator
from ardistill.eval.network import to_input_size


class ToyFeatureExtractor(FeatureExtractorBase):
    """torch-fidelity extractor over the evaluator: uint8 `[B, 3, H, W]` → requested features, in order."""

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        evaluator = load_evaluator(feature_extractor_weights_path)
        self.network = evaluator.network
        self.image_size = evaluator.config.image_size
        self.feature_scale = evaluator.feature_scale

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        vassert(torch.is_tensor(x) and x.dtype == torch.uint8, "Expecting image as torch.Tensor with dtype=torch.uint8")
        features, logits = self.network(to_input_size(x.float() / 255.0, self.image_size))
        out = {"features": features.float() / self.feature_scale, "logits": logits.float()}
        return tuple(out[name] for name in self.features_list)

    @staticmethod
    def get_provided_features_list():
        return "features", "logits"

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return {"isc": "logits", "fid": "features", "kid": "features", "prc": "features"}[metric]

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 3, 64, 64, dtype=torch.uint8)


if EXTRACTOR_NAME not in FEATURE_EXTRACTORS_REGISTRY:
    register_feature_extractor(EXTRACTOR_NAME, ToyFeatureExtractor)
