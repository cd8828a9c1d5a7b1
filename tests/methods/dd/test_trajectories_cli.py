"""`ardistill trajectories`: kill -9 in the middle and run again → the same bytes as an uninterrupted run;
`verify` finds corrupted and missing shards (one line each, exit code 1); user mistakes are one-line errors."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from trajectory_teachers import TINY_VAR_NAME, tiny_var_spec

from ardistill import registry
from ardistill.cli import main
from ardistill.methods.dd.trajectories import open_trajectories

HERE = Path(__file__).resolve().parent
ARGS = ["--teacher", TINY_VAR_NAME, "--random-init", "--num-samples", "40", "--shard-size", "2", "--flow-steps", "200", "--seed", "5"]
CHILD = f"""
import sys
sys.path.insert(0, {str(HERE)!r})
from trajectory_teachers import tiny_var_spec
from ardistill import registry
spec = tiny_var_spec()
registry._MODELS[spec.name] = spec
from ardistill.cli import main
main(sys.argv[1:])
"""


@pytest.fixture
def tiny_registered(monkeypatch):
    spec = tiny_var_spec()
    monkeypatch.setitem(registry._MODELS, spec.name, spec)
    return spec


def run_cli(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def sidecars(root: Path) -> list[Path]:
    return sorted(root.glob("shard-*.json"))


def test_kill_9_then_rerun_equals_an_uninterrupted_run(tiny_registered, tmp_path, capsys):
    killed = tmp_path / "killed"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-c", CHILD, "trajectories", *ARGS, "--batch-size", "1", "--out", str(killed)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(sidecars(killed)) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"the run ended before it could be killed: {proc.stderr.read().decode()[-500:]}"
    proc.stderr.close()
    done_before = len(sidecars(killed))
    assert 3 <= done_before < 20 and not (killed / "manifest.json").exists()
    code, out, _ = run_cli(["trajectories", "verify", str(killed)], capsys)
    assert code == 1 and "manifest.json missing" in out

    (killed / ".shard-00019.safetensors.abc123.tmp").write_bytes(b"partial")  # as a kill during a write leaves it
    # Resume (another batch size on purpose) and make an uninterrupted reference run.
    code, out, _ = run_cli(["trajectories", *ARGS, "--batch-size", "3", "--out", str(killed)], capsys)
    out = " ".join(out.split())  # rich wraps lines
    assert code == 0 and f"{20 - done_before} shards written ({2 * (20 - done_before)} samples" in out and "dataset complete" in out
    reference = tmp_path / "reference"
    code, _, _ = run_cli(["trajectories", *ARGS, "--batch-size", "2", "--out", str(reference)], capsys)
    assert code == 0
    for name in ["manifest.json"] + [f"shard-{i:05d}.safetensors" for i in range(20)]:
        assert (killed / name).read_bytes() == (reference / name).read_bytes(), name
    assert sorted(p.name for p in killed.iterdir()) == sorted(p.name for p in reference.iterdir())  # no leftovers
    data = open_trajectories(killed).load_all()
    assert torch.equal(data["index"], torch.arange(40)) and data["tokens"].shape == (40, 14)
    code, out, _ = run_cli(["trajectories", "verify", str(killed)], capsys)
    assert code == 0 and "intact" in out


def test_verify_reports_corrupted_and_missing_shards(tiny_registered, tmp_path, capsys):
    root = tmp_path / "ds"
    args = ["trajectories", "--teacher", TINY_VAR_NAME, "--random-init", "--num-samples", "6", "--shard-size", "2", "--flow-steps", "20",
            "--out", str(root)]
    assert run_cli(args, capsys)[0] == 0
    shard = root / "shard-00001.safetensors"
    raw = bytearray(shard.read_bytes())
    raw[-1] ^= 0x01
    shard.write_bytes(bytes(raw))
    (root / "shard-00002.safetensors").unlink()
    code, out, _ = run_cli(["trajectories", "verify", str(root)], capsys)
    lines = out.strip().splitlines()
    assert code == 1 and len(lines) == 2
    assert "shard-00001.safetensors: SHA-256 mismatch" in lines[0] and "shard-00002.safetensors: missing" in lines[1]
    # Running the job again remakes both: the missing shard and the corrupted one (done shards are re-hashed).
    assert run_cli(args, capsys)[0] == 0
    code, out, _ = run_cli(["trajectories", "verify", str(root)], capsys)
    assert code == 0 and "intact" in out


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--cfg", "3.0"], "already holds a different dataset"),
        (["--top-k", "500"], "top_k must be an integer in [0, 64]"),
        (["--flow-solver", "rk4"], "unknown flow solver"),
    ],
)
def test_user_mistakes_are_one_line_errors(extra, needle, tiny_registered, tmp_path, capsys):
    root = tmp_path / "ds"
    base = ["trajectories", "--teacher", TINY_VAR_NAME, "--random-init", "--num-samples", "2", "--flow-steps", "5", "--out", str(root)]
    assert run_cli(base, capsys)[0] == 0
    code, _, err = run_cli(base + extra, capsys)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1


def test_missing_options_and_not_a_dataset(tmp_path, capsys):
    code, _, err = run_cli(["trajectories", "--teacher", "var-d16"], capsys)
    assert code == 2 and "missing --num-samples, --out" in err
    code, _, err = run_cli(["trajectories", "verify", str(tmp_path)], capsys)
    assert code == 2 and "not a dataset folder" in err
