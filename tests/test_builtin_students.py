"""The shipped students: each loads by name through the stable API with no other argument, samples deterministically
in one pass (and two steps), decodes through its teacher, is listed by `ardistill models`, and carries a model card
measured at install by the evaluation protocol with the shipped evaluator. `ardistill student install` makes such a
folder from a training folder (DD and DD2), measuring the installed (fp16-stored) copy."""

import json

import pytest
import torch

import ardistill
from ardistill.bench.toy_models import write_random_student
from ardistill.cli import main
from ardistill.errors import BadArgumentError
from ardistill.methods.dd2.student import DD2Student
from ardistill.registry import PACKAGE_WEIGHTS, get_model_spec
from ardistill.pipelines.student_install import FP16_MIN_NUMEL, install_student, model_card_markdown
from ardistill.students import builtin_student_dir, builtin_student_names

# name → (method, teacher, tokens, code dim)
SHIPPED = {
    "dd-var-toy-l": ("dd", "var-toy-l", 130, 32),
    "dd2-var-toy-l": ("dd2", "var-toy-l", 130, 32),
    "dd-llamagen-toy": ("dd", "llamagen-toy", 64, 8),
    "dd2-llamagen-toy": ("dd2", "llamagen-toy", 64, 8),
}


def test_the_four_students_are_shipped_within_the_budget():
    assert builtin_student_names() == sorted(SHIPPED)
    total = sum((PACKAGE_WEIGHTS / n / "student.safetensors").stat().st_size for n in SHIPPED)
    assert total <= 30 * 2**20, f"{total / 2**20:.1f} MB of students in the package (budget 30 MB)"


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_student_loads_by_name_and_samples(name):
    torch.set_num_threads(1)
    method, teacher_name, tokens, code_dim = SHIPPED[name]
    student = ardistill.load_student(name)
    assert student.teacher.name == teacher_name
    labels = torch.tensor([0, 5, 11])
    out = student.sample(labels, steps=1, seed=3)
    assert out.shape == (3, tokens) and out.dtype == torch.long
    assert torch.equal(out, student.sample(labels, steps=1, seed=3))
    noise = torch.randn(3, tokens, code_dim, generator=torch.Generator().manual_seed(1))
    emb = student.sample(labels, noise=noise, return_embeddings=True)
    assert emb.shape == (3, tokens, code_dim) and torch.equal(emb, student.sample(labels, noise=noise, return_embeddings=True))
    images = student.teacher.decode(out)
    assert images.shape == (3, 3, 32, 32) and 0 <= images.min() and images.max() <= 1
    assert student.teacher.decode_embeddings(emb).shape == (3, 3, 32, 32)
    assert student.sample(labels, steps=2, seed=3).shape == (3, tokens)
    spec = get_model_spec(name)
    assert spec.kind == "student" and spec.builtin and spec.family == f"{method}-{SHIPPED[name][1].split('-')[0]}"


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_cards_were_measured_by_the_protocol(name):
    folder = builtin_student_dir(name)
    card = json.loads((folder / "student.json").read_text())
    evaluator = json.loads((PACKAGE_WEIGHTS / "evaluator" / "card.json").read_text())["sha256"]
    m = card["builtin"]["metrics"]
    assert card["method"] == SHIPPED[name][0] and card["teacher"] == SHIPPED[name][1]
    assert m["num"] == 1000 and m["evaluator_sha256"] == evaluator and m["protocol"].startswith("ardistill.eval.protocol")
    for k in ("1step", "2step"):
        assert 0 < m[k]["fid"] < 200 and 0 <= m[k]["class_accuracy"] <= 1
    assert "trajectories" not in card and card["recipe"].startswith(f"recipes/{SHIPPED[name][0]}/")  # no trainer's paths
    readme = (folder / "README.md").read_text()
    assert f"{m['1step']['fid']:.2f}" in readme and f"load_student('{name}')" in readme
    assert readme == model_card_markdown(name, card)  # written from the card, never edited by hand
    if card.get("generator_init"):  # a continued student says what it started from, not only this run's minutes
        assert f"generator started from `{card['generator_init']}`" in readme


def test_models_lists_the_shipped_students(capsys):
    with pytest.raises(SystemExit) as e:
        main(["models", "--family", "dd2-var"])
    assert e.value.code == 0
    assert "dd2-var-toy-l" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------- install
@pytest.fixture(scope="module")
def teacher():
    torch.set_num_threads(1)
    return ardistill.load_teacher("var-toy-s")


