"""`torchrun --nproc-per-node 2 -m ardistill train --recipe R`: the DD student trained on 2 gloo ranks (data split by
rank, gradients all-reduced, rank 0 writing) follows the single-process run at the same global batch, loss for loss,
and ends with the same weights up to floating-point noise."""

import pytest
import torch
from launch import run_torchrun
from trajectory_teachers import TINY_VAR_NAME, tiny_var_spec, tiny_var_teacher

from ardistill import registry
from ardistill.cli import main
from ardistill.io import load_state_dict_file


@pytest.fixture
def tiny_home(monkeypatch, tmp_path):
    """The tiny VAR teacher registered, with seeded random weights saved as its weight files in $ARDISTILL_HOME
    (the workers are fresh processes: they register the spec in entry.py and find the files through the variable)."""
    spec = tiny_var_spec()
    monkeypatch.setitem(registry._MODELS, spec.name, spec)
    home = tmp_path / "home"
    home.mkdir()
    teacher = tiny_var_teacher()
    torch.save(teacher.transformer.state_dict(), home / "var_tiny_traj.pth")
    torch.save(teacher.vae.state_dict(), home / "vae_tiny_traj.pth")
    monkeypatch.setenv("ARDISTILL_HOME", str(home))
    return home


def test_two_rank_training_equals_one_process(tiny_home, tmp_path):
    traj = tmp_path / "traj"
    with pytest.raises(SystemExit) as e:
        main(["trajectories", "--teacher", TINY_VAR_NAME, "-n", "32", "--shard-size", "8", "--batch-size", "8",
              "--flow-steps", "50", "--seed", "1", "--out", str(traj)])
    assert e.value.code == 0
    recipe = tmp_path / "dd-tiny.yaml"
    recipe.write_text(f"""kind: dd-student
name: dd-tiny
teacher: {TINY_VAR_NAME}
trajectories: {traj}
t_list: [0, 1]
split: 1
batch_size: 8
train: {{steps: 6, lr: 1.0e-3, warmup_steps: 0, schedule: constant, grad_clip: 1.0, ema_decay: 0.0,
         ckpt_every: 3, log_every: 1, seed: 0}}
""")
    with pytest.raises(SystemExit) as e:
        main(["train", "--recipe", str(recipe), "--out", str(tmp_path / "one")])
    assert e.value.code == 0
    run_torchrun(2, ["train", "--recipe", str(recipe), "--out", str(tmp_path / "two")], timeout=300)
    losses = [torch.load(tmp_path / d / "checkpoint.pt", weights_only=True)["losses"] for d in ("one", "two")]
    assert [s for s, _ in losses[0]] == [s for s, _ in losses[1]] == list(range(1, 7))
    assert torch.allclose(torch.tensor([v for _, v in losses[1]]), torch.tensor([v for _, v in losses[0]]), rtol=1e-4)
    one, two = (load_state_dict_file(tmp_path / d / "student.safetensors") for d in ("one", "two"))
    assert one.keys() == two.keys()
    for k in one:
        assert torch.allclose(one[k], two[k], rtol=1e-4, atol=1e-5), k


def test_two_rank_dd2_training_equals_one_process(tiny_home, tmp_path):
    """DD2 (pool → GTS → CSD): every stage's batches split over 2 ranks give the single-process losses and weights."""
    recipe = tmp_path / "dd2-tiny.yaml"
    recipe.write_text(f"""kind: dd2-student
teacher: {TINY_VAR_NAME}
network: {{head_width: 16, head_depth: 1}}
pool: {{num: 8, batch_size: 4}}
gts: {{batch_size: 4, head_steps: 2, full_steps: 2, log_every: 1}}
csd: {{steps: 3, batch_size: 4, guidance_steps: 1, log_every: 1, ckpt_every: 2, lr: 1.0e-3, warmup_steps: 0}}
""")
    with pytest.raises(SystemExit) as e:
        main(["train", "--recipe", str(recipe), "--out", str(tmp_path / "one")])
    assert e.value.code == 0
    run_torchrun(2, ["train", "--recipe", str(recipe), "--out", str(tmp_path / "two")], timeout=300)
    for stage in ("gts-head", "gts-full", "csd"):
        losses = [torch.load(tmp_path / d / stage / "checkpoint.pt", weights_only=True)["losses"] for d in ("one", "two")]
        assert [s for s, _ in losses[0]] == [s for s, _ in losses[1]]
        assert torch.allclose(torch.tensor([v for _, v in losses[1]]), torch.tensor([v for _, v in losses[0]]), rtol=1e-4), stage
    one, two = (load_state_dict_file(tmp_path / d / "student.safetensors") for d in ("one", "two"))
    assert one.keys() == two.keys()
    for k in one:
        assert torch.allclose(one[k], two[k], rtol=1e-4, atol=1e-5), k
