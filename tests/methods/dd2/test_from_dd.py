"""Decision 24: a DD student as DD2's generator. Its read-outs are the DD sampler's own outputs (the argmax codes as
the softmax sharpens, the continuous head as it is) in network space, gradients reach every student weight, a
recipe starts CSD from a student folder and the saved DD2 student reloads bit for bit; bad combinations are one-line
errors. A DD2 student named there is continued (its generator and input, ψ from GTS). var-toy-s, random DD student,
tiny settings."""

import json

import pytest
import torch

import ardistill
from ardistill.bench.toy_models import write_random_student
from ardistill.errors import ArdistillError
from ardistill.methods.dd.student import load_student
from ardistill.methods.dd2.family import family_adapter
from ardistill.methods.dd2.recipe import load_dd2_recipe
from ardistill.methods.dd2.train import dd2_student_generator, dd_student_generator, train_dd2_student
from ardistill.models.dd2.from_dd import DDStudentGenerator

TEACHER = "var-toy-s"


@pytest.fixture(scope="module")
def teacher():
    torch.set_num_threads(1)
    return ardistill.load_teacher(TEACHER)


@pytest.fixture(scope="module")
def dd_folder(teacher, tmp_path_factory):
    return write_random_student(teacher, tmp_path_factory.mktemp("dd") / "random-dd")


def recipe_text(init: str, network: str = "") -> str:
    return f"""kind: dd2-student
name: dd2-from-dd
teacher: {TEACHER}
network: {{head_width: 32, head_depth: 2, generator_init: "{init}"{network}}}
pool: {{num: 16, batch_size: 8}}
gts: {{batch_size: 4, head_steps: 2, full_steps: 1, ckpt_every: 2, log_every: 1}}
csd: {{steps: 2, batch_size: 4, guidance_steps: 1, ckpt_every: 1, log_every: 1, lr: 1.0e-3, warmup_steps: 1}}
eval: {{every: 0, num: 16}}
"""


def write(tmp_path, text: str):
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


def test_read_outs_are_the_dd_samplers_outputs_and_train_every_weight(teacher, dd_folder):
    dd = load_student(dd_folder, teacher=teacher)
    fam = family_adapter(teacher)
    labels, noise = torch.tensor([0, 3]), dd.noise(2, seed=1)
    split = dd.data_tokens(dd.config.split)  # the DD sampler: argmax codes below the split, the continuous head after
    tokens, emb = dd.sample(labels, noise=noise), dd.sample(labels, noise=noise, return_embeddings=True)
    sharp = DDStudentGenerator(dd.model, teacher.codebook, fam.code_scale, temperature=1e-6)
    cont = DDStudentGenerator(dd.model, teacher.codebook, fam.code_scale, output="continuous")
    with torch.no_grad():
        q_sharp, q_cont = sharp(noise, labels), cont(noise, labels)
    assert q_sharp.shape == q_cont.shape == (2, teacher.tokens_per_image, teacher.codebook.shape[1])
    assert torch.equal(fam.nearest_codes(q_sharp)[:, :split], tokens[:, :split])
    torch.testing.assert_close(q_cont[:, split:] / fam.code_scale, emb[:, split:])
    assert torch.equal(fam.nearest_codes(q_cont)[:, split:], tokens[:, split:])
    assert sharp.forward_pass_module is dd.model

    gen = DDStudentGenerator(dd.model, teacher.codebook, fam.code_scale)  # expected, temperature 1
    gen(noise, labels).square().sum().backward()
    grads = {n: p.grad for n, p in gen.named_parameters()}
    assert any(g is not None and g.abs().sum() > 0 for n, g in grads.items() if "head" in n or "output" in n)
    assert "codebook" not in gen.state_dict()  # it comes from the teacher, not the student's file
    with pytest.raises(ValueError, match="expected or continuous"):
        DDStudentGenerator(dd.model, teacher.codebook, fam.code_scale, output="argmax")
    with pytest.raises(ValueError, match="> 0"):
        DDStudentGenerator(dd.model, teacher.codebook, fam.code_scale, temperature=0.0)


@pytest.mark.parametrize("network, key", [
    (", generator_t: 0.7", "network.generator_t"),
    (", generator_prefix_scale: 0.5", "network.generator_prefix_scale"),
    (", generator_temperature: 0.0", "network.generator_temperature"),
    (", generator_output: continuous, generator_temperature: 0.5", "network.generator_temperature"),
])
def test_recipe_refuses_settings_that_would_be_ignored(tmp_path, network, key):
    with pytest.raises(ArdistillError) as e:
        load_dd2_recipe(write(tmp_path, recipe_text("dd-var-toy-l", network)))
    assert key in str(e.value) and "\n" not in str(e.value)


