"""`torchrun --nproc-per-node 2 -m ardistill trajectories`: the same merged tensors (SHA-256) as one process, also
after the whole job is killed midway and resumed with another world size."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from launch import run_torchrun, torchrun_command, torchrun_env
from trajectory_teachers import TINY_VAR_NAME, tiny_var_spec

from ardistill import registry
from ardistill.cli import main
from ardistill.io import sha256_tensors
from ardistill.methods.dd.trajectories import open_trajectories

ARGS = ["trajectories", "--teacher", TINY_VAR_NAME, "--random-init", "-n", "24", "--shard-size", "2", "--flow-steps", "100",
        "--seed", "3", "--batch-size", "2"]


@pytest.fixture
def tiny_registered(monkeypatch):
    spec = tiny_var_spec()
    monkeypatch.setitem(registry._MODELS, spec.name, spec)


def merged_sha(root: Path) -> str:
    return sha256_tensors(open_trajectories(root).load_all())


def single_process(root: Path) -> None:
    with pytest.raises(SystemExit) as e:
        main([*ARGS, "--out", str(root)])
    assert e.value.code == 0


def test_two_ranks_make_the_single_process_dataset(tiny_registered, tmp_path):
    single_process(tmp_path / "w1")
    proc = run_torchrun(2, [*ARGS, "--out", str(tmp_path / "w2")])
    out = " ".join(proc.stdout.split())
    assert "rank 0/2:" in out and "rank 1/2:" in out and "dataset complete" in out
    assert merged_sha(tmp_path / "w2") == merged_sha(tmp_path / "w1")
    assert (tmp_path / "w2" / "manifest.json").read_bytes() == (tmp_path / "w1" / "manifest.json").read_bytes()
    assert open_trajectories(tmp_path / "w2").verify() == []


def descendants(pid: int) -> list[int]:
    """Every live descendant of `pid` (from /proc). torchrun starts each worker in a session of its own, so killing
    the launcher's process group leaves the workers running as orphans that keep writing shards."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def kill_job(proc: subprocess.Popen) -> None:
    """SIGKILL the launcher and every worker at once (a lost node), then reap them."""
    for pid in [proc.pid, *descendants(proc.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()
    deadline = time.monotonic() + 10
    while descendants(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def test_killed_two_rank_job_resumed_by_one_process_then_two(tiny_registered, tmp_path):
    root = tmp_path / "killed"
    proc = subprocess.Popen(torchrun_command(2, [*ARGS, "--out", str(root)]), env=torchrun_env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
    while len(list(root.glob("shard-*.json"))) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    kill_job(proc)  # the launcher and both workers: a lost node
    done = len(list(root.glob("shard-*.json")))
    assert 3 <= done < 12 and not (root / "manifest.json").exists(), done
    # Resume part of it with one process (rank 0 of 2 by hand: its round-robin share), then finish with torchrun 2.
    from ardistill.api import load_teacher
    from ardistill.methods.dd.flow import FlowMapConfig
    from ardistill.methods.dd.trajectories import generate_trajectories

    teacher = load_teacher(TINY_VAR_NAME, random_init=True)
    first = generate_trajectories(teacher, root, num=24, seed=3, shard_size=2, batch_size=5, flow=FlowMapConfig(steps=100),
                                  rank=0, world=3, progress=False)
    assert not first.finalized
    proc = run_torchrun(2, [*ARGS, "--out", str(root)])
    assert "dataset complete" in " ".join(proc.stdout.split())
    single_process(tmp_path / "reference")
    assert merged_sha(root) == merged_sha(tmp_path / "reference")
    assert sorted(p.name for p in root.iterdir()) == sorted(p.name for p in (tmp_path / "reference").iterdir())
