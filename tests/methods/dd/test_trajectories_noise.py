"""Trajectory noise and labels: pure functions of (seed, global index), standard normal / uniform."""

import hashlib

import pytest
import torch

from ardistill.errors import ArdistillError
from ardistill.methods.dd.noise import sample_key, trajectory_labels, trajectory_noise


def test_noise_is_a_function_of_seed_and_index_only():
    all_ = trajectory_noise(7, torch.arange(10), 30, 4)
    assert all_.shape == (10, 30, 4) and all_.dtype == torch.float32
    picked = trajectory_noise(7, torch.tensor([9, 2, 2]), 30, 4)
    assert torch.equal(picked[0], all_[9]) and torch.equal(picked[1], all_[2]) and torch.equal(picked[2], all_[2])
    assert not torch.equal(trajectory_noise(8, torch.arange(10), 30, 4), all_)
    assert not torch.equal(all_[0], all_[1])
    # The documented key: SHA-256 of "ardistill-dd/noise/<seed>/<index>", first 8 bytes little-endian, 63 bits.
    key = int.from_bytes(hashlib.sha256(b"ardistill-dd/noise/7/3").digest()[:8], "little") & (2**63 - 1)
    assert sample_key("noise", 7, 3) == key
    assert torch.equal(all_[3], torch.randn(30, 4, generator=torch.Generator().manual_seed(key)))


def test_noise_is_standard_normal():
    x = trajectory_noise(0, torch.arange(200), 50, 8).reshape(-1)  # 80 000 values
    assert abs(float(x.mean())) < 0.02 and abs(float(x.std()) - 1) < 0.02
    assert abs(float((x > 1.96).float().mean()) - 0.025) < 0.003


def test_labels_are_uniform_and_keyed_by_index():
    labels = trajectory_labels(1, torch.arange(5000), 10)
    assert labels.dtype == torch.int64 and labels.shape == (5000,)
    counts = torch.bincount(labels, minlength=10).double()
    assert counts.shape == (10,)
    chi2 = float(((counts - 500) ** 2 / 500).sum())
    assert chi2 < 33.7  # 9 dof, p = 1e-4
    assert torch.equal(trajectory_labels(1, torch.tensor([4999, 0]), 10), labels[[4999, 0]])
    assert not torch.equal(trajectory_labels(2, torch.arange(100), 10), labels[:100])
    # Labels and noise use different streams of the same sample.
    assert sample_key("label", 1, 0) != sample_key("noise", 1, 0)


def test_bad_arguments():
    with pytest.raises(ArdistillError):
        trajectory_noise(0, torch.tensor([-1]), 4, 2)
    with pytest.raises(ArdistillError):
        trajectory_noise(0, torch.tensor([0]), 0, 2)
    with pytest.raises(ArdistillError):
        trajectory_labels(0, torch.tensor([0.5]), 10)
    with pytest.raises(ArdistillError):
        trajectory_labels(0, torch.tensor([0]), 0)
