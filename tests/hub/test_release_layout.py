"""Official files are found where the Hub or a manual download puts them (release layout, flat, Hub cache snapshot),
and `load_student` / `load_teacher` accept a release file's path. Files hold random weights in the official layout."""

import pytest
import torch
from local_hub import COMMITS, LLAMAGEN_NAME, STUDENT_NAME, VAR_NAME, official_var_files, official_var_student_file

import ardistill
from ardistill.errors import ArdistillError
from ardistill.registry import find_weight_file, get_model_spec


@pytest.fixture
def var_dir(tmp_path, hub_models):
    """The tiny VAR teacher's files in a weights folder, and its loaded teacher (offline: nothing is downloaded)."""
    for name, content in official_var_files().items():
        (tmp_path / name).write_bytes(content)
    return tmp_path, ardistill.load_teacher(VAR_NAME, weights_dir=tmp_path)


def test_load_student_accepts_a_release_file_path(var_dir):
    folder, teacher = var_dir
    path = folder / "VAR-DD" / "var-d16.pth"  # the DD release's name and layout (random weights for the tiny teacher)
    path.parent.mkdir()
    path.write_bytes(official_var_student_file())
    student = ardistill.load_student(path, teacher=teacher)
    assert student.name == "dd-var-d16" and student.config.t_list == (0, 5)  # recognised by its release file name
    params = torch.load(path, weights_only=True)["trainer"]["ema_parameters"]
    assert all(torch.equal(p, params[k]) for k, p in student.model.named_parameters())  # every weight from the file
    assert ardistill.load_student(str(path), teacher=teacher).name == "dd-var-d16"  # a str path too


def test_renamed_release_file_is_resolved_through_its_teacher(var_dir):
    folder, teacher = var_dir
    path = folder / "my-student.pth"
    path.write_bytes(official_var_student_file())
    student = ardistill.load_student(path, teacher=teacher)
    assert student.name == STUDENT_NAME  # the registered student of this teacher
    tokens = student.sample([0, 1, 2], seed=0)
    assert tokens.shape == (3, teacher.tokens_per_image) and torch.equal(tokens, student.sample([0, 1, 2], seed=0))
    with pytest.raises(ArdistillError, match="not a known DD release file name") as e:
        ardistill.load_student(path, teacher=object())
    assert "var-d16.pth" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ArdistillError, match="no such file"):
        ardistill.load_student(folder / "VAR-DD" / "missing.pth", teacher=teacher)


@pytest.mark.parametrize("layout", ["release", "flat"])
def test_manual_download_in_the_weights_folder_is_found_offline(tmp_path, hub_models, layout):
    rel = "VAR-DD/var-tiny.pth" if layout == "release" else "var-tiny.pth"
    (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / rel).write_bytes(b"x")
    assert find_weight_file(get_model_spec(STUDENT_NAME), "student", tmp_path) == tmp_path / rel


def test_load_teacher_accepts_a_release_file_in_the_hub_cache(served, monkeypatch):
    monkeypatch.delenv("ARDISTILL_HOME")
    spec = get_model_spec(LLAMAGEN_NAME)
    gpt_path = find_weight_file(spec, "transformer")  # downloaded into the Hub cache snapshot of the pinned commit
    find_weight_file(spec, "tokenizer")
    assert gpt_path.parent.name == COMMITS["FoundationVision/LlamaGen"]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    n = len(served.requests)
    teacher = ardistill.load_teacher(gpt_path)  # recognised from its keys; its tokenizer is the file next to it
    assert teacher.name == LLAMAGEN_NAME and teacher.sample([3], seed=0).shape == (1, 16)
    assert len(served.requests) == n
