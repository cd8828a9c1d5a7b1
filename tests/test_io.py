"""Atomic writes and safe checkpoint reading."""

import os

import pytest
import torch

from ardistill.errors import ArdistillError, CheckpointError
from ardistill.io import (
    atomic_path,
    atomic_save_safetensors,
    atomic_write_text,
    diff_state_dict,
    extract_state_dict,
    format_state_dict_diff,
    load_state_dict_file,
    load_strict,
    read_checkpoint,
    sha256_tensors,
)


def test_atomic_write_replaces_whole_file(tmp_path):
    p = tmp_path / "a.txt"
    atomic_write_text(p, "old")
    atomic_write_text(p, "new")
    assert p.read_text() == "new"
    assert [f.name for f in tmp_path.iterdir()] == ["a.txt"]  # no temporary left behind


def test_atomic_write_keeps_old_file_on_error(tmp_path):
    p = tmp_path / "a.txt"
    atomic_write_text(p, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert p.read_text() == "old"
    assert [f.name for f in tmp_path.iterdir()] == ["a.txt"]


def test_unwritable_destination_is_a_user_error(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o500)
    try:
        if os.access(ro, os.W_OK):  # running as root: permissions do not apply; use an impossible path instead
            target = tmp_path / "file.txt"
            target.write_text("x")
            bad = target / "sub" / "out.txt"  # parent is a regular file
        else:
            bad = ro / "out.txt"
        with pytest.raises(ArdistillError):
            atomic_write_text(bad, "x")
    finally:
        os.chmod(ro, 0o700)


def test_read_pth_nested_and_prefixed(tmp_path):
    sd = {"a.weight": torch.randn(2, 3), "b": torch.zeros(1)}
    p = tmp_path / "ckpt.pt"
    torch.save({"model": {f"module._orig_mod.{k}": v for k, v in sd.items()}, "steps": torch.tensor(3)}, p)
    got = load_state_dict_file(p)
    assert set(got) == set(sd) and torch.equal(got["a.weight"], sd["a.weight"])


def test_safetensors_roundtrip_and_hash(tmp_path):
    sd = {"x": torch.arange(6.0).view(2, 3), "i": torch.arange(4)}
    p = tmp_path / "w.safetensors"
    atomic_save_safetensors(sd, p)
    got = read_checkpoint(p)
    assert sha256_tensors(got) == sha256_tensors(sd)


class _Evil:
    def __reduce__(self):
        return (print, ("this would run code",))


def test_refuses_files_that_need_unpickling(tmp_path):
    p = tmp_path / "evil.pth"
    with open(p, "wb") as f:
        torch.save({"model": {"w": torch.zeros(1)}, "args": _Evil()}, f)
    with pytest.raises(CheckpointError, match="refused"):
        read_checkpoint(p)


def test_garbage_and_missing_files_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    for p in (bad, tmp_path / "missing.pth", tmp_path / "x.txt"):
        with pytest.raises(CheckpointError) as e:
            read_checkpoint(p)
        assert "\n" not in str(e.value)


def test_no_state_dict_found():
    with pytest.raises(CheckpointError, match="no state dict"):
        extract_state_dict({"optimizer": {"lr": 1.0}})


def test_strict_load_reports_first_differing_keys():
    m = torch.nn.Linear(3, 2)
    sd = {"weight": torch.zeros(2, 4), "extra": torch.zeros(1)}
    diff = diff_state_dict(m.state_dict(), sd)
    assert diff["missing"] == ["bias"] and diff["unexpected"] == ["extra"] and diff["shape"][0][0] == "weight"
    msg = format_state_dict_diff(diff)
    assert "bias" in msg and "extra" in msg and "[2, 3]" in msg
    with pytest.raises(CheckpointError):
        load_strict(m, sd, what="x.pth")
    good = {"weight": torch.ones(2, 3), "bias": torch.ones(2)}
    load_strict(m, good, what="x.pth")
    assert torch.equal(m.weight, torch.ones(2, 3))
