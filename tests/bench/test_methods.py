import pytest
import torch

import ardistill
from ardistill.bench.methods import build_methods, count_forward_passes, measure_counts, method_families
from ardistill.errors import ArdistillError


class FakeStudent:
    """A 'DD student' that runs `passes` full teacher-forced forwards of the teacher's network per step."""

    def __init__(self, teacher, passes: int):
        self.model, self.teacher, self.passes = teacher.transformer, teacher, passes

    def sample(self, labels, *, steps, seed, return_embeddings=False):
        tokens = torch.zeros(labels.shape[0], self.teacher.tokens_per_image, dtype=torch.long, device=labels.device)
        for _ in range(steps * self.passes):
            logits = self.teacher.logits(labels, tokens)  # one full forward [B, L, V]
            tokens = logits.argmax(-1)
        return self.teacher.codebook[tokens] if return_embeddings else tokens


def test_registry_has_the_three_families():
    assert {"teacher", "dd", "code"} <= set(method_families())


def test_teacher_counts_are_measured_per_scale_with_cfg_doubling(toy_teacher):
    (method,) = build_methods("teacher", teacher=toy_teacher)
    counts = measure_counts(method, torch.arange(3) % toy_teacher.num_classes)
    scales = toy_teacher.num_scales
    assert counts.ar_steps == scales  # one cached forward per scale
    assert counts.forward_passes_per_image == 2 * scales  # [cond; uncond] batch of 2B rows
    tokens = method.generate_tokens(torch.tensor([0, 1]), 0)
    assert tokens.shape == (2, toy_teacher.tokens_per_image)
    assert method.decode(tokens).shape == (2, 3, toy_teacher.image_size, toy_teacher.image_size)


def test_hooks_are_removed_after_counting(toy_teacher):
    head = toy_teacher.transformer.head
    with count_forward_passes({"head": head}) as tallies:
        head(torch.zeros(4, 1, head.in_features))
    head(torch.zeros(4, 1, head.in_features))
    assert tallies["head"] == [1, 4]


def test_dd_adapter_catches_a_student_running_twice_the_passes(toy_teacher, monkeypatch):
    monkeypatch.setattr(ardistill, "load_student", lambda path, teacher: FakeStudent(teacher, passes=1))
    honest = build_methods("dd", teacher=toy_teacher, student_dir="fake", steps=(1, 2))
    assert [m.name for m in honest] == ["dd-1step", "dd-2step"]
    labels = torch.arange(4) % toy_teacher.num_classes
    assert [measure_counts(m, labels).forward_passes_per_image for m in honest] == [1.0, 2.0]
    monkeypatch.setattr(ardistill, "load_student", lambda path, teacher: FakeStudent(teacher, passes=2))
    (doubled,) = build_methods("dd", teacher=toy_teacher, student_dir="fake", steps=(1,))
    assert measure_counts(doubled, labels).forward_passes_per_image == 2.0


def test_dd_adapter_without_the_package_is_one_line(toy_teacher, monkeypatch):
    monkeypatch.delattr(ardistill, "load_student", raising=False)
    with pytest.raises(ArdistillError, match="--student needs the DD package") as e:
        build_methods("dd", teacher=toy_teacher, student_dir="x")
    assert "\n" not in str(e.value)


def test_code_adapter_counts_drafter_and_refiner_separately(toy_pair, monkeypatch):
    drafter, refiner = toy_pair

    class FakeCoDe:
        def __init__(self, d, r):
            self.d, self.r = d, r

        def sample(self, labels, *, draft_steps, seed):
            for _ in range(draft_steps):
                self.d.logits(labels, torch.zeros(labels.shape[0], self.d.tokens_per_image, dtype=torch.long))
            return self.r.sample(labels, seed=seed)

        def decode(self, tokens):
            return self.d.decode(tokens)

    monkeypatch.setattr(ardistill, "CoDe", FakeCoDe)
    methods = build_methods("code", drafter=drafter, refiner=refiner, draft_steps=(1, 3))
    assert [m.name for m in methods] == ["code-1", "code-3"] and [m.x_value for m in methods] == [1, 3]
    counts = measure_counts(methods[1], torch.arange(2))
    assert counts.per_role["drafter.transformer"] == {"calls": 3, "rows_per_image": 3.0}
    assert counts.per_role["refiner.transformer"]["calls"] == refiner.num_scales


