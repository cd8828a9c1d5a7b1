"""DD2 training from a recipe (`ardistill train --recipe dd2/...`): the typed recipe refuses bad values in one line;
a run goes teacher pool → GTS (head, then whole) → CSD through the shared loop and ends in a student folder that
`ardistill.load_student` reads; an interrupted run resumed gives bit-identical weights; the CSD update order, the
optimiser's per-network moments and the generator-only EMA are what the method says. var-toy-s, tiny settings."""

import json

import pytest
import torch

import ardistill
from ardistill.cli import main
from ardistill.errors import ArdistillError
from ardistill.io import load_state_dict_file
from ardistill.methods.dd2.family import family_adapter
from ardistill.methods.dd2.recipe import load_dd2_recipe
from ardistill.methods.dd2.train import CSDBatches, csd_train_config, train_dd2_student

TEACHER = "var-toy-s"

TINY = f"""kind: dd2-student
name: dd2-tiny
teacher: {TEACHER}
sampling: {{top_k: 8}}
network: {{head_width: 32, head_depth: 2, generator_t: 0.7}}
pool: {{num: 16, batch_size: 8}}
gts: {{batch_size: 4, head_steps: 3, full_steps: 2, ckpt_every: 2, log_every: 1}}
csd: {{steps: 4, batch_size: 4, guidance_steps: 2, ckpt_every: 1, log_every: 1, lr: 1.0e-3, warmup_steps: 1}}
eval: {{every: 0, num: 16}}
"""


@pytest.fixture(scope="module")
def teacher():
    torch.set_num_threads(1)
    return ardistill.load_teacher(TEACHER)


def write(tmp_path, text: str = TINY, name: str = "dd2-tiny.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("edit, key, words", [
    ("csd: {lr: \"fast please\"}", "csd.lr", "number"),
    ("csd: {stpes: 3}", "csd.stpes", "steps"),
    ("csd: {steps: 0}", "csd.steps", "≥ 1"),
    ("gts: {t_min: 0.5, t_max: 0.4}", "gts.t_min", "t_min < t_max"),
    ("network: {code_scale: -1.0}", "network.code_scale", "> 0"),
    ("network: {generator_t: 1.5}", "network.generator_t", "(0, 1]"),
    ("network: {generator_prefix_scale: -0.5}", "network.generator_prefix_scale", "≥ 0"),
    ("csd: {schedule: wobbly}", "csd.schedule", "constant"),
])
def test_recipe_errors_are_one_line_and_name_the_key(tmp_path, edit, key, words):
    path = write(tmp_path, f"kind: dd2-student\nteacher: {TEACHER}\n{edit}\n")
    with pytest.raises(ArdistillError) as e:
        load_dd2_recipe(path)
    message = str(e.value)
    assert "\n" not in message and key in message and words in message, message


def test_missing_teacher_and_cli_refusals(tmp_path, capsys):
    with pytest.raises(ArdistillError, match="teacher"):
        load_dd2_recipe(write(tmp_path, "kind: dd2-student\n"))
    with pytest.raises(SystemExit) as e:
        main(["train", "--recipe", str(write(tmp_path)), "--trajectories", str(tmp_path), "--out", str(tmp_path / "x")])
    assert e.value.code == 2 and "--trajectories is for DD recipes" in capsys.readouterr().err


def test_update_order_and_batches_are_pure_functions_of_the_step(teacher, tmp_path):
    recipe = load_dd2_recipe(write(tmp_path))
    batches = CSDBatches(recipe, family_adapter(teacher))
    assert [batches.is_guidance_step(s) for s in range(6)] == [True, True, False] * 2
    first, again = batches(0, 0), batches(0, 0)
    assert first.keys() == again.keys() and all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["eps"], batches(1, 0)["eps"])
    L, C = teacher.tokens_per_image, teacher.codebook.shape[1]
    assert first["t"].shape == (4, 2, L) and first["noise"].shape == (4, 2, L, C)  # guidance: m = 2 draws
    assert batches(2, 0)["t"].shape == (4, L) and batches(2, 0)["noise"].shape == (4, L, C)  # generator step
    drawn = CSDBatches(load_dd2_recipe(write(tmp_path, TINY.replace("guidance_steps: 2,", "guidance_steps: 2, generator_noise_draws: 3,"))),
                       family_adapter(teacher))
    assert drawn(2, 0)["t"].shape == (4, 3, L) and drawn(2, 0)["noise"].shape == (4, 3, L, C)  # m_G = 3 CSD draws
    assert drawn(0, 0)["t"].shape == (4, 2, L)  # the guidance steps keep their m
    cfg = csd_train_config(recipe)  # generator-update counts × (K + 1) optimiser steps
    assert (cfg.steps, cfg.warmup_steps, cfg.ckpt_every, cfg.log_every, cfg.weight_decay) == (12, 3, 3, 3, 0.0)


