"""Sample grids in bench / distill reports: enlarged to be readable, each captioned with method, AR steps, toy-FID."""

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from ardistill.bench.report import grid_caption, run_markdown
from ardistill.cli import main
from ardistill.images import readable_scale


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("grids")
    with pytest.raises(SystemExit) as e:
        main(["bench", "--teacher", "var-toy-s", "--random-init", "--baselines", "onestep", "--repeats", "1", "--warmup", "0",
              "--batch-sizes", "1", "--fid", "--num-samples", "20", "--out", str(out)])
    assert e.value.code in (0, None)
    return out


def test_report_names_method_steps_and_toy_fid_under_every_grid(bench_dir):
    doc = json.loads((bench_dir / "bench.json").read_text())
    md = (bench_dir / "bench.md").read_text()
    assert set(doc["grids"]) == {"teacher", "onestep"}
    for name, fname in doc["grids"].items():
        steps = next(r["ar_steps"] for r in doc["speed"] if r["method"] == name)
        fid = doc["quality"][name]["fid"]
        caption = f"{name} · {steps} AR step{'' if steps == 1 else 's'} · toy-FID {fid:.2f} (20 images)"
        assert f"![{name}]({fname})\n\n*{caption}*" in md


def test_grids_are_enlarged_and_carry_their_caption(bench_dir):
    doc = json.loads((bench_dir / "bench.json").read_text())
    size = 32  # var-toy-s images
    factor = readable_scale(size)
    for fname in doc["grids"].values():
        w, h = Image.open(bench_dir / fname).size
        cols = round((w - 2) / (size * factor + 2))
        assert w == cols * (size * factor + 2) + 2  # 4 × 4 chunk of 128-px images
        assert h > w  # the caption strip below the grid


def test_caption_without_quality_says_so():
    rows = [{"method": "dd-1step", "ar_steps": 1}]
    assert grid_caption("dd-1step", rows, {}) == "dd-1step · 1 AR step · FID not measured"
    imagenet = {"dd-1step": {"fid": 9.123, "num_images": 50000, "extractor": "inception-v3-compat (torch-fidelity)"}}
    assert grid_caption("dd-1step", rows, imagenet) == "dd-1step · 1 AR step · FID 9.12 (50000 images)"


def test_distill_report_puts_captions_under_the_grids(bench_dir):
    from ardistill.pipelines.distill import DistillPlan, report_markdown

    doc = json.loads((bench_dir / "bench.json").read_text())
    plan = DistillPlan(teacher="var-toy-s", recipe="recipes/dd/var-toy-l.yaml", out=Path("runs/x"), steps=(), baselines=("onestep",))
    md = report_markdown(plan, doc)
    for name in ("teacher", "onestep"):
        assert grid_caption(name, doc["speed"], doc["quality"]) in md
    assert re.search(r"\| teacher · \d+ AR steps · toy-FID [\d.]+ \(20 images\) \|", md)
    assert "Measured on device " in run_markdown(doc, plots=[])