def test_real_code_pair_runs_drafter_then_refiner(toy_pair):
    drafter, refiner = toy_pair
    (method,) = build_methods("code", drafter=drafter, refiner=refiner, draft_steps=(2,))
    counts = measure_counts(method, torch.arange(2))
    assert counts.per_role["drafter.transformer"]["calls"] == 2
    assert counts.per_role["refiner.transformer"]["calls"] == drafter.num_scales - 2


def test_llamagen_teacher_counts_one_forward_per_token(monkeypatch):
    from ardistill import registry
    from ardistill.models.llamagen.config import GPTConfig, VQConfig
    from ardistill.registry import ModelSpec

    vq = VQConfig(codebook_size=64, codebook_embed_dim=8, encoder_ch_mult=(1, 1, 2), decoder_ch_mult=(1, 1, 2), z_channels=64, ch=32,
                  num_res_blocks=1)
    cfg = GPTConfig(dim=64, n_layer=2, n_head=4, num_classes=10, vocab_size=64, block_size=16, vq=vq)
    registry.list_models()
    spec = ModelSpec(name="llamagen-bench-test", family="llamagen", config=cfg, files=(), tokens_per_image=16,
                     image_size=cfg.image_size, sampling_defaults=dict(cfg=2.0, top_k=0, top_p=1.0, temperature=1.0))
    monkeypatch.setitem(registry._MODELS, spec.name, spec)
    teacher = ardistill.load_teacher(spec.name, random_init=True)
    (guided,) = build_methods("teacher", teacher=teacher)
    (unguided,) = build_methods("teacher", teacher=teacher, sampling={"cfg": 1.0})
    labels = torch.tensor([0, 1, 2])
    assert measure_counts(guided, labels).to_dict()["ar_steps"] == 16  # prefill (class token → token 0) + 15 steps
    assert measure_counts(guided, labels).forward_passes_per_image == 32  # [cond; uncond] while cfg > 1
    assert measure_counts(unguided, labels).forward_passes_per_image == 16  # LlamaGen drops the uncond half at cfg 1


def test_dd_generators_decode_the_continuous_vectors_as_the_training_evaluation(toy_teacher, tmp_path):
    """One decode rule for DD students: `teacher.decode_embeddings(student.sample(..., return_embeddings=True))` in
    `ardistill sample`, `ardistill bench` (both built here) and the training evaluation (`toy_eval_fn`)."""
    from ardistill.bench.toy_models import write_random_student
    from ardistill.generators import GeneratorBuilder

    folder = write_random_student(toy_teacher, tmp_path)
    builder = GeneratorBuilder(random_init=True)
    gens = builder.dd(folder, teacher=toy_teacher, steps=(1, 2))
    student = ardistill.load_student(folder, teacher=toy_teacher)
    labels = torch.arange(3) % toy_teacher.num_classes
    for gen, steps in zip(gens, (1, 2)):
        out = gen.generate_tokens(labels, 5)
        assert gen.output == "embeddings" and out.shape == (3, toy_teacher.tokens_per_image, toy_teacher.codebook.shape[1])
        expected = toy_teacher.decode_embeddings(student.sample(labels, steps=steps, seed=5, return_embeddings=True))
        assert torch.equal(gen.decode(out), expected)
        assert torch.equal(gen.tokens(out), student.sample(labels, steps=steps, seed=5))  # ids: the student's own tokens


@pytest.mark.slow
def test_compiled_dd_student_gives_the_eager_outputs_and_counts(toy_teacher, tmp_path):
    """--compile on a DD student (inductor on CPU, ~2 min): the compiled forward gives the eager vectors and ids, and
    the forward-pass counts stay measured (a compiled graph traced before the hooks would otherwise count 0)."""
    from ardistill.bench.toy_models import write_random_student
    from ardistill.generators import ExecutionOptions, GeneratorBuilder

    folder = write_random_student(toy_teacher, tmp_path)
    eager = GeneratorBuilder(random_init=True).dd(folder, steps=(1, 2))  # each builder loads its own teacher, as asked
    comp = GeneratorBuilder(execution=ExecutionOptions(compile="default"), random_init=True).dd(folder, steps=(1, 2))
    labels = torch.arange(4) % toy_teacher.num_classes
    for c, e in zip(comp, eager):
        out_c, out_e = c.generate_tokens(labels, 0), e.generate_tokens(labels, 0)  # compiles on the first call
        assert torch.allclose(out_c, out_e, atol=1e-4) and torch.equal(c.tokens(out_c), e.tokens(out_e))
        assert measure_counts(c, labels).to_dict() == measure_counts(e, labels).to_dict()
        assert measure_counts(c, labels).ar_steps == c.x_value
