"""CLI basics: version, models table, one-line errors with exit code 2."""

import pytest

from ardistill import __version__
from ardistill.cli import main


def run(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_version(capsys):
    code, out, _ = run(["--version"], capsys)
    assert code == 0 and __version__ in out


def test_models_table(capsys):
    code, out, _ = run(["models"], capsys)
    assert code == 0
    for name in ("var-d16", "var-d30", "var-d36"):
        assert name in out


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["sample", "--teacher", "var-d61", "--out", "x.png"], "did you mean"),
        (["sample", "--teacher", "var-d16", "--out", "x.png"], "var_d16.pth not found"),
        (["inspect", "does-not-exist.pth"], "no such file"),
        (["convert", "a.pth", "b.bin"], ".safetensors"),
    ],
)
def test_user_errors_are_one_line_exit_2(argv, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(argv, capsys)
    assert code == 2
    assert needle in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_usage_error_exit_2(capsys):
    code, _, err = run(["sample", "--no-such-option"], capsys)
    assert code == 2 and "Traceback" not in err
