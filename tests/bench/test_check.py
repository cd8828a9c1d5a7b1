"""The CI regression check: it passes on the committed baseline and fails on a doctored one."""

import copy
import json
from pathlib import Path

import pytest

from ardistill.bench.check import baseline_from_rows, check_against_baseline, format_findings, load_baseline
from ardistill.bench.run import config_from_summary, run_benchmark
from ardistill.bench.toy_models import ensure_benchable
from ardistill.errors import ArdistillError

COMMITTED = Path(__file__).resolve().parents[2] / "benchmarks" / "baseline-cpu.json"


def _row(method, batch, total, tokens, passes=12.0, steps=6):
    return {"method": method, "batch": batch, "speedup_total": total, "speedup_tokens": tokens, "ar_steps": steps,
            "forward_passes_per_image": passes, "device": "cpu", "dtype": "float32", "torch": "x", "commit": "c", "threads": 1}


def test_ratio_drop_beyond_tolerance_and_count_change_fail():
    baseline = baseline_from_rows([_row("teacher", 1, 1.0, 1.0), _row("dd-1step", 1, 4.0, 8.0, passes=1.0, steps=1)], note="", tolerance=0.25)
    same = [_row("teacher", 1, 1.0, 1.0), _row("dd-1step", 1, 3.2, 6.5, passes=1.0, steps=1)]  # −20%, −19%: noise
    assert all(f["ok"] for f in check_against_baseline(same, baseline, 0.25))
    # the student silently runs twice its forward passes: counts change and the ratios halve
    doubled = [_row("teacher", 1, 1.0, 1.0), _row("dd-1step", 1, 2.0, 4.0, passes=2.0, steps=2)]
    failed = {(f["entry"], f["field"]) for f in check_against_baseline(doubled, baseline, 0.25) if not f["ok"]}
    assert failed == {("dd-1step@1", "speedup_total"), ("dd-1step@1", "speedup_tokens"), ("dd-1step@1", "ar_steps"),
                      ("dd-1step@1", "forward_passes_per_image")}
    assert "REGRESSED" in format_findings(check_against_baseline(doubled, baseline, 0.25), only_failures=True)


def test_a_method_missing_from_the_run_fails():
    baseline = baseline_from_rows([_row("teacher", 1, 1.0, 1.0), _row("code-2", 1, 1.4, 1.8)], note="", tolerance=0.25)
    findings = check_against_baseline([_row("teacher", 1, 1.0, 1.0)], baseline, 0.25)
    assert [f["entry"] for f in findings if not f["ok"]] == ["code-2@1"]


def test_bad_baseline_files_are_one_line_errors(tmp_path):
    with pytest.raises(ArdistillError, match="no such file"):
        load_baseline(tmp_path / "nope.json")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(ArdistillError, match="not JSON"):
        load_baseline(tmp_path / "x.json")
    (tmp_path / "y.json").write_text('{"schema": "other"}')
    with pytest.raises(ArdistillError, match="not an ardistill baseline"):
        load_baseline(tmp_path / "y.json")


@pytest.fixture(scope="module")
def committed_run():
    """The committed baseline and a fresh run of its configuration (fewer repeats to stay fast)."""
    baseline = load_baseline(COMMITTED)
    cfg = config_from_summary(baseline["config"])
    cfg.speed = type(cfg.speed)(batch_sizes=cfg.speed.batch_sizes, warmup=1, repeats=5, seed=cfg.speed.seed)
    for name in (cfg.teacher, cfg.drafter, cfg.refiner):
        ensure_benchable(name)
    return baseline, run_benchmark(cfg)["speed"]


def test_committed_baseline_passes(committed_run):
    baseline, rows = committed_run
    findings = check_against_baseline(rows, baseline, baseline["suggested_tolerance"])
    assert findings and all(f["ok"] for f in findings), format_findings(findings, only_failures=True)
    assert {f["entry"] for f in findings} == set(baseline["entries"])


def test_doctored_baseline_fails(committed_run):
    baseline, rows = committed_run
    doctored = copy.deepcopy(baseline)
    entry = next(k for k in doctored["entries"] if not k.startswith("teacher@"))
    doctored["entries"][entry]["speedup_tokens"] *= 2  # claims the method used to be twice as fast
    doctored["entries"][entry]["forward_passes_per_image"] /= 2  # ... with half the forward passes
    failed = {f["field"] for f in check_against_baseline(rows, doctored, baseline["suggested_tolerance"]) if not f["ok"]}
    assert failed == {"speedup_tokens", "forward_passes_per_image"}
    assert json.loads(COMMITTED.read_text())["entries"] == baseline["entries"]  # the file itself is untouched
