"""`ardistill sample` for every generator kind (teacher, DD student, teacher-involved DD, CoDe, baselines): each
execution option (--dtype, --fast, --compile) and sampling option (--cfg, --top-k, --top-p, --temperature) either
takes effect, measured on what ran (the dtype the weights hold, the compiled forward being called, the tokens
changing), or is refused with exit 2 and one line. The built-in toy models (trained: a random-init VAR hardly
depends on its class, so guidance would change nothing); a random-init DD student of var-toy-s."""

import json

import pytest
import torch
from safetensors import safe_open

from ardistill.bench.toy_models import write_random_student
from ardistill.cli import main

TEACHER = "var-toy-s"


def run(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory):
    import ardistill

    torch.set_num_threads(1)
    teacher = ardistill.load_teacher(TEACHER)
    return write_random_student(teacher, tmp_path_factory.mktemp("student"))


class Sampled:
    def __init__(self, code, out, err, tokens=None, meta=None):
        self.code, self.out, self.err, self.tokens, self.meta = code, out, err, tokens, meta

    @property
    def weights(self) -> dict:
        return json.loads(self.meta["weights"])

    @property
    def settings(self) -> dict:
        return json.loads(self.meta["settings"])


def sample(argv, capsys, tmp_path, name="g"):
    png = tmp_path / f"{name}.png"
    code, out, err = run(["sample", "--num-images", "4", "--class", "0,1,2,3", "--seed", "3",
                          "--out", png, "--save-tokens", *argv], capsys)
    if code not in (0, None):
        return Sampled(code, out, err)
    path = png.with_suffix(".tokens.safetensors")
    with safe_open(str(path), "pt") as f:
        return Sampled(0, out, err, f.get_tensor("tokens"), f.metadata())


def refused(argv, capsys, tmp_path, needle):
    code, _, err = run(["sample", "--num-images", "1", "--out", tmp_path / "r.png", *argv], capsys)
    assert code == 2, err
    assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


@pytest.fixture
def compile_calls(monkeypatch):
    """torch.compile replaced by a recorder whose 'compiled' callable counts its calls (no inductor on CPU)."""
    calls = []

    def fake_compile(fn, mode=None, dynamic=None, **kw):
        entry = {"mode": mode, "calls": 0}
        calls.append(entry)

        def run_it(*a, **k):
            entry["calls"] += 1
            return fn(*a, **k)

        return run_it

    monkeypatch.setattr(torch, "compile", fake_compile)
    return calls


# ---------------------------------------------------------------------------------------------------- teacher
def test_teacher_dtype_fast_compile_take_effect(tmp_path, capsys, compile_calls, student_dir):
    ref = sample(["--teacher", TEACHER], capsys, tmp_path, "ref")
    assert ref.code == 0, ref.err
    assert ref.weights == {"transformer": "float32", "decoder": "float32"} and "transformer float32" in ref.out
    low = sample(["--teacher", TEACHER, "--dtype", "bf16"], capsys, tmp_path, "bf16")
    assert low.weights == {"transformer": "bfloat16", "decoder": "bfloat16"}, low.weights
    assert "transformer bfloat16" in low.out
    fast = sample(["--teacher", TEACHER, "--fast"], capsys, tmp_path, "fast")
    assert fast.settings["execution"]["fast"] is True and ref.settings["execution"]["fast"] is False
    assert torch.equal(fast.tokens, ref.tokens)  # fp32 fast loops: the reference tokens
    assert not compile_calls
    comp = sample(["--teacher", TEACHER, "--compile", "default"], capsys, tmp_path, "comp")
    assert comp.code == 0, comp.err
    assert [c["mode"] for c in compile_calls] == ["default"] and compile_calls[0]["calls"] > 0  # the compiled step ran
    assert comp.settings["execution"]["compile"] == "default" and torch.equal(comp.tokens, ref.tokens)


