"""CLI: `ardistill sample --drafter/--refiner/--draft-steps`, `ardistill code finetune` and `ardistill code sweep` on a
registered tiny pair with random weights; user mistakes exit 2 with one line."""

import json

import pytest
import torch

from ardistill import registry
from ardistill.cli import main
from ardistill.registry import ModelSpec, WeightFile
from tiny_code_pair import pair_32px


def run(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


@pytest.fixture
def tiny_names(monkeypatch):
    registry.list_models()
    d, r = pair_32px()
    for name, t in (("code-tiny-l", d), ("code-tiny-s", r)):
        spec = ModelSpec(name=name, family="var", config=t.transformer.config,
                         files=(WeightFile("transformer", f"{name}.pth"), WeightFile("tokenizer", "vae.pth")),
                         description="tiny CoDe test model", tokens_per_image=30, image_size=32,
                         sampling_defaults=dict(cfg=1.0, top_k=0, top_p=0.0, temperature=1.0))
        monkeypatch.setitem(registry._MODELS, name, spec)
    return "code-tiny-l", "code-tiny-s"


def test_sample_with_a_pair(tiny_names, tmp_path, capsys):
    out = tmp_path / "grid.png"
    code, stdout, _ = run(["sample", "--drafter", tiny_names[0], "--refiner", tiny_names[1], "--draft-steps", "2", "--num-images", "3",
                           "--class", "1,2", "--random-init", "--save-tokens", "--out", str(out)], capsys)
    assert code in (0, None) and out.is_file() and "N=2" in stdout
    from ardistill.io import load_state_dict_file

    assert load_state_dict_file(out.with_suffix(".tokens.safetensors"))["tokens"].shape == (3, 30)


@pytest.mark.parametrize("argv, needle", [
    (["--draft-steps", "2"], "--refiner"),
    ([], "--draft-steps"),
    (["--draft-steps", "9"], "draft_steps must be an integer in [0, 4]"),
])
def test_sample_pair_errors(tiny_names, tmp_path, capsys, argv, needle):
    base = ["sample", "--drafter", tiny_names[0], "--random-init", "--out", str(tmp_path / "g.png")]
    if needle != "--refiner":
        base += ["--refiner", tiny_names[1]]
    code, _, err = run(base + argv, capsys)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1


def test_finetune_then_sweep(tiny_names, tmp_path, capsys):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(json.dumps({
        "kind": "code-finetune", "name": "tiny", "drafter": tiny_names[0], "refiner": tiny_names[1], "draft_steps": 2,
        "random_init": True, "data": {"seed": 0, "size": 32}, "num_images": 32, "batch_size": 8,
        "drafter_train": {"steps": 2, "lr": 1e-3, "ckpt_every": 1, "log_every": 1},
        "refiner_train": {"steps": 2, "lr": 1e-3, "ckpt_every": 1, "log_every": 1},
    }))
    run_dir = tmp_path / "run"
    code, stdout, err = run(["code", "finetune", "--recipe", str(recipe), "--out", str(run_dir)], capsys)
    assert code in (0, None), err
    assert json.loads((run_dir / "code.json").read_text())["refiner_steps"] == 2
    code, _, err = run(["code", "finetune", "--recipe", str(recipe), "--out", str(run_dir)], capsys)
    assert code == 2 and "--resume" in err  # an existing run is never overwritten silently
    sweep = tmp_path / "sweep"
    code, stdout, err = run(["code", "sweep", "--finetuned", str(run_dir), "--draft-steps", "1..2", "--batch-size", "4",
                             "--num-images", "8", "--repeats", "1", "--out", str(sweep)], capsys)
    assert code in (0, None), err
    rows = json.loads((sweep / "sweep.json").read_text())[0]["rows"]
    assert [r["draft_steps"] for r in rows] == [4, 1, 2] and rows[0]["speedup"] == 1.0
    assert all(r["fid"] is not None and r["latency_ms"] > 0 for r in rows)
    assert (sweep / "fid_vs_speedup.png").is_file() and "| 2 |" in (sweep / "sweep.md").read_text()
