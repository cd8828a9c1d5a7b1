"""The naive few-step baselines (skip-K, onestep): what they keep from the teacher, what they replace, and the work
the bench measures for them."""

import pytest
import torch

from ardistill.bench.methods import build_methods, measure_counts
from ardistill.errors import BadArgumentError
from ardistill.methods.dd.baselines import TokenMarginals, skip_sample
from ardistill.teachers.base import SamplingSettings
from trajectory_teachers import tiny_llamagen_teacher
from trajectory_teachers import tiny_var_teacher as _tiny_var_teacher


def tiny_var_teacher(patch_nums):
    teacher = _tiny_var_teacher(patch_nums)
    teacher.default_sampling = SamplingSettings(cfg=1.5, top_k=20, top_p=0.0, temperature=1.0)
    return teacher


def test_marginals_count_per_class_and_position():
    tokens = torch.tensor([[1, 2], [1, 3], [4, 2], [0, 0]])
    labels = torch.tensor([0, 0, 1, 1])
    m = TokenMarginals.from_tokens(tokens, labels, num_classes=2, vocab_size=5)
    assert m.probs.shape == (2, 2, 5)
    assert torch.allclose(m.probs[0, 0], torch.tensor([0, 1.0, 0, 0, 0]))
    assert torch.allclose(m.probs[0, 1], torch.tensor([0, 0, 0.5, 0.5, 0]))
    assert torch.allclose(m.probs[1, 0], torch.tensor([0.5, 0, 0, 0, 0.5]))
    drawn = m.sample(torch.tensor([0] * 200 + [1] * 200), generator=torch.Generator().manual_seed(0))
    assert set(drawn[:200, 0].tolist()) == {1} and set(drawn[:200, 1].tolist()) == {2, 3}
    assert set(drawn[200:, 0].tolist()) == {0, 4}
    with pytest.raises(BadArgumentError, match="class"):
        TokenMarginals.from_tokens(tokens, labels, num_classes=3, vocab_size=5)


def test_var_skip_keeps_the_teachers_first_scales_and_makes_the_rest_in_one_pass():
    teacher = tiny_var_teacher(patch_nums=(1, 2, 3, 4))
    labels = torch.tensor([0, 3, 7, 9])
    ref = teacher.sample(labels, seed=5)
    splits = [1, 4, 9, 16]
    for skip in (1, 2, 4):
        out = skip_sample(teacher, labels, skip=skip, seed=5)
        assert out.shape == ref.shape and out.dtype == torch.long
        kept = sum(splits[: 4 - skip])
        assert torch.equal(out[:, :kept], ref[:, :kept])  # same generator stream up to the cut
        assert torch.equal(out, skip_sample(teacher, labels, skip=skip, seed=5))
    # skip-1: the last scale's input is exact, so only the (batched vs cached) arithmetic differs from the teacher.
    out = skip_sample(teacher, labels, skip=1, seed=5)
    assert (out == ref).float().mean() > 0.95
    with pytest.raises(BadArgumentError, match="skip"):
        skip_sample(teacher, labels, skip=5, seed=0)


def test_llamagen_skip_decodes_a_prefix_then_draws_the_rest_from_marginals():
    teacher = tiny_llamagen_teacher()
    labels = torch.arange(10)
    ref = teacher.sample(labels, seed=3)
    m = TokenMarginals.from_tokens(ref, labels, num_classes=10, vocab_size=64)
    out = skip_sample(teacher, labels, marginals=m, skip=6, seed=3)
    assert torch.equal(out[:, :10], ref[:, :10])
    # One sample per class: the marginals are point masses on that sample's tokens.
    assert torch.equal(out[:, 10:], ref[:, 10:])
    assert torch.equal(skip_sample(teacher, labels, marginals=m, skip=16, seed=0), ref)


@pytest.mark.parametrize("family", ["var", "llamagen"])
def test_bench_counts_the_baselines_work(family):
    teacher = tiny_var_teacher(patch_nums=(1, 2, 3, 4)) if family == "var" else tiny_llamagen_teacher()
    methods = {m.name: m for m in build_methods("baseline", teacher=teacher, names=["skip-2", "onestep"],
                                                marginal_samples_per_class=2)}
    labels = torch.tensor([1, 2])
    steps = 4 if family == "var" else 16
    expected_skip = steps - 2 + 1 if family == "var" else steps - 2
    assert measure_counts(methods["skip-2"], labels).ar_steps == expected_skip
    assert measure_counts(methods["onestep"], labels).ar_steps == 0
    assert methods["onestep"].generate_tokens(labels, 0).shape == (2, 30 if family == "var" else 16)
    with pytest.raises(BadArgumentError, match="baseline"):
        build_methods("baseline", teacher=teacher, names=["skip-x"])
