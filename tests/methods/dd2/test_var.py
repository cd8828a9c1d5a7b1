"""DD2 for the VAR family on the built-in toy teacher var-toy-l (130 tokens, V = 512, C = 32): network shapes and
causality, the one-pass generator, the teacher's sampling distribution against the reference sampler, GTS targets,
and a short class-conditional training smoke test."""

import pytest
import torch

import ardistill
from ardistill.methods.dd2 import DD2Config, DD2Trainer, clean_token_prediction, log_probs_from_probs
from ardistill.methods.dd2.gts import GTSConfig, TeacherPool, gts_loss, gts_targets, train_gts
from ardistill.methods.dd2.var import VARFamily
from ardistill.models.dd2.net import DD2Generator, DD2Guidance
from ardistill.models.dd2.var import continuous_next_scale_input


@pytest.fixture(scope="module")
def family():
    torch.set_num_threads(1)
    return VARFamily(ardistill.load_teacher("var-toy-l"))


@pytest.fixture(scope="module")
def net(family):
    return family.new_network(head_width=32, head_depth=1, seed=0)


def test_next_scale_input_of_code_vectors_equals_the_tokenizers(family):
    t = family.teacher
    tokens = torch.randint(t.vocab_size, (3, t.tokens_per_image), generator=torch.Generator().manual_seed(0))
    expected = t.vae.quantize.idx_to_var_input(t.split_scales(tokens))
    got = continuous_next_scale_input(t.vae.quantize, t.codebook[tokens])
    assert got.shape == (3, t.tokens_per_image - 1, 32) and torch.allclose(got, expected, atol=1e-6)


def test_network_shapes_and_block_causal_features(family, net):
    B, L, C = 2, family.tokens_per_image, family.code_dim
    g = torch.Generator().manual_seed(1)
    labels = torch.tensor([0, 5])
    prefix = torch.randn(B, L, C, generator=g)
    f = net.features(labels, prefix)
    assert f.shape == (B, L, net.backbone.width)
    # Changing scale s and later leaves the features of scales ≤ s unchanged, and changes those after s.
    b, e = net.step_slices[3]
    changed = prefix.clone()
    changed[:, b:] += 1.0
    f2 = net.features(labels, changed)
    assert torch.allclose(f[:, :e], f2[:, :e], atol=1e-5) and not torch.allclose(f[:, e:], f2[:, e:], atol=1e-3)
    m = 3
    x, t = torch.randn(m * B, L, C, generator=g), torch.rand(m * B, L, generator=g) * 0.9 + 0.05
    psi = family.guidance_from(net)
    assert isinstance(psi, DD2Guidance)
    x0 = psi(x, t, prefix, labels)
    assert x0.shape == (m * B, L, C)
    # row r·B + b uses prefix b: the same as running prefix b's copy directly
    assert torch.allclose(x0[B:2 * B], psi(x[B:2 * B], t[B:2 * B], prefix, labels), atol=1e-5)


def test_generator_is_one_forward_pass_reading_only_noise(family, net):
    gen = family.generator_from(net)
    assert isinstance(gen, DD2Generator)
    calls = {"backbone": 0, "head": 0}
    hooks = [gen.backbone.register_forward_hook(lambda *a: calls.__setitem__("backbone", calls["backbone"] + 1)),
             gen.head.register_forward_hook(lambda *a: calls.__setitem__("head", calls["head"] + 1))]
    noise = torch.randn(3, family.tokens_per_image, family.code_dim, generator=torch.Generator().manual_seed(2))
    labels = torch.tensor([1, 2, 3])
    q = gen(noise, labels)
    for h in hooks:
        h.remove()
    assert q.shape == noise.shape and calls == {"backbone": 1, "head": 1}
    assert torch.equal(q, gen(noise, labels))  # a function of (noise, labels) only
    # q = ε − v(ε, t = 1, f(ε)): with the head's output layer at zero (a fresh head) the generator is the identity
    fresh = family.generator_from(family.new_network(head_width=16, head_depth=1))
    assert torch.equal(fresh(noise, labels), noise)


def test_generator_noise_level_and_prefix_scale(family, net):
    """Decision 23: at noise level t_g the head reads x = t_g·ε at t_g and the generator returns its x̂0; the backbone
    reads prefix_scale·ε. t_g = 1 with scale 1 is the paper's q = ε − v(ε, 1, f(ε)), bit for bit."""
    noise = torch.randn(2, family.tokens_per_image, family.code_dim, generator=torch.Generator().manual_seed(6))
    labels = torch.tensor([4, 9])
    ones = torch.ones(noise.shape[:2])
    paper = noise - net.velocity(noise, ones, net.features(labels, noise))
    assert torch.equal(family.generator_from(net)(noise, labels), paper)
    gen = family.generator_from(net, noise_level=0.7, prefix_scale=0.5)
    assert (gen.generator_t, gen.generator_prefix_scale) == (0.7, 0.5)
    x = 0.7 * noise
    expected = x - 0.7 * net.velocity(x, 0.7 * ones, net.features(labels, 0.5 * noise))
    assert torch.allclose(gen(noise, labels), expected, atol=1e-6)
    assert not torch.allclose(gen(noise, labels), paper, atol=1e-3)
    assert family.generator_from(net, noise_level=0.6).generator_prefix_scale == 0.6  # None: the noise level
    # a fresh head (zero output) returns x = t_g·ε
    fresh = family.generator_from(family.new_network(head_width=16, head_depth=1), noise_level=0.6)
    assert torch.equal(fresh(noise, labels), 0.6 * noise)
    for bad in ({"noise_level": 0.0}, {"noise_level": 1.5}, {"noise_level": 0.5, "prefix_scale": -1.0}):
        with pytest.raises(ValueError):
            family.generator_from(net, **bad)