@pytest.mark.parametrize("method", ["dd", "dd2"])
def test_install_stores_for_shipping_and_measures_the_installed_copy(method, teacher, tmp_path):
    run = tmp_path / "run"
    if method == "dd":
        write_random_student(teacher, run)
    else:
        student = DD2Student.untrained(teacher, head_width=32, head_depth=1, seed=0)
        with torch.no_grad():
            student.model.head.out.weight.normal_(0, 0.5)
        student.save(run, extra={"seconds": {"pool": 1.0, "gts": 2.0, "csd": 3.0, "total": 6.0}})
    root = tmp_path / "weights"
    dest = install_student(run, f"{method}-tiny", root=root, steps=(1, 2), num=16)
    assert dest == root / f"{method}-tiny" and builtin_student_dir(f"{method}-tiny", root=root) == dest
    assert not any(p.name.startswith(".") for p in root.iterdir())  # no staging folder left behind
    from safetensors.torch import load_file

    stored, original = load_file(dest / "student.safetensors"), load_file(run / "student.safetensors")
    assert stored.keys() == original.keys()
    for k, v in stored.items():
        big = original[k].is_floating_point() and original[k].numel() >= FP16_MIN_NUMEL
        assert v.dtype == (torch.float16 if big else original[k].dtype), k
        assert torch.allclose(v.float(), original[k].float(), rtol=1e-3, atol=1e-4), k
    card = json.loads((dest / "student.json").read_text())
    m = card["builtin"]["metrics"]
    assert card["name"] == f"{method}-tiny" and "trajectories" not in card and m["num"] == 16 and {"1step", "2step"} <= set(m)
    # the card's numbers are those of the installed copy, by the protocol
    from ardistill.eval.protocol import student_generator, toy_quality

    again = toy_quality(student_generator(ardistill.load_student(dest), steps=1), 16, image_size=32, across_ranks=False)
    assert abs(again["fid"] - m["1step"]["fid"]) < 1e-3 and again["class_accuracy"] == m["1step"]["class_accuracy"]
    # installing again replaces it in place
    assert install_student(run, f"{method}-tiny", root=root, steps=(1,), num=16) == dest
    assert set(json.loads((dest / "student.json").read_text())["builtin"]["metrics"]) >= {"1step"}


def test_install_refuses_what_it_cannot_ship(teacher, tmp_path):
    with pytest.raises(ardistill.ArdistillError, match="not a finished student folder"):
        install_student(tmp_path, "x", root=tmp_path / "w", num=16)
    run = write_random_student(teacher, tmp_path / "run")
    with pytest.raises(BadArgumentError, match="plain model name"):
        install_student(run, "../escape", root=tmp_path / "w", num=16)
    (tmp_path / "w" / "taken").mkdir(parents=True)
    with pytest.raises(BadArgumentError, match="not a built-in student"):
        install_student(run, "taken", root=tmp_path / "w", num=16)
    with pytest.raises(BadArgumentError, match="samples in 1 or 2 steps"):
        install_student(run, "ok", root=tmp_path / "w", steps=(3,), num=16)
    assert not (tmp_path / "w" / "ok").exists()


def test_install_cli_bad_input_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["student", "install", str(tmp_path), "--name", "x", "--weights-root", str(tmp_path / "w")])
    err = capsys.readouterr().err
    assert e.value.code != 0 and "not a finished student folder" in err and "Traceback" not in err


def test_a_run_benches_the_shipped_students_beside_its_own(tmp_path):
    """`ardistill distill` benches the teacher's shipped students (rows `<name>-{K}step`) and its report shows them."""
    from ardistill.bench.run import BenchConfig, run_benchmark
    from ardistill.bench.speed import SpeedSettings
    from ardistill.pipelines.distill import DistillPlan, report_markdown
    from ardistill.students import builtin_students_of

    torch.set_num_threads(1)
    shipped = tuple(builtin_students_of("var-toy-l"))
    assert shipped == tuple(sorted(n for n, v in SHIPPED.items() if v[1] == "var-toy-l"))  # DD first, then DD2
    doc = run_benchmark(BenchConfig(teacher="var-toy-l", dd_steps=(1,), shipped_students=shipped,
                                    speed=SpeedSettings(batch_sizes=(1,), repeats=1, warmup=0)),
                        on_grid=lambda name, images, caption: f"grid-{name}.png")
    names = [m["name"] for m in doc["methods"]]
    assert names == ["teacher", *(f"{n}-1step" for n in shipped)]
    report = report_markdown(DistillPlan(teacher="var-toy-l", recipe="recipes/dd/var-toy-l.yaml", out=tmp_path, steps=(1,)), doc)
    assert "shipped, fully trained students" in report
    assert all(f"bench/grid-{n}-1step.png" in report for n in shipped)