def test_train_resume_load_and_sample(teacher, tmp_path):
    path = write(tmp_path)
    recipe = load_dd2_recipe(path)
    whole = train_dd2_student(teacher, recipe, tmp_path / "whole", progress=False)
    card = json.loads((tmp_path / "whole" / "student.json").read_text())
    assert card["format"] == "ardistill-dd2-student" and card["generator_steps"] == 4
    assert card["sampling"]["top_k"] == 8 and set(card["seconds"]) == {"pool", "adaptation", "gts", "csd", "total"}
    # the generator's input reaches the card (prefix scale left out: the noise level) and the loaded student
    assert (card["generator_t"], card["generator_prefix_scale"]) == (0.7, 0.7)
    assert (whole.model.generator_t, whole.model.generator_prefix_scale) == (0.7, 0.7)
    state = torch.load(tmp_path / "whole" / "csd" / "checkpoint.pt", weights_only=True)
    # one optimiser, two networks: each parameter's moments saw only its own network's updates (ψ 8, G 4)
    assert {float(v["step"]) for v in state["optimizer"]["state"].values()} == {4.0, 8.0}
    assert set(state["ema"]) <= set(whole.model.state_dict())  # the EMA averages the generator only
    # every optimiser step logged: K = 2 guidance steps, then the generator step (log_every counts generator steps)
    log = [json.loads(line) for line in (tmp_path / "whole" / "csd" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "step" in r and "loss" in r] == [3, 6, 9, 12]
    assert all(r["loss"] == r["csd"] and r["fcs"] > 0 for r in log if "loss" in r)

    # interrupted after 2 generator steps (its checkpoint), then resumed to 4: the same weights, bit for bit
    with pytest.raises(ArdistillError, match="--resume"):
        train_dd2_student(teacher, recipe, tmp_path / "whole", progress=False)
    train_dd2_student(teacher, recipe.overridden({"csd.steps": 2}), tmp_path / "split", progress=False)
    train_dd2_student(teacher, recipe, tmp_path / "split", resume=True, progress=False)
    a, b = (load_state_dict_file(tmp_path / d / "student.safetensors") for d in ("whole", "split"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    loaded = ardistill.load_student(tmp_path / "whole", teacher=teacher)
    assert loaded.method == "dd2"
    labels = torch.tensor([1, 2])
    assert torch.equal(loaded.sample(labels, seed=3), whole.sample(labels, seed=3))
    assert loaded.sample(labels, seed=3).shape == (2, teacher.tokens_per_image)

    # a pool made with other settings is refused on resume, not silently reused
    other = recipe.overridden({"pool.seed": 8})
    with pytest.raises(ArdistillError, match="other settings"):
        train_dd2_student(teacher, other, tmp_path / "whole", resume=True, progress=False)


def test_performance_alignment_trains_guidance_on_the_ema_generator_then_more_csd(teacher, tmp_path):
    recipe = load_dd2_recipe(write(tmp_path)).overridden({"csd.steps": 2, "alignment.guidance_steps": 2,
                                                          "alignment.csd_steps": 1})
    train_dd2_student(teacher, recipe, tmp_path / "run", progress=False)
    csd = torch.load(tmp_path / "run" / "csd" / "checkpoint.pt", weights_only=True)
    align = torch.load(tmp_path / "run" / "align" / "checkpoint.pt", weights_only=True)
    for k, v in csd["ema"].items():  # the generator entering CSD-2 is CSD's EMA, untouched by the alignment
        assert torch.equal(align["model"][f"generator.{k}"], v), k
    changed = [k for k in align["model"] if k.startswith("guidance.") and not torch.equal(align["model"][k], csd["model"][k])]
    assert changed  # ψ trained
    assert align["step"] == 2
    card = json.loads((tmp_path / "run" / "student.json").read_text())
    assert card["generator_steps"] == 3 and card["alignment_steps"] == 2
    assert (tmp_path / "run" / "csd-2" / "checkpoint.pt").is_file()
