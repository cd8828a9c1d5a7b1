"""DD student sampling: determinism given noise, schedules, data positions kept, teacher-involved paths, folders."""

import dataclasses

import pytest
import torch

from ardistill.errors import ArdistillError, BadArgumentError
from ardistill.methods.dd.student import Student, load_student, nearest_codes
from ardistill.methods.dd.train import new_student_model
from ardistill.models.dd.config import DDStudentConfig

from dd_student_fixtures import llamagen_teacher, var_teacher


@pytest.fixture(scope="module", params=["var", "llamagen"])
def student(request):
    teacher = var_teacher() if request.param == "var" else llamagen_teacher()
    t2 = 2 if request.param == "var" else 4
    cfg = DDStudentConfig(family=teacher.family, teacher=teacher.name, t_list=(0, t2), split=t2)
    return Student(new_student_model(teacher, seed=0), teacher, cfg, name=f"tiny-{request.param}")


def test_one_step_is_deterministic_given_noise(student):
    labels = torch.tensor([0, 1, 2])
    noise = torch.randn(3, student.tokens_per_image, student.code_dim, generator=torch.Generator().manual_seed(1))
    a = student.sample(labels, noise=noise)
    assert a.shape == (3, student.tokens_per_image) and a.dtype == torch.long
    assert torch.equal(a, student.sample(labels, noise=noise.clone()))
    assert torch.equal(student.sample(labels, seed=4), student.sample(labels, seed=4))
    assert not torch.equal(student.sample(labels, seed=4), student.sample(labels, seed=5))
    # batch composition does not change a sample
    assert torch.equal(student.sample(labels[:1], noise=noise[:1]), a[:1])


def test_embeddings_match_tokens_and_split(student):
    labels = torch.tensor([0, 3])
    e = student.sample(labels, seed=0, return_embeddings=True)
    tokens = student.sample(labels, seed=0)
    assert e.shape == (2, student.tokens_per_image, student.code_dim)
    assert torch.equal(nearest_codes(e, student.codebook), tokens)
    ms = student.data_tokens(student.config.split)
    assert torch.equal(e[:, :ms], student.codebook[tokens[:, :ms]])  # argmax part: exact codes
    images = student.teacher.decode_embeddings(e)
    assert images.shape[0] == 2 and images.min() >= 0 and images.max() <= 1


def test_split_at_the_end_takes_every_token_from_the_logits(student):
    """split = number of AR steps (VAR scales / LlamaGen tokens): every position is argmax(logits), the embeddings are
    exactly those codes (the toy recipes' choice, docs/dd.md decision 15)."""
    last = len(student.teacher.patch_nums) if student.config.family == "var" else student.tokens_per_image
    every = Student(student.model, student.teacher, dataclasses.replace(student.config, split=last))
    labels = torch.tensor([0, 3])
    noise = torch.randn(2, student.tokens_per_image, student.code_dim, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        _, logits = student.model(labels, noise, torch.zeros_like(labels))
    tokens = every.sample(labels, noise=noise)
    assert torch.equal(tokens, logits.argmax(-1))
    assert torch.equal(every.sample(labels, noise=noise, return_embeddings=True), student.codebook[tokens])


def test_two_steps_keep_the_first_steps_prefix(student):
    labels = torch.tensor([1, 2])
    noise = torch.randn(2, student.tokens_per_image, student.code_dim, generator=torch.Generator().manual_seed(2))
    one, two = student.sample(labels, noise=noise), student.sample(labels, noise=noise, steps=2)
    m = student.data_tokens(student.config.t_list[1])
    assert torch.equal(one[:, :m], two[:, :m])
    with pytest.raises(BadArgumentError, match="1 or 2 steps"):
        student.sample(labels, steps=3)
    with pytest.raises(BadArgumentError, match="noise must have shape"):
        student.sample(labels, noise=noise[:, :-1])


def test_teacher_involved(student):
    labels = torch.tensor([0, 1])
    noise = torch.randn(2, student.tokens_per_image, student.code_dim, generator=torch.Generator().manual_seed(3))
    t2 = student.config.t_list[1]
    one = student.sample(labels, noise=noise)
    # teacher_start = t2: the teacher samples nothing; the result is the 2-step schedule
    assert torch.equal(student.sample_teacher_involved(labels, teacher_start=t2, split=t2, noise=noise, seed=0),
                       student.sample(labels, noise=noise, steps=2))
    start = 1
    mixed = student.sample_teacher_involved(labels, teacher_start=start, split=t2, noise=noise, seed=0)
    assert torch.equal(mixed[:, : student.data_tokens(start)], one[:, : student.data_tokens(start)])
    assert torch.equal(mixed, student.sample_teacher_involved(labels, teacher_start=start, split=t2, noise=noise, seed=0))
    full = student.sample_teacher_involved(labels, teacher_start=0, split=t2, noise=noise, seed=0)
    assert full.shape == one.shape
    with pytest.raises(BadArgumentError):
        student.sample_teacher_involved(labels, teacher_start=t2 + 1, split=t2, noise=noise)


def test_folder_round_trip_and_teacher_check(student, tmp_path):
    student.save(tmp_path / "s")
    loaded = load_student(tmp_path / "s", teacher=student.teacher)
    labels = torch.tensor([0, 1])
    assert torch.equal(loaded.sample(labels, seed=7, steps=2), student.sample(labels, seed=7, steps=2))
    other = llamagen_teacher() if student.config.family == "var" else var_teacher()
    with pytest.raises(ArdistillError):
        load_student(tmp_path / "s", teacher=other)
    with pytest.raises(ArdistillError, match="not a DD student folder"):
        load_student(tmp_path, teacher=student.teacher)
