"""DD student training: the loss goes down, resume equals an uninterrupted run, NaN stops, and the CLI paths."""

import json

import pytest
import torch

import ardistill.methods.dd.train as dd_train
from ardistill import registry
from ardistill.cli import main
from ardistill.errors import ArdistillError
from ardistill.io import atomic_save_safetensors, load_state_dict_file
from ardistill.methods.dd.train import DDTrainSettings, dd_loss, position_weights, train_student
from ardistill.training.loop import TrainConfig

from dd_student_fixtures import llamagen_teacher, make_trajectories, var_teacher


@pytest.fixture(scope="module")
def var_data(tmp_path_factory):
    teacher = var_teacher()
    return teacher, make_trajectories(teacher, tmp_path_factory.mktemp("traj") / "var")


def _cfg(**kw):
    base = dict(steps=12, lr=3e-3, warmup_steps=2, schedule="cosine", grad_accum=2, ema_decay=0.9, ckpt_every=6, log_every=3, seed=0)
    return TrainConfig(**{**base, **kw})


def test_loss_decreases_for_both_families(tmp_path, var_data):
    lg = llamagen_teacher()
    cases = [(var_data[0], var_data[1], (0, 1)), (lg, make_trajectories(lg, tmp_path / "lg"), (0, 3))]
    for i, (teacher, ds, t_list) in enumerate(cases):
        settings = DDTrainSettings(t_list=t_list, split=t_list[1], batch_size=16)
        _, result = train_student(teacher, ds, settings, _cfg(steps=24, grad_accum=1, log_every=4), tmp_path / f"run{i}", progress=False)
        first, last = result.losses[0][1], result.losses[-1][1]
        assert last < 0.85 * first, result.losses