def test_teacher_sampling_options_change_the_tokens(tmp_path, capsys):
    ref = sample(["--teacher", TEACHER], capsys, tmp_path, "ref")
    for i, argv in enumerate((["--cfg", "6"], ["--top-k", "1"], ["--top-p", "0.01"], ["--temperature", "0.05"])):
        other = sample(["--teacher", TEACHER, *argv], capsys, tmp_path, f"s{i}")
        assert other.code == 0, other.err
        assert not torch.equal(other.tokens, ref.tokens), argv
    # top-k 1 is the argmax: another seed gives the same tokens
    a = sample(["--teacher", TEACHER, "--top-k", "1", "--cfg", "1"], capsys, tmp_path, "a")
    b = sample(["--teacher", TEACHER, "--top-k", "1", "--cfg", "1", "--seed", "9"], capsys, tmp_path, "b")
    assert torch.equal(a.tokens, b.tokens)


# ------------------------------------------------------------------------------------------------ DD student
def test_dd_student_dtype_and_compile_take_effect(student_dir, tmp_path, capsys, compile_calls):
    ref = sample(["--student", student_dir, "--steps", "2"], capsys, tmp_path, "ref")
    assert ref.code == 0, ref.err
    assert ref.weights == {"student": "float32", "teacher.decoder": "float32"}
    low = sample(["--student", student_dir, "--steps", "2", "--dtype", "bf16"], capsys, tmp_path, "bf16")
    assert low.weights == {"student": "bfloat16", "teacher.decoder": "bfloat16"}, low.weights
    assert "student bfloat16" in low.out and low.settings["execution"]["dtype"] == "bfloat16"
    comp = sample(["--student", student_dir, "--steps", "2", "--compile", "default"], capsys, tmp_path, "comp")
    assert comp.code == 0, comp.err
    assert [c["mode"] for c in compile_calls] == ["default"]
    assert compile_calls[0]["calls"] == 2  # two student forwards, both through the compiled callable
    assert torch.equal(comp.tokens, ref.tokens)


@pytest.mark.parametrize("argv, needle", [
    (["--fast"], "--fast does not apply to a 1/2-step DD student"),
    (["--cfg", "2"], "--cfg does not apply to a 1/2-step DD student"),
    (["--top-k", "5"], "--top-k does not apply to a 1/2-step DD student"),
    (["--top-p", "0.9"], "--top-p does not apply to a 1/2-step DD student"),
    (["--temperature", "0.5"], "--temperature does not apply to a 1/2-step DD student"),
    (["--draft-steps", "2"], "--draft-steps applies only"),
    (["--split", "2"], "--split applies only with --teacher-start"),
    (["--teacher-start", "1", "--steps", "2"], "--steps applies only to 1/2-step DD sampling"),
])
def test_dd_student_refuses_what_it_does_not_take(student_dir, tmp_path, capsys, argv, needle):
    refused(["--student", student_dir, *argv], capsys, tmp_path, needle)


def test_teacher_involved_dd_takes_the_teachers_options(student_dir, tmp_path, capsys, compile_calls):
    ref = sample(["--student", student_dir, "--teacher-start", "1"], capsys, tmp_path, "ref")
    assert ref.code == 0, ref.err
    guided = sample(["--student", student_dir, "--teacher-start", "1", "--cfg", "6"], capsys, tmp_path, "cfg")
    assert not torch.equal(guided.tokens, ref.tokens) and guided.settings["sampling"]["cfg"] == 6.0
    greedy = sample(["--student", student_dir, "--teacher-start", "1", "--top-k", "1", "--cfg", "1"], capsys, tmp_path, "k1")
    assert not torch.equal(greedy.tokens, ref.tokens) and greedy.settings["sampling"]["top_k"] == 1
    low = sample(["--student", student_dir, "--teacher-start", "1", "--dtype", "bf16", "--fast"], capsys, tmp_path, "low")
    assert low.code == 0, low.err
    assert low.weights["student"] == "bfloat16" and low.weights["teacher.transformer"] == "bfloat16"
    assert low.settings["execution"]["fast"] is True
    comp = sample(["--student", student_dir, "--teacher-start", "1", "--compile", "default"], capsys, tmp_path, "comp")
    assert comp.code == 0, comp.err
    assert {c["mode"] for c in compile_calls} == {"default"} and all(c["calls"] > 0 for c in compile_calls)
    assert len(compile_calls) == 2  # the student's forward and the teacher's per-scale step


