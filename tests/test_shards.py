"""Sharded datasets: partition independent of workers, resumable after kill -9, corruption detected."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from ardistill.errors import ArdistillError
from ardistill.shards import ShardedDataset, ShardPlan


def content(start, stop):
    idx = torch.arange(start, stop)
    return {"x": idx.float()[:, None] * torch.ones(1, 3), "i": idx}


def fill(ds, rank=0, world=1):
    for s in ds.pending(rank, world):
        ds.write_shard(s, content(*ds.plan.range(s)))


def test_plan_covers_every_index_once():
    plan = ShardPlan(num=103, shard_size=10)
    assert plan.num_shards == 11 and plan.range(10) == (100, 103)
    owned = sorted(s for r in range(4) for s in plan.for_rank(r, 4))
    assert owned == list(range(11))


def test_world_size_does_not_change_the_data(tmp_path):
    hashes = []
    for world in (1, 2, 4):
        ds = ShardedDataset.create(tmp_path / f"w{world}", {"teacher": "t"}, num=25, shard_size=4)
        for rank in range(world):
            fill(ds, rank, world)
        m = ds.finalize()
        hashes.append([s["sha256"] for s in m["shards"]])
        assert torch.equal(ds.load_all()["i"], torch.arange(25))
    assert hashes[0] == hashes[1] == hashes[2]


def test_reopen_with_other_settings_is_refused(tmp_path):
    ShardedDataset.create(tmp_path, {"teacher": "a", "cfg": 2.0}, num=10, shard_size=5)
    with pytest.raises(ArdistillError, match="cfg"):
        ShardedDataset.create(tmp_path, {"teacher": "a", "cfg": 3.0}, num=10, shard_size=5)


def test_kill_9_mid_job_then_resume(tmp_path):
    """A writer killed with SIGKILL after some shards: the rerun writes only the missing ones, same bytes."""
    script = textwrap.dedent(f"""
        import os, signal, torch
        from ardistill.shards import ShardedDataset
        ds = ShardedDataset.create({str(tmp_path / 'd')!r}, {{"teacher": "t"}}, num=40, shard_size=5)
        for n, s in enumerate(ds.pending()):
            if n == 3:
                os.kill(os.getpid(), signal.SIGKILL)
            idx = torch.arange(*ds.plan.range(s))
            ds.write_shard(s, {{"x": idx.float()[:, None] * torch.ones(1, 3), "i": idx}})
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert proc.returncode == -9
    ds = ShardedDataset.create(tmp_path / "d", {"teacher": "t"}, num=40, shard_size=5)
    assert ds.pending() == [3, 4, 5, 6, 7]
    fill(ds)
    ds.finalize()
    assert ds.verify() == []
    ref = ShardedDataset.create(tmp_path / "ref", {"teacher": "t"}, num=40, shard_size=5)
    fill(ref)
    assert [s["sha256"] for s in ref.finalize()["shards"]] == [s["sha256"] for s in ds.finalize()["shards"]]


def test_verify_finds_corrupted_and_missing_shards(tmp_path):
    ds = ShardedDataset.create(tmp_path, {"teacher": "t"}, num=20, shard_size=5)
    fill(ds)
    ds.finalize()
    assert ds.verify() == []
    p = ds.shard_path(1)
    data = bytearray(p.read_bytes())
    data[-1] ^= 0xFF
    p.write_bytes(bytes(data))
    os.remove(ds.shard_path(3))
    problems = ShardedDataset.open(tmp_path).verify()
    assert any("shard-00001" in x and "mismatch" in x for x in problems)
    assert any("shard-00003" in x and "missing" in x for x in problems)


def test_finalize_refuses_incomplete(tmp_path):
    ds = ShardedDataset.create(tmp_path, {}, num=10, shard_size=5)
    ds.write_shard(0, content(0, 5))
    with pytest.raises(ArdistillError, match="not written"):
        ds.finalize()


def test_resume_remakes_a_same_size_corrupted_shard(tmp_path):
    """A flipped byte keeps the file size; the rerun re-hashes done shards and remakes it."""
    ds = ShardedDataset.create(tmp_path, {"teacher": "t"}, num=20, shard_size=5)
    fill(ds)
    p = ds.shard_path(2)
    data = bytearray(p.read_bytes())
    data[-1] ^= 0xFF
    p.write_bytes(bytes(data))
    again = ShardedDataset.open(tmp_path)
    assert again.pending() == [2]
    fill(again)
    again.finalize()
    assert again.verify() == []
    assert torch.equal(again.read_shard(2)["i"], torch.arange(10, 15))