def test_resume_equals_uninterrupted(tmp_path, var_data, monkeypatch):
    teacher, ds = var_data
    settings = DDTrainSettings(t_list=(0, 1), split=1, batch_size=8)
    train_student(teacher, ds, settings, _cfg(), tmp_path / "full", progress=False)

    original = dd_train.TrajectoryBatches.__call__

    def interrupted(self, step, micro):
        if step == 8:
            raise RuntimeError("killed")
        return original(self, step, micro)

    monkeypatch.setattr(dd_train.TrajectoryBatches, "__call__", interrupted)
    with pytest.raises(RuntimeError, match="killed"):
        train_student(teacher, ds, settings, _cfg(), tmp_path / "resumed", progress=False)
    monkeypatch.setattr(dd_train.TrajectoryBatches, "__call__", original)
    assert torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)["step"] == 6
    train_student(teacher, ds, settings, _cfg(), tmp_path / "resumed", resume=True, progress=False)
    a = load_state_dict_file(tmp_path / "full" / "student.safetensors")
    b = load_state_dict_file(tmp_path / "resumed" / "student.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    card = json.loads((tmp_path / "resumed" / "student.json").read_text())
    assert card["t_list"] == [0, 1] and card["split"] == 1 and card["teacher"] == teacher.name and card["steps"] == 12


def test_nan_loss_stops_with_last_good_checkpoint(tmp_path, var_data, monkeypatch):
    teacher, ds = var_data
    real = dd_train.dd_loss

    def nan_at_4(model, batch, *args):
        loss, metrics = real(model, batch, *args)
        return (loss * float("nan") if model.nan_now else loss), metrics

    calls = {"n": 0}

    def counting(model, batch, *args):
        calls["n"] += 1
        model.nan_now = calls["n"] > 4
        return nan_at_4(model, batch, *args)

    monkeypatch.setattr(dd_train, "dd_loss", counting)
    with pytest.raises(ArdistillError, match=r"loss became nan at step 4.*Last good checkpoint: step 3") as e:
        train_student(teacher, ds, DDTrainSettings(t_list=(0, 1), split=1, batch_size=8),
                      _cfg(grad_accum=1, ckpt_every=3), tmp_path / "nan", progress=False)
    assert "\n" not in str(e.value)


def test_bad_t_list_and_wrong_dataset(tmp_path, var_data):
    teacher, ds = var_data
    with pytest.raises(ArdistillError, match="t_list"):
        train_student(teacher, ds, DDTrainSettings(t_list=(1, 2), split=2), _cfg(), tmp_path / "a", progress=False)
    with pytest.raises(ArdistillError, match="split must lie in"):  # below t2, or past the last scale
        train_student(teacher, ds, DDTrainSettings(t_list=(0, 2), split=1), _cfg(), tmp_path / "a", progress=False)
    with pytest.raises(ArdistillError, match="split must lie in"):
        train_student(teacher, ds, DDTrainSettings(t_list=(0, 1), split=len(teacher.patch_nums) + 1), _cfg(), tmp_path / "a", progress=False)
    with pytest.raises(ArdistillError, match="position_weighting must be one of"):
        train_student(teacher, ds, DDTrainSettings(t_list=(0, 1), split=1, position_weighting="scale"), _cfg(), tmp_path / "a", progress=False)
    with pytest.raises(ArdistillError, match="trajectories were made by"):
        train_student(var_teacher("another-teacher"), ds, DDTrainSettings(t_list=(0, 1), split=1), _cfg(), tmp_path / "b", progress=False)


def run(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_cli_train_and_sample(tmp_path, var_data, monkeypatch, capsys, _isolated_home):
    teacher, ds = var_data
    # Register the tiny teacher by name with its weights in the weights folder, as a user's official files would be.
    files = (registry.WeightFile("transformer", "var-dd-tiny.safetensors"), registry.WeightFile("tokenizer", "var-dd-tiny-vae.safetensors"))
    spec = registry.ModelSpec(name=teacher.name, family="var", config=teacher.transformer.config, files=files,
                              tokens_per_image=teacher.tokens_per_image, image_size=teacher.image_size)
    registry.list_models()
    monkeypatch.setitem(registry._MODELS, teacher.name, spec)
    atomic_save_safetensors(teacher.transformer.state_dict(), _isolated_home / "var-dd-tiny.safetensors")
    atomic_save_safetensors(teacher.vae.state_dict(), _isolated_home / "var-dd-tiny-vae.safetensors")
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(f"kind: dd-student\nname: tiny\nteacher: {teacher.name}\nt_list: [0, 1]\nsplit: 1\nbatch_size: 8\n"
                      "train: {steps: 2, lr: 1.0e-3, ckpt_every: 1, log_every: 1}\n")
    out = tmp_path / "student"
    code, _, err = run(["train", "--recipe", recipe, "--out", out, "--trajectories", ds.root], capsys)
    assert code == 0, err
    assert (out / "student.safetensors").is_file() and (out / "student.json").is_file()
    code, _, err = run(["train", "--recipe", recipe, "--out", out, "--trajectories", ds.root], capsys)
    assert code == 2 and "--resume" in err
    code, _, err = run(["train", "--recipe", recipe, "--out", out, "--trajectories", ds.root, "--resume", "--steps", "3"], capsys)
    assert code == 0, err
    png = tmp_path / "grid.png"
    code, out_text, err = run(["sample", "--student", out, "--steps", "2", "--num-images", "3", "--class", "0,3", "--out", png, "--save-tokens"], capsys)
    assert code == 0, err
    assert png.is_file() and load_state_dict_file(png.with_suffix(".tokens.safetensors"))["tokens"].shape == (3, 14)
    code, _, err = run(["sample", "--student", out, "--steps", "3", "--out", png], capsys)
    assert code == 2 and "1 or 2 steps" in err
    code, _, err = run(["train", "--recipe", tmp_path / "missing.yaml"], capsys)
    assert code == 2 and "not found" in err
    code, _, err = run(["train", "--recipe", recipe, "--out", tmp_path / "x", "--trajectories", tmp_path], capsys)
    assert code == 2 and "no trajectory dataset" in err
    code, _, err = run(["sample", "--student", "dd-var-d16", "--out", png], capsys)
    assert code == 2 and "var-d16.pth" in err


def test_toy_eval_reports_fid_and_class_accuracy():
    """The periodic evaluation of built-in teachers, on a random 64 px VAR teacher (the evaluator's resolution)."""
    import math

    from dd_student_fixtures import randomize_

    from ardistill.methods.dd.train import new_student_model, toy_eval_fn
    from ardistill.models.dd.config import DDStudentConfig
    from ardistill.models.var.config import VARConfig, VQVAEConfig
    from ardistill.models.var.transformer import VARTransformer
    from ardistill.models.var.vqvae import VQVAE
    from ardistill.teachers.var import VARTeacher

    pn = (1, 2, 4, 8)
    vae = VQVAEConfig(vocab_size=32, z_channels=8, ch=32, ch_mult=(1, 2, 2, 4), num_res_blocks=1, patch_nums=pn)
    cfg = VARConfig(depth=2, embed_dim=32, num_heads=2, num_classes=12, patch_nums=pn, vocab_size=32, z_channels=8,
                    drop_path_rate=0.0, vae=vae)
    teacher = VARTeacher("var-64px-tiny", randomize_(VARTransformer(cfg), 1), randomize_(VQVAE(vae), 2))
    model = new_student_model(teacher, seed=0)
    metrics = toy_eval_fn(teacher, DDStudentConfig("var", teacher.name, (0, 2), 2), num=12, seed=0)(model, 0)
    assert math.isfinite(metrics["fid"]) and metrics["fid"] > 0 and 0.0 <= metrics["class_acc"] <= 1.0
    assert model.training  # handed back in training mode


def test_step_weighting_gives_every_ar_step_the_same_weight():
    counts = torch.tensor([0, 1, 5, 14])  # VAR scales 1x1, 2x2, 3x3
    w = position_weights(counts, "step")
    assert w.shape == (14,)
    assert torch.allclose(torch.stack([w[0:1].sum(), w[1:5].sum(), w[5:14].sum()]), torch.ones(3))
    assert torch.equal(position_weights(counts, "token"), torch.ones(14))
    assert torch.equal(position_weights(torch.arange(9), "step"), torch.ones(8))  # LlamaGen: one token per step


def test_step_weighted_loss_is_the_mean_over_steps_of_the_per_step_loss():
    """With CE_i known per position, the `step` loss is mean over (sample, noise step) of the step's mean CE."""
    counts = torch.tensor([0, 1, 5])
    L, V, C = 5, 7, 3
    logits = torch.randn(2, L, V)

    class Fixed(torch.nn.Module):
        def forward(self, labels, x, t):
            return torch.zeros(2, L, C), logits

    tokens = torch.randint(V, (2, L))
    batch = dict(tokens=tokens, noise=torch.randn(2, L, C), t=torch.tensor([0, 1]), labels=torch.zeros(2, dtype=torch.long))
    loss, stats = dd_loss(Fixed(), batch, torch.zeros(V, C), counts, 0.0, position_weights(counts, "step"))
    ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), tokens, reduction="none")  # [2, L]
    expected = (ce[0, :1].mean() + ce[0, 1:].mean() + ce[1, 1:].mean()) / 3  # sample 1 has t=1: step 0 is data
    assert torch.allclose(loss, expected, atol=1e-6)
    assert stats["acc"] == pytest.approx(((logits.argmax(-1) == tokens)[0].sum() + (logits.argmax(-1) == tokens)[1, 1:].sum()).item() / 9)


def test_step_weighting_trains(tmp_path, var_data):
    teacher, ds = var_data
    settings = DDTrainSettings(t_list=(0, 1), split=1, batch_size=16, position_weighting="step")
    student, result = train_student(teacher, ds, settings, _cfg(steps=24, grad_accum=1, log_every=4), tmp_path / "step", progress=False)
    assert result.losses[-1][1] < 0.85 * result.losses[0][1], result.losses
    assert json.loads((tmp_path / "step" / "student.json").read_text())["position_weighting"] == "step"
