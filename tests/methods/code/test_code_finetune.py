"""CoDe fine-tuning: loss semantics (prefix-only CE, λ-weighted forward KL), λ schedule, label-drop peeking, and a
short end-to-end run on the shared training loop (files, resume, loading back)."""

import json

import pytest
import torch

from ardistill import CoDe
from ardistill.configs import config_from_dict
from ardistill.errors import ArdistillError
from ardistill.methods.code.finetune import (
    CoDeRecipe, apply_finetuned, drafter_ce_loss, lambda_ep, peek_label_drop, refiner_kd_loss, run_finetune, teacher_forcing_input,
)
from tiny_code_pair import pair_32px


def test_lambda_schedules():
    assert lambda_ep("linear", 0, 11) == 1.0 and lambda_ep("linear", 10, 11) == 0.0 and lambda_ep("linear", 5, 11) == pytest.approx(0.5)
    assert lambda_ep("cosine", 0, 11) == 1.0 and lambda_ep("cosine", 10, 11) == pytest.approx(0.0, abs=1e-12)
    assert lambda_ep("constant", 7, 11) == 1.0


def test_kd_loss_weights_and_direction():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(2, 10, 7, generator=g), torch.randn(2, 10, 7, generator=g)
    assert float(refiner_kd_loss(t, t, 4, 1.0)[0]) == pytest.approx(0.0, abs=1e-6)
    # λ = 0: the drafted positions do not count, whatever the teacher says there
    t2 = t.clone()
    t2[:, :4] += 5 * torch.randn(2, 4, 7, generator=g)
    assert torch.allclose(refiner_kd_loss(s, t, 4, 0.0)[0], refiner_kd_loss(s, t2, 4, 0.0)[0])
    assert not torch.allclose(refiner_kd_loss(s, t, 4, 1.0)[0], refiner_kd_loss(s, t2, 4, 1.0)[0])
    # forward KL(p_teacher ‖ p_student), per-position mean (λ = 1)
    p, q = t.softmax(-1), s.softmax(-1)
    expected = (p * (p.log() - q.log())).sum(-1).mean()
    assert float(refiner_kd_loss(s, t, 4, 1.0)[0]) == pytest.approx(float(expected), rel=1e-5)
    # "weights" normalisation divides by Σw instead of L
    lw = float(refiner_kd_loss(s, t, 4, 0.0, "weights")[0])
    assert lw == pytest.approx(float(refiner_kd_loss(s, t, 4, 0.0)[0]) * 10 / 6, rel=1e-5)


def test_drafter_loss_ignores_later_scales():
    drafter, _ = pair_32px()
    m, vae = drafter.transformer, drafter.vae
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, 32, (3, m.config.seq_len), generator=g)
    labels = torch.tensor([0, 5, 11])
    prefix = m.scale_slices[1][1]  # scales 0, 1
    loss = drafter_ce_loss(m, teacher_forcing_input(vae, tokens, m.patch_nums), tokens, labels, prefix)
    changed = tokens.clone()
    changed[:, prefix:] = (changed[:, prefix:] + 1) % 32
    loss2 = drafter_ce_loss(m, teacher_forcing_input(vae, changed, m.patch_nums), changed, labels, prefix)
    assert torch.allclose(loss, loss2)


def test_peek_label_drop_matches_the_training_forward():
    drafter, _ = pair_32px()
    m, vae = drafter.transformer, drafter.vae
    tokens = torch.randint(0, 32, (64, m.config.seq_len), generator=torch.Generator().manual_seed(2))
    labels = torch.arange(64) % 12
    x = teacher_forcing_input(vae, tokens, m.patch_nums)
    torch.manual_seed(5)
    m.train()
    peeked = peek_label_drop(labels, m)
    trained = m(labels, x)  # drops labels with the same global draws (drop-path is 0 in this config)
    m.eval()
    assert (peeked == m.num_classes).any() and not (peeked == m.num_classes).all()
    assert torch.allclose(trained, m(peeked, x), atol=1e-5)


def recipe(**overrides) -> CoDeRecipe:
    train = dict(steps=6, lr=3e-3, ckpt_every=3, log_every=1, seed=0, warmup_steps=0, schedule="constant")
    d = dict(drafter="tiny32-drafter", refiner="tiny32-refiner", draft_steps=2, data={"seed": 0, "size": 32}, num_images=48,
             batch_size=16, drafter_train=train, refiner_train=train)
    d.update(overrides)
    return config_from_dict(CoDeRecipe, d)


def test_finetune_end_to_end_and_resume(tmp_path):
    drafter, refiner = pair_32px()
    before = CoDe(drafter, refiner).sample([1, 2], draft_steps=2, seed=0)
    summary = run_finetune(recipe(), drafter, refiner, tmp_path / "run", progress=False)
    assert summary["drafter_steps"] == 6 and summary["refiner_steps"] == 6
    card = json.loads((tmp_path / "run" / "code.json").read_text())
    assert card["draft_steps"] == 2 and (tmp_path / "run" / "refiner.safetensors").is_file()
    after = CoDe(drafter, refiner).sample([1, 2], draft_steps=2, seed=0)
    # loading the files into fresh copies gives the same fine-tuned samples
    d2, r2 = pair_32px()
    apply_finetuned(tmp_path / "run", d2, r2)
    assert torch.equal(CoDe(d2, r2).sample([1, 2], draft_steps=2, seed=0), after)
    assert not torch.equal(before, after)
    # interrupted after 3 steps and resumed == straight run (batches are a function of the step)
    d3, r3 = pair_32px()
    half = recipe(drafter_train=dict(steps=3, lr=3e-3, ckpt_every=3, log_every=1, seed=0, schedule="constant"))
    run_finetune(half, d3, r3, tmp_path / "resumed", progress=False, stages=("drafter",))
    d3, r3 = pair_32px()
    run_finetune(recipe(), d3, r3, tmp_path / "resumed", progress=False, resume=True)
    for a, b in zip(d2.transformer.state_dict().values(), d3.transformer.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6)


def test_recipe_errors(tmp_path):
    with pytest.raises(ArdistillError, match="lamda: unknown field"):
        config_from_dict(CoDeRecipe, {"drafter": "a", "refiner": "b", "draft_steps": 1, "lamda": 1})
    with pytest.raises(ArdistillError, match="lambda_schedule"):
        recipe(lambda_schedule="exp")
    drafter, refiner = pair_32px()
    with pytest.raises(ArdistillError, match="draft_steps"):
        run_finetune(recipe(draft_steps=4), drafter, refiner, tmp_path / "x", progress=False)
