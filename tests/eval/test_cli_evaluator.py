"""`ardistill evaluator train|eval`: accuracy printed, files written; a missing evaluator is a one-line exit 2."""

import re

import pytest

from ardistill.cli import main


def run(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_eval_prints_heldout_accuracy(capsys):
    code, out, _ = run(["evaluator", "eval", "--num-images", "240", "--size", "32", "--seed", "9"], capsys)
    assert code == 0 and "per class" in out
    accuracy = float(re.search(r"accuracy at 32 px: ([\d.]+)%", out).group(1))
    assert accuracy >= 97.0


def test_train_writes_evaluator_then_eval_reads_it(tmp_path, capsys):
    out_dir = tmp_path / "ev"
    code, out, _ = run(["evaluator", "train", "--out", str(out_dir), "--steps", "2", "--batch-size", "8", "--heldout", "12"], capsys)
    assert code == 0 and "held-out accuracy" in out
    assert (out_dir / "evaluator.safetensors").is_file() and (out_dir / "card.json").is_file()
    code, out, _ = run(["evaluator", "eval", "--evaluator", str(out_dir), "--num-images", "24"], capsys)
    assert code == 0 and "held-out accuracy at 64 px" in out


def test_missing_evaluator_is_one_line_error(tmp_path, capsys):
    code, _, err = run(["evaluator", "eval", "--evaluator", str(tmp_path / "nope")], capsys)
    assert code == 2 and "evaluator train" in err and len(err.strip().splitlines()) == 1
