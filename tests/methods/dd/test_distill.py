"""`ardistill distill`: trajectories → training → benchmark → report in one folder, resumable, one-line errors."""

import json

import pytest
import torch
from dd_student_fixtures import var_teacher

from ardistill import registry
from ardistill.cli import main
from ardistill.io import atomic_save_safetensors


def run(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


@pytest.fixture
def tiny_teacher_registered(monkeypatch, _isolated_home):
    teacher = var_teacher()
    files = (registry.WeightFile("transformer", "var-dd-tiny.safetensors"), registry.WeightFile("tokenizer", "var-dd-tiny-vae.safetensors"))
    spec = registry.ModelSpec(name=teacher.name, family="var", config=teacher.transformer.config, files=files,
                              tokens_per_image=teacher.tokens_per_image, image_size=teacher.image_size,
                              sampling_defaults=dict(cfg=1.5, top_k=0, top_p=0.0, temperature=1.0))
    registry.list_models()
    monkeypatch.setitem(registry._MODELS, teacher.name, spec)
    atomic_save_safetensors(teacher.transformer.state_dict(), _isolated_home / "var-dd-tiny.safetensors")
    atomic_save_safetensors(teacher.vae.state_dict(), _isolated_home / "var-dd-tiny-vae.safetensors")
    return teacher


def test_distill_runs_every_stage_and_resumes(tmp_path, capsys, tiny_teacher_registered):
    teacher = tiny_teacher_registered
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(f"kind: dd-student\nname: tiny\nteacher: {teacher.name}\nnum_trajectories: 32\nshard_size: 16\n"
                      "trajectory_sampling: {cfg: 1.5, top_k: 0, top_p: 0.0, temperature: 1.0}\nflow: {steps: 8}\n"
                      "t_list: [0, 1]\nsplit: 1\nbatch_size: 8\ntrain: {steps: 3, lr: 1.0e-3, ckpt_every: 1, log_every: 1}\n")
    out = tmp_path / "run"
    argv = ["distill", "--teacher", teacher.name, "--recipe", recipe, "--out", out, "--steps", "1,2", "--fid-samples", "0",
            "--batch-sizes", "2", "--repeats", "1"]
    code, text, err = run(argv, capsys)
    assert code == 0, err
    assert (out / "trajectories" / "manifest.json").is_file()
    assert (out / "student" / "student.safetensors").is_file()
    doc = json.loads((out / "bench" / "bench.json").read_text())
    methods = {r["method"] for r in doc["speed"]}
    assert methods == {"teacher", "dd-1step", "dd-2step"}
    steps = {r["method"]: r["forward_passes_per_image"] for r in doc["speed"]}
    assert steps["dd-1step"] == 1 and steps["dd-2step"] == 2 and steps["teacher"] == 6  # 3 scales × CFG
    report = (out / "report.md").read_text()
    assert "grid-dd-1step.png" in report and "grid-teacher.png" in report and (out / "bench" / "grid-dd-1step.png").is_file()
    # Run again: every stage is found done (the student is not retrained, the dataset not remade).
    before = (out / "student" / "student.safetensors").read_bytes()
    code, text, err = run(argv, capsys)
    assert code == 0, err
    assert "already trained" in text and (out / "student" / "student.safetensors").read_bytes() == before


def test_distill_user_errors_are_one_line(tmp_path, capsys, tiny_teacher_registered):
    code, _, err = run(["distill", "--teacher", "var-d16", "--out", tmp_path / "x"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1  # var-d16's recipe exists, its weights do not
    code, _, err = run(["distill", "--teacher", tiny_teacher_registered.name, "--out", tmp_path / "y"], capsys)
    assert code == 2 and "no DD recipe" in err
    recipe = tmp_path / "r.yaml"
    recipe.write_text("kind: dd-student\nteacher: var-d16\nt_list: [0]\nsplit: 1\n")
    code, _, err = run(["distill", "--teacher", tiny_teacher_registered.name, "--recipe", recipe, "--out", tmp_path / "z"], capsys)
    assert code == 2 and "distils 'var-d16'" in err


TINY_RECIPE = ("kind: dd-student\nname: tiny\nteacher: {teacher}\nnum_trajectories: 32\nshard_size: 16\n"
               "trajectory_sampling: {{cfg: 1.5, top_k: 0, top_p: 0.0, temperature: 1.0}}\nflow: {{steps: 8}}\n"
               "t_list: [0, 1]\nsplit: 1\nbatch_size: 8\ntrain: {{steps: 3, lr: 1.0e-3, ckpt_every: 1, log_every: 1}}\n")


def test_small_run_finishes_with_the_marginal_baseline_skipped(tmp_path, capsys, tiny_teacher_registered):
    """Too few trajectories to estimate every class's token marginals (3 trajectories, 4 classes): the run used to
    fail in the benchmark, after the trajectories and the training; now it finishes, benches what it can (skip-1
    needs no marginals on VAR) and says in bench.json, bench.md and report.md that `onestep` was skipped and why."""
    teacher = tiny_teacher_registered
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY_RECIPE.format(teacher=teacher.name))
    out = tmp_path / "run"
    code, text, err = run(["distill", "--teacher", teacher.name, "--recipe", recipe, "--out", out, "--fid-samples", "0",
                           "--num-trajectories", "3", "--train-steps", "1", "--batch-sizes", "2", "--repeats", "1",
                           "--baselines", "skip-1,onestep"], capsys)
    assert code == 0, err
    doc = json.loads((out / "bench" / "bench.json").read_text())
    assert {r["method"] for r in doc["speed"]} == {"teacher", "dd-1step", "skip-1"}
    assert [s["name"] for s in doc["skipped"]] == ["onestep"] and "too few samples" in doc["skipped"][0]["reason"]
    report = (out / "report.md").read_text()
    assert "Baseline onestep skipped" in report and "grid-onestep.png" not in report and "grid-skip-1.png" in report
    assert "Skipped onestep" in (out / "bench" / "bench.md").read_text()
    assert "warning: baseline onestep skipped" in " ".join(text.split())


def test_distill_refuses_what_the_benchmark_would_reject_before_any_work(tmp_path, capsys, tiny_teacher_registered):
    teacher = tiny_teacher_registered
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY_RECIPE.format(teacher=teacher.name))
    base = ["distill", "--teacher", teacher.name, "--recipe", recipe, "--batch-sizes", "2", "--repeats", "1"]
    cases = [(["--fid-samples", "0", "--baselines", "skip-4"], "K must be in 1..3"),  # 3 scales
             (["--fid-samples", "0", "--baselines", "skp-1"], "unknown baseline"),
             (["--fid-samples", "0", "--batch-sizes", "0"], "--batch-sizes must be ≥ 1"),
             ([], "not a model of the built-in world")]  # toy-FID needs the 12-class world; this teacher has 4
    for i, (extra, message) in enumerate(cases):
        out = tmp_path / f"run{i}"
        code, _, err = run(base + ["--out", out] + extra, capsys)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
        assert not (out / "trajectories").exists()  # refused before the first stage


def test_distill_baselines_none_turns_the_recipes_baselines_off(tmp_path, capsys, tiny_teacher_registered):
    teacher = tiny_teacher_registered
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY_RECIPE.format(teacher=teacher.name) + "baselines: [skip-1]\n")
    out = tmp_path / "run"
    code, _, err = run(["distill", "--teacher", teacher.name, "--recipe", recipe, "--out", out, "--fid-samples", "0",
                        "--num-trajectories", "4", "--train-steps", "1", "--batch-sizes", "2", "--repeats", "1",
                        "--baselines", "none"], capsys)
    assert code == 0, err
    assert {r["method"] for r in json.loads((out / "bench" / "bench.json").read_text())["speed"]} == {"teacher", "dd-1step"}


