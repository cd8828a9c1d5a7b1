"""`ardistill bench` / `ardistill report` end to end on random-init toy models (tiny settings)."""

import json

import pytest

from ardistill.bench.report import SCHEMA
from ardistill.cli import main

PAIR = ["bench", "--teacher", "var-toy-l", "--drafter", "var-toy-l", "--refiner", "var-toy-s", "--draft-steps", "2",
        "--repeats", "1", "--warmup", "0", "--random-init"]
QUICK = [*PAIR, "--batch-sizes", "1,2"]


def run(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    with pytest.raises(SystemExit) as e:
        main([*QUICK, "--fid", "--num-samples", "20", "--out", str(out), "--write-baseline", str(out / "baseline.json")])
    assert e.value.code in (0, None)
    return out


def test_bench_writes_every_output(bench_dir):
    doc = json.loads((bench_dir / "bench.json").read_text())
    assert doc["schema"] == SCHEMA and doc["random_init"] is True
    assert [(r["method"], r["batch"]) for r in doc["speed"]] == [("teacher", 1), ("code-2", 1), ("teacher", 2), ("code-2", 2)]
    for r in doc["speed"]:
        assert r["device"] == "cpu" and r["dtype"] == "float32" and r["torch"] and r["commit"]
        assert r["tokens_p10_ms"] <= r["tokens_median_ms"] <= r["tokens_p90_ms"] and r["decode_median_ms"] > 0
        assert r["peak_memory_mib"] > 0 and r["total_images_per_s"] > 0
    teacher = [r for r in doc["speed"] if r["method"] == "teacher"]
    assert all(r["speedup_total"] == 1.0 for r in teacher)
    q = doc["quality"]["code-2"]
    assert q["num_images"] == 20 and 0 <= q["class_accuracy"] <= 1 and q["fid"] > 0 and "precision" in q
    for name in ("bench.md", "latency-vs-batch.png", "fid-vs-speedup.png", "grid-teacher.png", "grid-code-2.png"):
        assert (bench_dir / name).stat().st_size > 0
    assert "| code-2 | 2 |" in (bench_dir / "bench.md").read_text()


def test_check_exits_1_with_a_table_on_a_doctored_baseline(bench_dir, capsys, tmp_path):
    baseline = json.loads((bench_dir / "baseline.json").read_text())
    assert baseline["config"]["draft_steps"] == [2]
    baseline["entries"] = {"code-2@1": {**baseline["entries"]["code-2@1"], "speedup_tokens": 100.0}}
    doctored = tmp_path / "doctored.json"
    doctored.write_text(json.dumps(baseline))
    code, out, _ = run([*PAIR, "--batch-sizes", "1", "--no-grids",
                        "--out", str(tmp_path / "run"), "--check", str(doctored)], capsys)
    assert code == 1
    assert "| code-2@1 | speedup_tokens | 100.000 |" in out and "REGRESSED" in out


def test_report_merges_runs(bench_dir, capsys, tmp_path):
    code, out, _ = run(["report", str(bench_dir), str(bench_dir), "--out", str(tmp_path / "report.md")], capsys)
    assert code in (0, None)
    page = (tmp_path / "report.md").read_text()
    assert page.count("## Benchmark: var-toy-l") == 2 and "latency-vs-batch.png" in page


@pytest.mark.parametrize("argv, needle", [
    (["report", "nowhere"], "no bench.json"),
    ([*QUICK, "--check", "missing.json"], "no such file"),
    (["bench", "--teacher", "var-toy-l", "--random-init", "--drafter", "var-toy-l"], "both --drafter and --refiner"),
    (["bench", "--teacher", "var-toy-l", "--random-init", "--batch-sizes", "1,x"], "--batch-sizes"),
])
def test_user_errors_are_one_line_exit_2(argv, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(argv, capsys)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1


def test_bench_applies_the_execution_options_to_every_method_or_refuses(capsys, tmp_path):
    """One builder for every method: bf16 reaches the teacher, the DD student and the onestep-free baselines (recorded
    from the loaded models); an option a method does not take is refused before anything runs."""
    base = ["bench", "--teacher", "var-toy-s", "--random-init", "--student", "random-init", "--dd-steps", "1",
            "--baselines", "skip-2", "--batch-sizes", "1", "--repeats", "1", "--warmup", "0", "--no-grids"]
    out = tmp_path / "b"
    code, _, err = run([*base, "--dtype", "bf16", "--out", str(out)], capsys)
    assert code in (0, None), err
    methods = {m["name"]: m for m in json.loads((out / "bench.json").read_text())["methods"]}
    assert methods["teacher"]["settings"]["execution"]["dtype"] == "bfloat16"
    assert methods["dd-1step"]["settings"]["execution"]["dtype"] == "bfloat16"
    assert methods["skip-2"]["settings"]["execution"]["dtype"] == "bfloat16"
    code, _, err = run([*base, "--fast", "--out", str(tmp_path / "c")], capsys)
    assert code == 2 and "--fast does not apply to a 1/2-step DD student" in err and len(err.strip().splitlines()) == 1
    code, _, err = run([*base[:6], "--baselines", "onestep", "--compile", "default", "--out", str(tmp_path / "d")], capsys)
    assert code == 2 and "--compile does not apply to the onestep baseline" in err and len(err.strip().splitlines()) == 1


def test_random_init_dd2_generator_is_benched_in_one_pass_beside_its_teacher(capsys, tmp_path):
    """`--student random-init-dd2`: a DD2 generator at initialisation (speed at sizes with no trained student);
    1 step = one counted forward pass of the backbone, 2 steps = that plus the teacher's last scale."""
    out = tmp_path / "b"
    code, _, err = run(["bench", "--teacher", "var-toy-s", "--random-init", "--student", "random-init-dd2", "--dd-steps", "1,2",
                        "--batch-sizes", "1,2", "--repeats", "1", "--warmup", "0", "--no-grids", "--out", str(out)], capsys)
    assert code in (0, None), err
    doc = json.loads((out / "bench.json").read_text())
    passes = {(r["method"], r["batch"]): r["forward_passes_per_image"] for r in doc["speed"]}
    assert passes[("dd2-1step", 1)] == 1 and passes[("dd2-1step", 2)] == 1
    assert passes[("dd2-2step", 1)] > 1 and passes[("teacher", 1)] > passes[("dd2-2step", 1)]
    assert all(r["speedup_tokens"] > 0 for r in doc["speed"] if r["method"] != "teacher")
    code, _, err = run(["bench", "--teacher", "var-toy-s", "--student", "random-init-dd2", "--out", str(tmp_path / "c")], capsys)
    assert code == 2 and "needs --random-init" in err
