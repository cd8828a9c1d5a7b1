"""torch-fidelity with the "ardistill-toy" extractor: real vs real is close, one class or corrupted images are far."""

import pytest
import torch
import torch_fidelity

from ardistill.data import NUM_CLASSES, make_images, split_images, stream_seed
import ardistill.eval.fidelity  # noqa: F401  (registers the "ardistill-toy" extractor)
from ardistill.eval.protocol import Uint8Images, toy_fidelity_metrics

N = 240


def uint8(images):
    return Uint8Images((images * 255 + 0.5).to(torch.uint8))


def metrics(a, b):
    return torch_fidelity.calculate_metrics(
        input1=uint8(a), input2=uint8(b), feature_extractor="ardistill-toy", fid=True, kid=True, prc=True, isc=True,
        cuda=False, kid_subset_size=N // 2, isc_splits=4, save_cpu_ram=True, cache=False, verbose=False,
    )


@pytest.fixture(scope="module")
def sets():
    real, _ = split_images(N, split="heldout", seed=0)
    real2, _ = split_images(N, split="heldout", seed=0, start=N)
    one_class, _ = make_images(range(0, N * NUM_CLASSES, NUM_CLASSES), seed=stream_seed("train", 1))  # all discs
    noisy = (real2 + 0.25 * torch.randn(real2.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    return real, real2, one_class, noisy


def test_calculate_metrics_separates_real_from_bad(sets):
    real, real2, one_class, noisy = sets
    same = metrics(real, real2)
    mode_collapsed = metrics(one_class, real)
    corrupted = metrics(noisy, real)
    fid = "frechet_inception_distance"
    # measured with the shipped evaluator (2026-11-30): same 1.6, one class 148, σ = 0.25 pixel noise 5.0
    assert same[fid] * 5 < mode_collapsed[fid] and same[fid] * 2 < corrupted[fid]
    kid = "kernel_inception_distance_mean"
    assert same[kid] < mode_collapsed[kid] and same[kid] < corrupted[kid]
    # a single class covers little of the real distribution: recall collapses, precision stays
    assert mode_collapsed["recall"] < 0.5 * same["recall"]
    # IS: real images are confidently spread over all classes, one class is ~1
    assert same["inception_score_mean"] > 0.7 * NUM_CLASSES
    assert mode_collapsed["inception_score_mean"] < 1.5


def test_helper_defaults_to_heldout_reference(sets):
    real, real2, one_class, _ = sets
    good = toy_fidelity_metrics([real2[:120], real2[120:]], isc=False)
    bad = toy_fidelity_metrics(one_class, prc=False)
    assert good["num_images"] == good["num_reference"] == N
    assert {"fid", "kid_mean", "precision", "recall"} <= set(good) and "isc_mean" not in good
    assert good["fid"] * 5 < bad["fid"] and bad["isc_mean"] < 1.5
    # 32 px images are scored through the same (upsampling) path against a 32 px reference
    small, _ = split_images(N, split="heldout", seed=4, size=32)
    assert toy_fidelity_metrics(small, isc=False)["fid"] < bad["fid"] / 5


def test_extractor_features_are_the_evaluators(sets):
    from ardistill.eval import load_evaluator
    from ardistill.eval.fidelity import ToyFeatureExtractor

    images = (sets[0][:16] * 255 + 0.5).to(torch.uint8)
    extractor = ToyFeatureExtractor("ardistill-toy", ["logits", "features"]).eval()
    with torch.no_grad():
        logits, features = extractor(images)
    evaluator = load_evaluator()
    assert torch.allclose(features, evaluator.features(images), atol=1e-5)
    assert torch.allclose(logits, evaluator.logits(images), atol=1e-5)
    assert 0.5 < features.pow(2).mean().sqrt() < 2  # RMS-normalised features
