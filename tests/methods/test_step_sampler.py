"""The step sampler every method drives a teacher through (`teacher.start_steps`, `ardistill.sampling.steps`).

Both families: stepping a run is the official sampler's stream; the logits a step reports are the teacher-forced
`sampling_probs`; choosers (given tokens, argmax, per-step None) work; prefix starts; caches are freed; bad use is a
one-line error.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from ardistill.errors import BadArgumentError
from ardistill.sampling.steps import argmax_tokens, given_tokens

sys.path.insert(0, str(Path(__file__).resolve().parent / "dd"))
from trajectory_teachers import tiny_llamagen_teacher, tiny_var_teacher  # noqa: E402

SETTINGS = {"var": dict(cfg=2.0, top_k=8, top_p=0.9, temperature=1.1), "llamagen": dict(cfg=2.5, top_k=8, top_p=0.9, temperature=1.1)}


@pytest.fixture(scope="module", params=["var", "llamagen"])
def teacher(request):
    return tiny_var_teacher(patch_nums=(1, 2, 3, 4)) if request.param == "var" else tiny_llamagen_teacher()


def _caches_empty(teacher) -> bool:
    return all(getattr(m, "kv_cache", None) is None for m in teacher.network.modules())


def test_stepping_is_the_official_stream(teacher):
    labels = torch.tensor([0, 3, 7])
    s = SETTINGS[teacher.family]
    with teacher.start_steps(labels, seed=11, **s) as run:
        assert run.num_steps == teacher.num_steps and sum(run.step_sizes) == teacher.tokens_per_image
        steps = []
        while not run.done:
            steps.append(run.advance())
        tokens = run.tokens()
    assert _caches_empty(teacher)
    assert [t.shape[1] for t in steps] == list(teacher.step_sizes)
    assert torch.equal(tokens, teacher.sample(labels, seed=11, **s))


def test_step_logits_are_the_teacher_forced_sampling_probs(teacher):
    labels = torch.tensor([1, 4])
    s = SETTINGS[teacher.family]
    probs = []
    with teacher.start_steps(labels, seed=3, **s) as run:
        while not run.done:
            _, logits = run.advance(return_logits=True)
            probs.append(logits.softmax(-1))
        tokens = run.tokens()
    stepped = torch.cat(probs, dim=1)  # [B, L, V]
    forced = teacher.sampling_probs(labels, tokens, **s)
    assert forced.shape == stepped.shape
    assert torch.allclose(forced, stepped, atol=1e-4)
    # filtering is applied the same way: the same entries are excluded
    assert torch.equal(forced == 0, stepped == 0)


def test_given_tokens_and_argmax_choosers(teacher):
    labels = torch.tensor([2, 5])
    s = SETTINGS[teacher.family]
    target = teacher.sample(labels, seed=0, **s)
    with teacher.start_steps(labels, seed=99, **s) as run:
        assert torch.equal(run.run(choose=given_tokens(target)), target)
    with teacher.start_steps(labels, **s) as a:
        greedy = a.run(choose=argmax_tokens)
    with teacher.start_steps(labels, seed=5, **s) as b:
        assert torch.equal(greedy, b.run(choose=argmax_tokens))  # no randomness used
    # a chooser returning None = the official draw, decided per step
    with teacher.start_steps(labels, seed=7, **s) as run:
        ref = run.run()
    with teacher.start_steps(labels, seed=7, **s) as run:
        got = run.run(choose=lambda lg, i, pos: None)
    assert torch.equal(got, ref)


def test_prefix_start_continues_the_given_tokens(teacher):
    labels = torch.tensor([0, 9])
    s = SETTINGS[teacher.family]
    ref = teacher.sample(labels, seed=4, **s)
    n = sum(teacher.step_sizes[:2])
    with teacher.start_steps(labels, seed=4, prefix=ref[:, :n], **s) as run:
        assert run.step == 2
        out = run.run()
    assert torch.equal(out[:, :n], ref[:, :n]) and out.shape == ref.shape
    # the continuation conditions on the prefix: its logits match the teacher-forced distribution of `out`
    with teacher.start_steps(labels, seed=4, prefix=out[:, :n], **s) as run:
        _, logits = run.advance(choose=given_tokens(out), return_logits=True)
    forced = teacher.sampling_probs(labels, out, **s)[:, run.positions(2).start:run.positions(2).stop]
    assert torch.allclose(logits.softmax(-1), forced, atol=1e-4)


def test_bad_use_is_a_one_line_error(teacher):
    labels = torch.tensor([1])
    with teacher.start_steps(labels, seed=0, **SETTINGS[teacher.family]) as run:
        with pytest.raises(BadArgumentError, match="chooser returned tokens of shape"):
            run.advance(lambda lg, i, pos: torch.zeros(1, 99, dtype=torch.long))
        with pytest.raises(BadArgumentError, match="start a new one"):
            run.advance()
    assert _caches_empty(teacher)
    with teacher.start_steps(labels, seed=0, **SETTINGS[teacher.family]) as run:
        with pytest.raises(BadArgumentError, match="cannot run"):
            run.run(stop=teacher.num_steps + 1)
        run.run()
        with pytest.raises(BadArgumentError, match="finished"):
            run.advance()
    if teacher.family == "var":  # a VAR prefix must hold whole scales
        with pytest.raises(BadArgumentError, match="whole scales"):
            teacher.start_steps(labels, prefix=torch.zeros(1, 3, dtype=torch.long), **SETTINGS["var"])


def test_var_code_handoff_and_one_pass_finish_are_capabilities():
    var, llamagen = tiny_var_teacher(patch_nums=(1, 2, 3, 4)), tiny_llamagen_teacher()
    assert {"prefix_draws", "one_pass_finish"} <= var.step_features
    assert not llamagen.step_features
    labels = torch.tensor([3, 6])
    with var.start_steps(labels, seed=2, stop=2, **SETTINGS["var"]) as run:
        run.run(stop=2)
        done = run.finish_in_one_pass()
    assert done.shape == (2, var.tokens_per_image) and _caches_empty(var)
