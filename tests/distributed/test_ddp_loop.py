"""The shared loop under torchrun (2 gloo ranks): the same losses and final (EMA) weights as one process at the same
global batch, with grad accumulation, clipping, warm-up, a weighted-mean loss; a 2-rank checkpoint resumes on 1 rank."""

import shutil
import sys
from pathlib import Path

import pytest
import torch
from ddp_worker import train
from launch import launch

from ardistill.training.loop import rank_slice

WORKER = Path(__file__).resolve().parent / "ddp_worker.py"


def torchrun_worker(out: Path, steps: int, *extra: str) -> dict:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(WORKER), str(out), str(steps), *extra]
    launch(cmd, before_retry=lambda: shutil.rmtree(out, ignore_errors=True))  # a retry starts this run afresh
    return torch.load(out / "result.pt", weights_only=True)


def assert_close(losses_a, losses_b, weights_a, weights_b):
    assert [s for s, _ in losses_a] == [s for s, _ in losses_b]
    torch.testing.assert_close(torch.tensor([v for _, v in losses_a]), torch.tensor([v for _, v in losses_b]), rtol=1e-5, atol=1e-6)
    for k in weights_b:
        torch.testing.assert_close(weights_a[k], weights_b[k], rtol=1e-5, atol=1e-6)


def test_two_ranks_equal_one_process_and_resume_on_another_world_size(tmp_path):
    single, single_weights = train(tmp_path / "single", steps=6)
    two = torchrun_worker(tmp_path / "two", 6)
    assert two["world"] == 2
    assert_close(two["losses"], single.losses, two["weights"], single_weights)
    # Not vacuous: training moved the weights and the loss.
    assert single.losses[-1][1] < single.losses[0][1]
    # 3 steps on 2 ranks (checkpoint at step 2 and at the end), then resumed to 6 by one process.
    torchrun_worker(tmp_path / "mixed", 3)
    resumed, resumed_weights = train(tmp_path / "mixed", steps=6, resume=True)
    assert_close(resumed.losses, single.losses, resumed_weights, single_weights)


def test_rank_slice_splits_every_per_sample_tensor():
    batch = {"x": torch.arange(8), "pair": (torch.ones(8, 2), torch.tensor(3.0)), "name": "n"}
    part = rank_slice(batch, 1, 2)
    assert part["x"].tolist() == [4, 5, 6, 7] and part["pair"][0].shape == (4, 2) and part["pair"][1] == 3.0 and part["name"] == "n"
    from ardistill.errors import ArdistillError

    with pytest.raises(ArdistillError, match="divisible"):
        rank_slice(torch.zeros(7), 0, 2)
