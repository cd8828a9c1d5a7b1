"""CSD / FCS losses, t draws, the progressive EMA rate, and the alternating trainer's determinism."""

import io
import math

import pytest
import torch

from ardistill.errors import BadArgumentError
from ardistill.methods.dd2 import (
    DD2Config,
    DD2Trainer,
    clean_token_prediction,
    csd_generator_loss,
    fcs_guidance_loss,
    log_probs_from_probs,
    progressive_ema_rate,
    sample_t,
)
from ardistill.methods.dd2.synthetic import NoiseToTokens, PrefixGuidance, SyntheticARTeacher


def setting(B=4, L=3, V=5, C=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    codebook = torch.randn(V, C, generator=g)
    probs = torch.rand(B, L, V, generator=g)
    probs[..., -1] = 0  # a zeroed code
    probs = probs / probs.sum(-1, keepdim=True)
    q = torch.randn(B, L, C, generator=g).requires_grad_(True)
    t = torch.rand(B, L, generator=g) * 0.9 + 0.05
    noise = torch.randn(B, L, C, generator=g)
    return codebook, probs, q, t, noise


def test_detached_csd_gradient_is_dmd_direction():
    codebook, probs, q, t, noise = setting()
    shift = torch.tensor([0.3, -0.2])

    def guidance(x, tt, prefix):
        return 0.5 * x + shift  # any differentiable function of x

    for weighting in ("none", "dmd"):
        q.grad = None
        loss, metrics = csd_generator_loss(q, lambda prefix: probs, guidance, codebook, t=t, noise=noise, weighting=weighting)
        loss.backward()
        with torch.no_grad():
            x = (1 - t)[..., None] * q + t[..., None] * noise
            x0_t = clean_token_prediction(log_probs_from_probs(probs), codebook, x, t)
            w = 1.0 / (q - x0_t).abs().mean(dim=(1, 2), keepdim=True) if weighting == "dmd" else 1.0
            expected = w * (guidance(x, t, None) - x0_t) / (q.shape[0] * q.shape[1])
            expected_value = 0.5 * ((w * (guidance(x, t, None) - x0_t)) ** 2).sum(-1).mean()
        assert torch.allclose(q.grad, expected, atol=1e-6)
        assert torch.allclose(loss, expected_value, atol=1e-6)


def test_sid_form_value_and_gradient_through_inputs():
    """detach_inputs=False is the SiD α = 1 loss: its value is ω(x̂0_T − x̂0_ψ)ᵀ(x̂0_ψ − q), and q's gradient has the
    extra terms through x (so it differs from the DMD direction)."""
    codebook, probs, q, t, noise = setting()

    def guidance(x, tt, prefix):
        return 0.5 * x

    loss, _ = csd_generator_loss(q, lambda prefix: probs, guidance, codebook, t=t, noise=noise, detach_inputs=False)
    x = (1 - t)[..., None] * q + t[..., None] * noise
    x0_t = clean_token_prediction(log_probs_from_probs(probs), codebook, x, t)
    expected = ((x0_t - 0.5 * x) * (0.5 * x - q)).sum(-1).mean()
    assert torch.allclose(loss, expected, atol=1e-6)
    (grad,) = torch.autograd.grad(loss, q)
    dmd = (0.5 * x - x0_t).detach() / (q.shape[0] * q.shape[1])
    assert torch.isfinite(grad).all() and not torch.allclose(grad, dmd, atol=1e-4)


def test_guidance_equal_to_teacher_gives_zero_generator_gradient():
    codebook, probs, q, t, noise = setting()

    def teacher_as_guidance(x, tt, prefix):
        return clean_token_prediction(log_probs_from_probs(probs), codebook, x, tt)

    loss, metrics = csd_generator_loss(q, lambda prefix: probs, teacher_as_guidance, codebook, t=t, noise=noise)
    loss.backward()
    assert q.grad.abs().max() < 1e-6 and metrics["csd_gap"] < 1e-10


def test_teacher_reads_the_detached_generator_prefix():
    codebook, probs, q, t, noise = setting()
    seen = {}

    def teacher(prefix):
        seen["prefix"] = prefix
        return probs

    csd_generator_loss(q, teacher, lambda x, tt, p: x, codebook, t=t, noise=noise)
    assert torch.equal(seen["prefix"], q.detach()) and not seen["prefix"].requires_grad


@pytest.mark.parametrize("detach_inputs", [True, False])
def test_csd_noise_draws_average_the_single_draw_losses(detach_inputs):
    """m (t, ε′) draws per sample: the loss and q's gradient are the means of the m single-draw ones; the teacher
    scores each prefix once, the guidance network gets each prefix m times in the FCS row layout (r·B + b)."""
    codebook, probs, q, t0, noise0 = setting()
    _, _, _, t1, noise1 = setting(seed=1)
    calls = []

    def teacher(prefix):
        calls.append(prefix.shape[0])
        return probs

    def guidance(x, tt, prefix):
        assert torch.equal(prefix, q.detach().repeat(x.shape[0] // q.shape[0], 1, 1))
        return 0.5 * x + 0.1 * prefix.roll(1, dims=1)

    singles = []
    for t, noise in ((t0, noise0), (t1, noise1)):
        loss, _ = csd_generator_loss(q, teacher, guidance, codebook, t=t, noise=noise, detach_inputs=detach_inputs)
        singles.append((loss, torch.autograd.grad(loss, q)[0]))
    both, _ = csd_generator_loss(q, teacher, guidance, codebook, t=torch.cat([t0, t1]), noise=torch.cat([noise0, noise1]),
                                 detach_inputs=detach_inputs)
    assert calls == [4, 4, 4]  # one teacher pass per call, on the B prefixes
    assert torch.allclose(both, (singles[0][0] + singles[1][0]) / 2, atol=1e-6)
    assert torch.allclose(torch.autograd.grad(both, q)[0], (singles[0][1] + singles[1][1]) / 2, atol=1e-7)
    with pytest.raises(BadArgumentError, match=r"\[m·B, L\]"):
        csd_generator_loss(q, teacher, guidance, codebook, t=t0[:3], noise=noise0[:3])


def test_fcs_loss_uses_m_draws_and_trains_only_the_guidance():
    codebook, probs, q, t, noise = setting(B=4)
    m = 3
    g = torch.Generator().manual_seed(1)
    tm = torch.rand(m * 4, 3, generator=g) * 0.9 + 0.05
    nm = torch.randn(m * 4, 3, 2, generator=g)
    net = torch.nn.Linear(2, 2)
    rows = []

    def guidance(x, tt, prefix):
        rows.append(prefix.shape[0])
        return net(x)

    loss, _ = fcs_guidance_loss(guidance, q, t=tm, noise=nm)
    loss.backward()
    assert rows == [m * 4] and q.grad is None and net.weight.grad is not None
    clean = q.detach().repeat(m, 1, 1)
    expected = ((net((1 - tm)[..., None] * clean + tm[..., None] * nm) - clean) ** 2).sum(-1).mean()
    assert torch.allclose(loss, expected)
    with pytest.raises(BadArgumentError):
        fcs_guidance_loss(guidance, q, t=tm[:5], noise=nm[:5])


def test_fcs_minimiser_is_the_posterior_mean():
    """On samples from a discrete distribution, the closed-form posterior mean beats a perturbed one under FCS."""
    codebook, probs, _, _, _ = setting(B=1, L=1)
    g = torch.Generator().manual_seed(2)
    n = 20000
    idx = torch.multinomial(probs[0, 0], n, replacement=True, generator=g)
    q = codebook[idx].view(n, 1, 2)
    t = torch.rand(n, 1, generator=g) * 0.9 + 0.05
    noise = torch.randn(n, 1, 2, generator=g)
    lp = log_probs_from_probs(probs[0, 0]).expand(n, 1, -1)

    def exact(x, tt, prefix):
        return clean_token_prediction(lp, codebook, x, tt)

    best, _ = fcs_guidance_loss(exact, q, t=t, noise=noise)
    for delta in (0.05, -0.05):
        worse, _ = fcs_guidance_loss(lambda x, tt, p: exact(x, tt, p) + delta, q, t=t, noise=noise)
        assert worse > best


def test_t_draws():
    g = torch.Generator().manual_seed(0)
    for dist in ("logit_normal", "uniform"):
        t = sample_t((20000,), distribution=dist, generator=g)
        assert t.min() >= 0.02 and t.max() <= 0.98
        assert abs(float(t.mean()) - 0.5) < 0.01
    wide = sample_t((20000,), distribution="logit_normal", scale=4.0, generator=g)
    assert float((wide == 0.02).float().mean()) > 0.1  # clipped, not resampled
    a = sample_t((5, 3), generator=torch.Generator().manual_seed(7))
    b = sample_t((5, 3), generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    with pytest.raises(BadArgumentError):
        sample_t((3,), distribution="normal")
    with pytest.raises(BadArgumentError):
        sample_t((3,), t_min=0.5, t_max=0.4)


def test_progressive_ema_rate():
    assert progressive_ema_rate(0) == pytest.approx(0.1)
    assert progressive_ema_rate(90) == pytest.approx(91 / 100)
    assert progressive_ema_rate(10**6) == 0.9999
    assert math.isclose(progressive_ema_rate(10**6, 0.999), 0.999)


def _trainer(seed=0, **kw):
    teacher = SyntheticARTeacher.make(length=2)
    torch.manual_seed(seed)
    gen = NoiseToTokens(2, hidden=16, depth=1)
    psi = PrefixGuidance(teacher.codebook, 2, hidden=16, depth=1)
    cfg = DD2Config(**{"batch_size": 8, "guidance_steps": 2, "noise_draws": 2, "warmup_steps": 2, "seed": seed, **kw})
    return DD2Trainer(gen, psi, teacher.conditional_probs, teacher.codebook, (2, 2), cfg)


def test_trainer_is_deterministic_and_resumes_bit_exactly():
    a, b = _trainer(), _trainer()
    for _ in range(4):
        a.train_step()
    for _ in range(2):
        b.train_step()
    buffer = io.BytesIO()
    torch.save(b.state_dict(), buffer)  # as a checkpoint would
    c = _trainer()
    buffer.seek(0)
    c.load_state_dict(torch.load(buffer, weights_only=False))
    for _ in range(2):
        b.train_step()
        c.train_step()
    for other in (b, c):
        for pa, po in zip(a.generator.parameters(), other.generator.parameters()):
            assert torch.equal(pa, po)
        assert all(torch.equal(a.ema.shadow[k], other.ema.shadow[k]) for k in a.ema.shadow)


def test_trainer_updates_and_freezes_the_right_networks():
    tr = _trainer()
    psi_before = [p.clone() for p in tr.guidance.parameters()]
    tr.generator_update()
    assert all(torch.equal(p, q) for p, q in zip(psi_before, tr.guidance.parameters()))
    assert all(p.requires_grad for p in tr.guidance.parameters())
    gen_before = [p.clone() for p in tr.generator.parameters()]
    tr.guidance_update()
    assert all(torch.equal(p, q) for p, q in zip(gen_before, tr.generator.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(psi_before, tr.guidance.parameters()))


def test_bad_config_is_refused():
    for kw in ({"weighting": "snr"}, {"t_distribution": "beta"}, {"noise_draws": 0}, {"t_min": 0.0}):
        with pytest.raises(BadArgumentError):
            _trainer(**kw)
