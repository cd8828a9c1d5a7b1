"""The DD2 student as a product: saved to a folder and loaded through `ardistill.load_student`, sampling in one pass
or with the teacher finishing the last AR steps (spec §6), the bench rows `dd2-Kstep` with their forward passes
counted, and `ardistill sample --student` on it (options taken or refused). var-toy-s, an untrained generator whose
head is randomised so that its outputs depend on the noise and the class."""

import json

import pytest
import torch

import ardistill
from ardistill.bench.methods import measure_counts
from ardistill.cli import main
from ardistill.errors import ArdistillError, BadArgumentError
from ardistill.generators import dd_generators
from ardistill.methods.dd2.student import DD2Student, load_dd2_student

TEACHER = "var-toy-s"


@pytest.fixture(scope="module")
def teacher():
    torch.set_num_threads(1)
    return ardistill.load_teacher(TEACHER)


@pytest.fixture(scope="module")
def student_dir(teacher, tmp_path_factory):
    student = DD2Student.untrained(teacher, head_width=32, head_depth=1, seed=0)
    with torch.no_grad():  # a head with a non-zero output: q depends on ε, the class and the features
        torch.manual_seed(0)
        student.model.head.out.weight.normal_(0, 0.5)
        student.model.head.final_ada[-1].weight.normal_(0, 0.05)
    return student.save(tmp_path_factory.mktemp("dd2"), extra={"note": "test"})


def test_folder_loads_through_the_public_api_and_reproduces_the_saved_generator(teacher, student_dir):
    card = json.loads((student_dir / "student.json").read_text())
    assert card["format"] == "ardistill-dd2-student" and card["teacher"] == TEACHER and card["note"] == "test"
    student = ardistill.load_student(student_dir)  # the card names the teacher
    assert student.method == "dd2" and student.teacher.name == TEACHER
    again = load_dd2_student(student_dir, teacher=teacher)
    labels = torch.tensor([0, 3, 7])
    a = student.sample(labels, seed=5, return_embeddings=True)
    b = again.sample(labels, seed=5, return_embeddings=True)
    assert a.shape == (3, teacher.tokens_per_image, teacher.codebook.shape[1]) and torch.equal(a, b)
    noise = student.noise(3, 5)
    assert torch.equal(student.sample(labels, noise=noise, return_embeddings=True), a)
    assert not torch.equal(student.sample(labels, seed=6, return_embeddings=True), a)
    tokens = student.sample(labels, seed=5)
    d = ((a[:, :, None, :] - student.codebook[None, None]) ** 2).sum(-1)
    assert torch.equal(tokens, d.argmin(-1))  # tokens = nearest codes of the continuous output
    images = teacher.decode_embeddings(a)
    assert images.shape == (3, 3, teacher.image_size, teacher.image_size) and 0 <= images.min() and images.max() <= 1


def test_teacher_finishes_the_last_steps_from_the_generators_prefix(teacher, student_dir):
    student = ardistill.load_student(student_dir, teacher=teacher)
    labels = torch.tensor([1, 2])
    one = student.sample(labels, seed=9)
    keep = sum(teacher.step_sizes[:-1])  # steps=2: the generator's first num_steps − 1 scales, the teacher's last one
    two = student.sample(labels, steps=2, seed=9)
    assert torch.equal(two[:, :keep], one[:, :keep]) and not torch.equal(two[:, keep:], one[:, keep:])
    with teacher.start_steps(labels, seed=9, prefix=one[:, :keep], **student.family.settings) as run:
        expected = run.run(stop=teacher.num_steps)
    assert torch.equal(two, expected)
    emb = student.sample(labels, steps=2, seed=9, return_embeddings=True)
    assert torch.equal(emb[:, :keep], student.sample(labels, seed=9, return_embeddings=True)[:, :keep])
    assert torch.equal(emb[:, keep:], student.codebook[two[:, keep:]])
    full = student.sample(labels, steps=teacher.num_steps, seed=9)  # the generator keeps scale 0 only
    assert torch.equal(full[:, :1], one[:, :1])