# ------------------------------------------------------------------------------------------------------ CoDe
def test_code_pair_applies_every_option_to_both_models(student_dir, tmp_path, capsys, compile_calls):
    pair = ["--drafter", "var-toy-l", "--refiner", "var-toy-s", "--draft-steps", "2"]
    ref = sample(pair, capsys, tmp_path, "ref")
    assert ref.code == 0, ref.err
    assert "N=2" in ref.out
    low = sample([*pair, "--dtype", "bf16", "--fast"], capsys, tmp_path, "low")
    assert low.code == 0, low.err
    assert {k: v for k, v in low.weights.items() if k.endswith("transformer")} == {
        "drafter.transformer": "bfloat16", "refiner.transformer": "bfloat16"}, low.weights
    assert low.settings["execution"] == {"dtype": "bfloat16", "fast": True, "compile": None}
    comp = sample([*pair, "--compile", "default"], capsys, tmp_path, "comp")
    assert comp.code == 0, comp.err
    assert len(compile_calls) == 2 and all(c["calls"] > 0 for c in compile_calls)  # drafter's and refiner's steps
    assert torch.equal(comp.tokens, ref.tokens)
    guided = sample([*pair, "--cfg", "6"], capsys, tmp_path, "cfg")
    assert not torch.equal(guided.tokens, ref.tokens)
    greedy = sample([*pair, "--top-k", "1", "--cfg", "1"], capsys, tmp_path, "k1")
    greedy9 = sample([*pair, "--top-k", "1", "--cfg", "1", "--seed", "9"], capsys, tmp_path, "k19")
    assert torch.equal(greedy.tokens, greedy9.tokens)
    refused([*pair, "--teacher", TEACHER], capsys, tmp_path, "--teacher applies only without --drafter/--refiner")


# ------------------------------------------------------------------------------------------------- baselines
def test_skip_baseline_takes_every_option(tmp_path, capsys, compile_calls):
    ref = sample(["--teacher", TEACHER, "--baseline", "skip-2"], capsys, tmp_path, "ref")
    assert ref.code == 0, ref.err
    assert "skip-2 baseline of var-toy-s" in ref.out
    low = sample(["--teacher", TEACHER, "--baseline", "skip-2", "--dtype", "bf16", "--fast"], capsys, tmp_path, "low")
    assert low.weights == {"transformer": "bfloat16", "decoder": "bfloat16"} and low.settings["execution"]["fast"] is True
    comp = sample(["--teacher", TEACHER, "--baseline", "skip-2", "--compile", "default"], capsys, tmp_path, "comp")
    assert comp.code == 0 and compile_calls and all(c["calls"] > 0 for c in compile_calls)
    assert torch.equal(comp.tokens, ref.tokens)
    greedy = sample(["--teacher", TEACHER, "--baseline", "skip-2", "--top-k", "1", "--cfg", "1"], capsys, tmp_path, "k1")
    greedy9 = sample(["--teacher", TEACHER, "--baseline", "skip-2", "--top-k", "1", "--cfg", "1", "--seed", "9"], capsys, tmp_path, "k9")
    assert torch.equal(greedy.tokens, greedy9.tokens) and not torch.equal(greedy.tokens, ref.tokens)


@pytest.mark.parametrize("argv, needle", [
    (["--fast"], "--fast does not apply to the onestep baseline"),
    (["--compile", "default"], "--compile does not apply to the onestep baseline"),
    (["--cfg", "2"], "--cfg does not apply to the onestep baseline"),
    (["--temperature", "2"], "--temperature does not apply to the onestep baseline"),
])
def test_onestep_refuses_what_it_does_not_take(tmp_path, capsys, argv, needle):
    refused(["--teacher", TEACHER, "--baseline", "onestep", *argv], capsys, tmp_path, needle)


def test_unknown_baseline_and_misplaced_options_are_one_line(student_dir, tmp_path, capsys):
    refused(["--teacher", TEACHER, "--baseline", "skip-x"], capsys, tmp_path, "unknown baseline 'skip-x'")
    refused(["--teacher", TEACHER, "--steps", "2"], capsys, tmp_path, "--steps applies only with --student")
    refused(["--teacher", TEACHER, "--draft-steps", "2"], capsys, tmp_path, "--draft-steps applies only to a CoDe pair")
    refused(["--student", student_dir, "--baseline", "skip-2"], capsys, tmp_path, "--baseline applies only without --student")