def test_sampling_probs_are_what_the_reference_sampler_draws_from(family):
    """The adapter's teacher-forced distribution at every position equals the one the KV-cached step sampler draws
    from (CFG ramp, filtering, temperature), at the default settings and with top-k / top-p / temperature on."""
    t = family.teacher
    for settings in ({}, {"top_k": 40, "top_p": 0.9, "temperature": 0.8, "cfg": 1.5}):
        fam = VARFamily(t, **settings) if settings else family
        labels = torch.tensor([0, 7, 11])
        drawn = {}

        def record(logits, index, positions):
            drawn[index] = logits.softmax(-1)
            return None  # the official draw

        with t.start_steps(labels, seed=3, **fam.settings) as run:
            tokens = run.run(choose=record)
        expected = torch.cat([drawn[si] for si in range(t.num_scales)], dim=1)
        got = fam.sampling_probs(labels, tokens)
        assert got.shape == (3, t.tokens_per_image, t.vocab_size)
        assert torch.allclose(got, expected, atol=2e-5)
        assert torch.equal(got == 0, expected == 0)  # same support after filtering


def test_teacher_probs_read_the_nearest_codes(family):
    tokens = torch.randint(512, (2, family.tokens_per_image), generator=torch.Generator().manual_seed(4))
    q = family.clean(tokens) + 0.01 * torch.randn(2, family.tokens_per_image, family.code_dim)
    assert torch.equal(family.nearest_codes(q), tokens)
    labels = torch.tensor([3, 4])
    assert torch.equal(family.teacher_probs(q, labels), family.sampling_probs(labels, tokens))


def test_gts_targets_are_the_teachers_posterior_mean(family, net):
    """The GTS target at each position is x̂0 under that position's sampling distribution (brute-force posterior
    over the 512 codes in fp64); and the loss is 0 for a network that predicts exactly that."""
    labels = torch.tensor([2, 9])
    tokens = family.sample_teacher(labels, seed=5)
    probs = family.sampling_probs(labels, tokens)
    g = torch.Generator().manual_seed(6)
    L, C = family.tokens_per_image, family.code_dim
    t = torch.rand(2, L, generator=g) * 0.9 + 0.05
    x = (1 - t)[..., None] * family.clean(tokens) + t[..., None] * torch.randn(2, L, C, generator=g)
    target = gts_targets(family, probs, x, t)
    cb = family.codebook.double()
    d2 = ((x.double()[:, :, None, :] - (1 - t.double())[..., None, None] * cb) ** 2).sum(-1)  # [2, L, V]
    logw = probs.double().log() - d2 / (2 * t.double()[..., None] ** 2)
    brute = torch.softmax(logw, dim=-1) @ cb
    assert torch.allclose(target.double(), brute, atol=1e-4)

    class Exact:  # a "network" whose prediction is the teacher's own
        def features(self, labels, clean):
            return clean

        def denoise(self, xx, tt, f):
            return clean_token_prediction(log_probs_from_probs(probs.repeat(xx.shape[0] // 2, 1, 1)), family.codebook, xx, tt)

    zero, _ = gts_loss(Exact(), family, labels, tokens, probs, t=t, noise=(x - (1 - t)[..., None] * family.clean(tokens)) / t[..., None])
    assert float(zero) < 1e-8
    nonzero, _ = gts_loss(net, family, labels, tokens, probs, t=t, noise=torch.randn(2, L, C, generator=g))
    assert float(nonzero.detach()) > 0.1


def test_gts_tuning_lowers_its_loss(family):
    net = family.new_network(head_width=32, head_depth=1, seed=0)
    labels = torch.arange(8) % family.num_classes
    tokens = torch.cat([family.sample_teacher(labels[i:i + 4], seed=i) for i in (0, 4)])
    pool = TeacherPool(labels, tokens, family.sampling_probs(labels, tokens))
    res = train_gts(net, family, pool, GTSConfig(batch_size=8, head_steps=30, full_steps=0, noise_draws=1, lr_head=3e-3,
                                                 warmup_steps=2, seed=0), log_every=10, log=lambda r: None)
    losses = [r["gts"] for r in res.history]
    assert len(losses) == 3 and losses[-1] < 0.8 * losses[0]


def test_var_dd2_training_smoke(family, net):
    """A few class-conditional alternating steps on the VAR adapter: finite losses, both networks move, the FCS loss
    of the guidance network falls on a frozen generator."""
    gen, psi = family.generator_from(net), family.guidance_from(net)
    cfg = DD2Config(batch_size=4, guidance_steps=1, noise_draws=2, lr_generator=1e-4, lr_guidance=3e-3, warmup_steps=1, seed=0)
    trainer = DD2Trainer(gen, psi, family.teacher_probs, family.codebook, (family.tokens_per_image, family.code_dim), cfg,
                         num_classes=family.num_classes)
    gen_before = [p.clone() for p in gen.head.parameters()]
    metrics = [trainer.train_step() for _ in range(2)]
    assert all(torch.isfinite(torch.tensor([m["csd"], m["fcs"], m["csd_gap"]])).all() for m in metrics)
    assert not all(torch.equal(a, b) for a, b in zip(gen_before, gen.head.parameters()))
    assert not any(p.requires_grad for p in psi.backbone.quantize.parameters())
    fcs = [trainer.guidance_update()["fcs"] for _ in range(12)]
    assert sum(fcs[-3:]) < sum(fcs[:3])