def test_bad_steps_noise_and_cards_are_one_line_errors(teacher, student_dir, tmp_path):
    student = ardistill.load_student(student_dir, teacher=teacher)
    for steps in (0, teacher.num_steps + 1):
        with pytest.raises(BadArgumentError, match="steps"):
            student.sample(torch.tensor([0]), steps=steps)
    with pytest.raises(BadArgumentError, match="noise must have shape"):
        student.sample(torch.tensor([0]), noise=torch.zeros(1, 3, 3))
    bad = tmp_path / "bad"
    bad.mkdir()
    card = json.loads((student_dir / "student.json").read_text())
    (bad / "student.json").write_text(json.dumps({**card, "head_width": "wide"}))
    (bad / "student.safetensors").write_bytes((student_dir / "student.safetensors").read_bytes())
    with pytest.raises(ArdistillError, match=r"student.json: head_width: expected an integer") as e:
        ardistill.load_student(bad)
    assert "\n" not in str(e.value)


def test_card_carries_the_generators_input(teacher, student_dir, tmp_path):
    """Decision 23: the card's generator_t / generator_prefix_scale rebuild the generator's input; a card without them
    (every student before it) is the paper's t = 1; a bad value is a one-line error naming the card."""
    card = json.loads((student_dir / "student.json").read_text())
    assert (card["generator_t"], card["generator_prefix_scale"]) == (1.0, 1.0)
    weights = (student_dir / "student.safetensors").read_bytes()

    def folder(name: str, **changes) -> str:
        d = tmp_path / name
        d.mkdir()
        (d / "student.json").write_text(json.dumps({k: v for k, v in {**card, **changes}.items() if v is not None}))
        (d / "student.safetensors").write_bytes(weights)
        return str(d)

    labels = torch.tensor([2, 5])
    saved = load_dd2_student(student_dir, teacher=teacher)
    old = load_dd2_student(folder("old", generator_t=None, generator_prefix_scale=None), teacher=teacher)
    assert torch.equal(old.sample(labels, seed=1, return_embeddings=True), saved.sample(labels, seed=1, return_embeddings=True))
    low = load_dd2_student(folder("low", generator_t=0.7, generator_prefix_scale=0.5), teacher=teacher)
    net, noise = saved.model, saved.noise(2, 1)
    x = 0.7 * noise
    expected = net.denoise(x, torch.full(x.shape[:2], 0.7), net.features(labels, 0.5 * noise)) / saved.family.code_scale
    assert torch.allclose(low.sample(labels, seed=1, return_embeddings=True), expected, atol=1e-6)
    with pytest.raises(ArdistillError, match=r"student.json: the generator's noise level must be in \(0, 1\]") as e:
        load_dd2_student(folder("bad", generator_t=2.0), teacher=teacher)
    assert "\n" not in str(e.value)


def test_bench_rows_count_one_generator_pass_and_the_teachers_steps(teacher, student_dir):
    student = ardistill.load_student(student_dir, teacher=teacher)
    one, two = dd_generators(student, steps=(1, 2))
    assert (one.name, two.name) == ("dd2-1step", "dd2-2step") and one.output == "embeddings"
    labels = torch.tensor([0, 1])
    c1 = measure_counts(one, labels)
    assert c1.ar_steps == 1 and c1.forward_passes_per_image == 1
    c2 = measure_counts(two, labels)
    teacher_calls = {r: n for r, n in c2.per_role.items() if r.startswith("teacher.")}
    assert c2.per_role["model"]["calls"] == 1 and sum(n["calls"] for n in teacher_calls.values()) >= 1
    assert c2.ar_steps == 1 + sum(n["calls"] for n in teacher_calls.values())
    images = one.decode(one.generate_tokens(labels, 0))
    assert images.shape[0] == 2


def _run(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
    out = capsys.readouterr()
    return e.value.code, out.err


def test_cli_samples_a_dd2_student_and_refuses_what_it_does_not_take(student_dir, tmp_path, capsys):
    png = tmp_path / "g.png"
    code, err = _run(["sample", "--student", student_dir, "--steps", "2", "--num-images", "2", "--out", png], capsys)
    assert code in (0, None) and png.is_file(), err
    for extra, needle in ((["--cfg", "2"], "--cfg does not apply"), (["--teacher-start", "1"], "--steps K"),
                          (["--steps", "99"], "steps")):
        code, err = _run(["sample", "--student", student_dir, "--num-images", "1", "--out", tmp_path / "r.png", *extra], capsys)
        assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, (extra, err)