def test_read_out_without_a_dd_student_is_refused(tmp_path):
    text = recipe_text("x").replace('generator_init: "x"', "generator_output: continuous")
    with pytest.raises(ArdistillError, match="network.generator_output.*generator_init"):
        load_dd2_recipe(write(tmp_path, text))


def test_generator_init_must_be_a_student_of_this_teacher(teacher, tmp_path):
    fam = family_adapter(teacher)
    net = fam.new_network(head_width=32, head_depth=2)
    with pytest.raises(ArdistillError, match="not a DD student folder.*ardistill-dd2-student"):
        dd_student_generator(fam, load_dd2_recipe(write(tmp_path, recipe_text("dd2-var-toy-l"))).network)
    for init in ("dd-var-toy-l", "dd2-var-toy-l"):
        recipe = load_dd2_recipe(write(tmp_path, recipe_text(init)))
        with pytest.raises(ArdistillError, match="distils var-toy-l, not var-toy-s"):
            dd2_student_generator(fam, recipe, net) or dd_student_generator(fam, recipe.network)


def test_continue_a_dd2_student(teacher, tmp_path):
    """generator_init naming a DD2 student: the generator starts from its weights with its own input (noise level,
    prefix scale), ψ from GTS; a card that disagrees with the recipe on the generator is a one-line error."""
    first = load_dd2_recipe(write(tmp_path, recipe_text("x").replace('generator_init: "x"',
                                                                      "generator_t: 0.7, generator_prefix_scale: 0.5")))
    train_dd2_student(teacher, first, tmp_path / "first", progress=False)
    fam = family_adapter(teacher)
    net = fam.new_network(head_width=32, head_depth=2)
    recipe = load_dd2_recipe(write(tmp_path, recipe_text(str(tmp_path / "first"))))
    generator = dd2_student_generator(fam, recipe, net)
    saved = ardistill.load_student(tmp_path / "first", teacher=teacher)
    assert (generator.generator_t, generator.generator_prefix_scale) == (0.7, 0.5)
    assert all(torch.equal(v, saved.model.state_dict()[k]) for k, v in generator.state_dict().items())
    student = train_dd2_student(teacher, recipe, tmp_path / "second", progress=False)
    card = json.loads((tmp_path / "second" / "student.json").read_text())
    assert (card["generator_arch"], card["generator_t"], card["generator_prefix_scale"]) == ("dd2-net", 0.7, 0.5)
    assert card["generator_init"] == str(tmp_path / "first")
    assert any(not torch.equal(v, saved.model.state_dict()[k]) for k, v in student.model.state_dict().items())
    labels = torch.tensor([1, 2])
    assert torch.equal(ardistill.load_student(tmp_path / "second", teacher=teacher).sample(labels, seed=3),
                       student.sample(labels, seed=3))
    init = str(tmp_path / "first")
    for text, words in ((recipe_text(init, ", generator_output: continuous"), "generator_output"),
                        (recipe_text(init).replace("head_width: 32", "head_width: 16"), "head_width 32, this recipe 16"),
                        (recipe_text(init).replace("pool:", "sampling: {cfg: 3.0}\npool:"), "has sampling")):
        bad = load_dd2_recipe(write(tmp_path, text))
        with pytest.raises(ArdistillError, match=words) as e:
            dd2_student_generator(family_adapter(teacher, **bad.sampling.to_dict()), bad,
                                  fam.new_network(head_width=bad.network.head_width, head_depth=2))
        assert "\n" not in str(e.value)


def test_train_from_a_dd_student_saves_and_reloads(teacher, dd_folder, tmp_path):
    recipe = load_dd2_recipe(write(tmp_path, recipe_text(str(dd_folder))))
    student = train_dd2_student(teacher, recipe, tmp_path / "run", progress=False)
    card = json.loads((tmp_path / "run" / "student.json").read_text())
    assert (card["generator_arch"], card["generator_output"], card["generator_temperature"]) == ("dd-student", "expected", 1.0)
    assert card["generator_init"] == str(dd_folder) and card["generator_steps"] == 2
    start = load_student(dd_folder, teacher=teacher).model.state_dict()
    trained = {k.removeprefix("student."): v for k, v in student.model.state_dict().items()}
    assert trained.keys() == start.keys() and any(not torch.equal(trained[k], start[k]) for k in start)
    loaded = ardistill.load_student(tmp_path / "run", teacher=teacher)
    assert isinstance(loaded.model, DDStudentGenerator)
    labels = torch.tensor([1, 2])
    assert torch.equal(loaded.sample(labels, seed=3), student.sample(labels, seed=3))
    assert torch.equal(loaded.sample(labels, steps=2, seed=3), student.sample(labels, steps=2, seed=3))
