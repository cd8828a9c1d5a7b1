"""DD2 for LlamaGen: the continuous input embedding (ids and code vectors through one module), the adapted GPT still
sampling with the teacher's sampler, the backbone's causality (feature i reads tokens < i only), the adaptation stages
lowering their losses, and the whole recipe pipeline (adaptation → GTS → CSD → a student folder loaded by
`ardistill.load_student`). llamagen-toy, tiny settings."""

import json

import pytest
import torch

import ardistill
from ardistill.errors import ArdistillError
from ardistill.methods.dd2.family import family_adapter
from ardistill.methods.dd2.gts import make_teacher_pool
from ardistill.methods.dd2.llamagen import LlamaGenFamily, adaptation_kl
from ardistill.methods.dd2.recipe import DD2Adaptation, load_dd2_recipe
from ardistill.methods.dd2.train import train_dd2_student
from ardistill.models.dd2.llamagen import LlamaGenBackbone, with_continuous_embedding

TEACHER = "llamagen-toy"


@pytest.fixture(scope="module")
def teacher():
    torch.set_num_threads(1)
    return ardistill.load_teacher(TEACHER)


@pytest.fixture(scope="module")
def family(teacher):
    return family_adapter(teacher)


def test_adapter_is_registered_and_embedding_reads_ids_and_vectors(teacher, family):
    assert isinstance(family, LlamaGenFamily) and family.needs_adaptation
    emb = family.fresh_embedding(32)
    ids = torch.tensor([[0, 5, 511], [3, 3, 7]])
    assert torch.equal(emb(ids), emb(teacher.codebook.float()[ids]))
    assert emb(ids).shape == (2, 3, teacher.network.config.dim)


def test_adapted_gpt_samples_with_the_teacher_sampler_and_backbone_is_causal(teacher, family):
    gpt = with_continuous_embedding(teacher.network, family.fresh_embedding(32, seed=1))
    family.adapted_gpt = gpt
    try:
        adapted = family.adapted_teacher()
        tokens = adapted.sample(torch.tensor([1, 2]), seed=0)
        assert tokens.shape == (2, teacher.tokens_per_image) and tokens.dtype == torch.long
        # teacher forcing on ids = on their code vectors
        assert torch.allclose(gpt(torch.tensor([1, 2]), tokens[:, :-1]),
                              gpt(torch.tensor([1, 2]), teacher.codebook.float()[tokens[:, :-1]]), atol=1e-5)
    finally:
        family.adapted_gpt = None
    backbone = LlamaGenBackbone(gpt)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, teacher.tokens_per_image, 8, generator=g)
    f = backbone(torch.tensor([1, 2]), x)
    assert f.shape == (2, teacher.tokens_per_image, teacher.network.config.dim)
    i = 20
    y = x.clone()
    y[:, i:] = torch.randn(2, teacher.tokens_per_image - i, 8, generator=g)
    g2 = backbone(torch.tensor([1, 2]), y)
    assert torch.allclose(f[:, : i + 1], g2[:, : i + 1], atol=1e-5)  # row i reads tokens < i
    assert not torch.allclose(f[:, i + 1:], g2[:, i + 1:], atol=1e-3)


def test_adaptation_lowers_the_embedding_error_and_the_kl(teacher, tmp_path):
    family = LlamaGenFamily(teacher)
    pool = make_teacher_pool(family, 16, seed=3, batch_size=16, keep_probs=False)
    fresh = with_continuous_embedding(teacher.network, family.fresh_embedding(64)).requires_grad_(False)
    before, _ = adaptation_kl(fresh, teacher.network, pool.labels[:8], pool.tokens[:8], teacher.num_classes)
    report = family.adapt(pool.tokens, pool.labels, DD2Adaptation(hidden=64, fit_steps=150, steps=15, batch_size=8, lr=1e-3,
                                                                 warmup_steps=2), tmp_path / "adapt", resume=False, progress=False)
    with torch.no_grad():
        after, _ = adaptation_kl(family.adapted_gpt, teacher.network, pool.labels[:8], pool.tokens[:8], teacher.num_classes)
    assert report["fit_relative"] < 0.75 and float(after) < 0.7 * float(before), (report, float(before), float(after))
    assert family.embedding_hidden == 64 and family.new_network(head_width=8, head_depth=1).backbone.net.tok_embeddings.mlp[0].out_features == 64


def test_recipe_pipeline_makes_a_loadable_llamagen_student(teacher, tmp_path):
    path = tmp_path / "dd2-llama-tiny.yaml"
    path.write_text(f"""kind: dd2-student
teacher: {TEACHER}
network: {{head_width: 16, head_depth: 1}}
pool: {{num: 8, batch_size: 8}}
adaptation: {{hidden: 32, fit_steps: 5, steps: 2, batch_size: 4}}
gts: {{batch_size: 2, head_steps: 0, full_steps: 2}}
csd: {{steps: 2, batch_size: 2, guidance_steps: 1, generator_noise_draws: 2}}
eval: {{num: 4}}
""")
    recipe = load_dd2_recipe(path)
    student = train_dd2_student(teacher, recipe, tmp_path / "out", progress=False)
    card = json.loads((tmp_path / "out" / "student.json").read_text())
    assert card["family"] == "llamagen" and card["embedding_hidden"] == 32
    assert {"fit_relative", "kl", "adapted_fid"} <= set(card["adaptation"])
    loaded = ardistill.load_student(tmp_path / "out", teacher=teacher)
    labels = torch.tensor([0, 11])
    assert torch.equal(loaded.sample(labels, seed=1), student.sample(labels, seed=1))
    e = loaded.sample(labels, seed=1, return_embeddings=True)
    assert e.shape == (2, teacher.tokens_per_image, 8) and teacher.decode_embeddings(e).shape[0] == 2
    # steps K ≥ 2: the teacher finishes the last K − 1 tokens from the generator's prefix
    two = loaded.sample(labels, seed=1, steps=3)
    assert torch.equal(two[:, :-2], loaded.sample(labels, seed=1)[:, :-2])


def test_adaptation_section_is_refused_for_var(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("kind: dd2-student\nteacher: var-toy-s\nadaptation: {steps: 5}\n")
    with pytest.raises(ArdistillError, match="adaptation: var teachers read code vectors"):
        train_dd2_student(ardistill.load_teacher("var-toy-s"), load_dd2_recipe(path), tmp_path / "o", progress=False)
