"""The tokenizers' reconstruction loss: per-pixel terms plus the low-pass colour term."""

import pytest
import torch

from ardistill.configs import config_from_dict
from ardistill.errors import ArdistillError
from ardistill.training.tokenizer_loss import ReconstructionLoss


def test_lowpass_term_is_the_mse_of_pooled_images():
    images = torch.rand(2, 3, 8, 8) * 2 - 1
    shifted = images.clone()
    shifted[:, 0] += 0.1  # a colour cast: every red pixel off by 0.1
    plain = ReconstructionLoss(l1_weight=0.0)(shifted, images)[0]
    with_colour = ReconstructionLoss(l1_weight=0.0, lowpass_weight=2.0, lowpass_size=4)(shifted, images)[0]
    assert plain.item() == pytest.approx(0.01 / 3, rel=1e-4)
    assert (with_colour - plain).item() == pytest.approx(2.0 * 0.01 / 3, rel=1e-4)  # pooling keeps a uniform cast
    assert ReconstructionLoss(lowpass_weight=1.0)(images, images)[0].item() == 0.0


def test_recipe_fields_are_checked():
    assert config_from_dict(ReconstructionLoss, {"lowpass_weight": 1}).lowpass_weight == 1.0
    assert config_from_dict(ReconstructionLoss, {}) == ReconstructionLoss()
    with pytest.raises(ArdistillError, match="lowpas_weight: unknown field .did you mean 'lowpass_weight'"):
        config_from_dict(ReconstructionLoss, {"lowpas_weight": 1.0}, where="loss")
