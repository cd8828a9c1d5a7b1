"""`--device auto` (CUDA, then MPS, then CPU) is the default of every command that runs a model; reports say where
they ran; an explicit device that is not there is a one-line error."""

import json

import pytest
import torch

from ardistill.cli import main
from ardistill.devices import describe_device, resolve_device

from cli_walk import options, walk_commands

# Commands that never run a network, and the CPU-only toy trainers/evaluators (the procedural world's tools, whose
# functions take no device). A new command must either accept --device (default auto) or be listed here on purpose.
NO_DEVICE = {
    ("report",): "merges bench.json files",
    ("models",): "lists the registry",
    ("download",): "fetches weight files",
    ("inspect",): "reads a checkpoint's keys",
    ("convert",): "rewrites a checkpoint file",
    ("trajectories", "verify"): "hashes shard files",
    ("code",): "group",
    ("teacher",): "group",
    ("teacher", "train"): "toy teacher training is CPU-only (train_from_recipe takes no device)",
    ("teacher", "eval"): "toy quality on the CPU the model card's numbers are measured on",
    ("teacher", "export"): "toy quality on the CPU the model card's numbers are measured on",
    ("student",): "group",
    ("student", "install"): "the card's toy quality on the CPU the built-in models' cards are measured on",
    ("data",): "group",
    ("data", "preview"): "draws procedural images",
    ("evaluator",): "group",
    ("evaluator", "train"): "CPU-only (train_evaluator takes no device)",
    ("evaluator", "eval"): "CPU-only classifier check",
    ("recipes",): "group",
    ("recipes", "list"): "reads YAML files",
    ("recipes", "show"): "reads a YAML file",
    ("recipes", "copy"): "copies a YAML file",
}


def run(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def _machine(monkeypatch, *, cuda: bool, mps: bool, gpus: int = 1):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus if cuda else 0)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


def test_every_command_defaults_to_device_auto():
    seen = set()
    for path, cmd in walk_commands():
        device = [p for p in options(cmd) if "--device" in p.opts]
        if path in NO_DEVICE:
            assert not device, f"{' '.join(path)} has --device now: remove it from NO_DEVICE"
            seen.add(path)
            continue
        assert device, f"`ardistill {' '.join(path)}` has no --device option (add DeviceOption, or list it in NO_DEVICE)"
        assert device[0].default == "auto", f"`ardistill {' '.join(path)}` --device defaults to {device[0].default!r}"
    assert seen == set(NO_DEVICE), f"NO_DEVICE names commands that do not exist: {set(NO_DEVICE) - seen}"


def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch):
    _machine(monkeypatch, cuda=True, mps=True)
    assert resolve_device("auto") == torch.device("cuda", 0)
    _machine(monkeypatch, cuda=False, mps=True)
    assert resolve_device("auto") == torch.device("mps")
    _machine(monkeypatch, cuda=False, mps=False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("AUTO") == torch.device("cpu")


def test_auto_is_the_cpu_on_this_machine():
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    if expected == "cpu":
        assert describe_device("cpu").startswith("cpu (")


def test_explicit_cuda_means_the_current_gpu(monkeypatch):
    _machine(monkeypatch, cuda=True, mps=False, gpus=2)
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)


@pytest.mark.parametrize("device, needle", [("cuda", "CUDA is not available"), ("cuda:0", "CUDA is not available"),
                                            ("mps", "MPS is not available"), ("tpu", "unknown device"),
                                            ("cuda:3", "has 2 CUDA device(s)")])
def test_unavailable_device_is_a_one_line_error(device, needle, capsys, monkeypatch, tmp_path):
    _machine(monkeypatch, cuda=device == "cuda:3", mps=False, gpus=2)
    code, _, err = run(["sample", "--teacher", "var-toy-s", "--random-init", "--device", device,
                        "--out", str(tmp_path / "g.png")], capsys)
    assert code == 2 and needle in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_library_loaders_keep_cpu_default_and_accept_auto():
    from ardistill import load_evaluator, load_teacher

    auto = resolve_device("auto")  # (no monkeypatching here: torch.compile's import inspects torch.cuda itself)
    assert load_teacher("var-toy-s", random_init=True).device == torch.device("cpu")
    assert load_teacher("var-toy-s", random_init=True, device="auto").device == auto
    assert load_evaluator(device="auto").device == auto


def test_bench_report_records_the_resolved_device(capsys, tmp_path):
    auto = str(resolve_device("auto"))  # cpu here
    out = tmp_path / "bench"
    code, _, err = run(["bench", "--teacher", "var-toy-s", "--random-init", "--repeats", "1", "--warmup", "0",
                        "--batch-sizes", "1", "--no-grids", "--device", "auto", "--out", str(out)], capsys)
    assert code in (0, None), err
    doc = json.loads((out / "bench.json").read_text())
    assert doc["environment"]["device"] == auto and all(r["device"] == auto for r in doc["speed"])
    assert doc["environment"]["device_name"]
    assert f"Measured on device {auto} ({doc['environment']['device_name']})" in (out / "bench.md").read_text()