def test_distill_method_dd2_trains_benches_and_reports_without_trajectories(tmp_path, capsys, tiny_teacher_registered):
    teacher = tiny_teacher_registered
    recipe = tmp_path / "tiny2.yaml"
    recipe.write_text(f"kind: dd2-student\nname: tiny2\nteacher: {teacher.name}\nnetwork: {{head_width: 16, head_depth: 1}}\n"
                      "pool: {num: 8, batch_size: 4}\ngts: {batch_size: 4, head_steps: 2, full_steps: 1}\n"
                      "csd: {steps: 2, batch_size: 4, guidance_steps: 1}\n")
    out = tmp_path / "run2"
    argv = ["distill", "--teacher", teacher.name, "--method", "dd2", "--recipe", recipe, "--out", out, "--steps", "1,2",
            "--fid-samples", "0", "--batch-sizes", "2", "--repeats", "1"]
    code, text, err = run(argv, capsys)
    assert code == 0, err
    assert not (out / "trajectories").exists() and (out / "student" / "student.safetensors").is_file()
    doc = json.loads((out / "bench" / "bench.json").read_text())
    steps = {r["method"]: r["forward_passes_per_image"] for r in doc["speed"]}
    assert set(steps) == {"teacher", "dd2-1step", "dd2-2step"}
    assert steps["dd2-1step"] == 1 and steps["teacher"] == 6  # 2-step: one generator pass + the teacher's last scale
    report = (out / "report.md").read_text()
    assert report.startswith("# Distilled Decoding 2 of") and "grid-dd2-1step.png" in report
    code, text, err = run(argv, capsys)
    assert code == 0 and "already trained" in text
    # options of the other method, and step counts the teacher does not have, are refused in one line
    base = ["distill", "--teacher", teacher.name, "--method", "dd2", "--recipe", recipe, "--out", tmp_path / "e",
            "--fid-samples", "0"]
    for extra, words in ((["--num-trajectories", "4"], "--num-trajectories is for --method dd"),
                         (["--steps", "9"], "--steps must lie in 1 … 3")):
        code, _, err = run([*base, *extra], capsys)
        assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    code, _, err = run(["distill", "--teacher", teacher.name, "--method", "dd3", "--out", tmp_path / "q"], capsys)
    assert code == 2 and "--method must be dd or dd2" in err
