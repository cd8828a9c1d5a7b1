"""The fast inference path: exact in fp32, close in bf16, clear errors for bad options.

Quality margins of bf16 on the built-in models are measured with 1000 images in docs/benchmarks.md; here a
smaller set checks the same thing cheaply (agreement of the evaluator's accuracy and of the token statistics).
"""

from __future__ import annotations

import pytest
import torch

import ardistill
from ardistill.errors import BadArgumentError
from ardistill.sampling.fast import FastOptions, make_fast_options, parse_dtype, resolve_compile

BUILTIN_TEACHERS = ["var-toy-l", "var-toy-s", "llamagen-toy"]


@pytest.fixture(scope="module")
def teachers():
    return {}


def _teacher(cache, name, **kw):
    key = (name, tuple(sorted(kw.items())))
    if key not in cache:
        cache[key] = ardistill.load_teacher(name, **kw)
    return cache[key]


@pytest.mark.parametrize("name", BUILTIN_TEACHERS)
def test_fp32_fast_path_gives_the_reference_tokens(teachers, name):
    ref, fast = _teacher(teachers, name), _teacher(teachers, name, fast=True)
    assert ref.options.reference and not fast.options.reference and fast.options.dtype == torch.float32
    labels = torch.arange(12) % ref.num_classes
    for seed in range(3):
        assert torch.equal(ref.sample(labels, seed=seed), fast.sample(labels, seed=seed))


def test_fp32_fast_llamagen_matches_with_top_p_and_cfg_interval(teachers):
    ref, fast = _teacher(teachers, "llamagen-toy"), _teacher(teachers, "llamagen-toy", fast=True)
    labels = torch.arange(8)
    kw = dict(cfg=3.0, top_k=50, top_p=0.9, temperature=0.9, cfg_interval=20, seed=5)
    assert torch.equal(ref.sample(labels, **kw), fast.sample(labels, **kw))
    kw = dict(cfg=1.0, top_k=0, top_p=1.0, seed=6)  # no CFG: the batch is not doubled
    assert torch.equal(ref.sample(labels, **kw), fast.sample(labels, **kw))


def test_fast_decode_step_logits_equal_the_masked_cache():
    """One token attending over the cache prefix = the same token attending over the whole masked cache."""
    t = _teacher({}, "llamagen-toy")
    gpt = t.gpt
    labels = torch.tensor([0, 3])
    tokens = torch.randint(0, t.vocab_size, (2, 9), generator=torch.Generator().manual_seed(0))
    gpt.setup_caches(2, gpt.max_positions)
    try:
        gpt.forward_cached(torch.arange(9), labels=labels, tokens=tokens[:, :8])
        masked = gpt.forward_cached(torch.tensor([9]), tokens=tokens[:, 8:9])
        gpt.forward_cached(torch.arange(9), labels=labels, tokens=tokens[:, :8])
        prefix = gpt.decode_step_fast(torch.tensor([9]), tokens[:, 8:9], 10)
    finally:
        gpt.clear_caches()
    torch.testing.assert_close(prefix, masked, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["var-toy-l", "llamagen-toy"])
def test_bf16_stores_matrices_in_bf16_and_keeps_logits_and_quantiser_fp32(teachers, name):
    t = _teacher(teachers, name, dtype="bf16")
    net = t.transformer if t.family == "var" else t.gpt
    assert net.layers[0].attention.wqkv.weight.dtype == torch.bfloat16 if t.family == "llamagen" else net.blocks[0].attn.mat_qkv.weight.dtype == torch.bfloat16
    vae = t.vae if t.family == "var" else t.vq
    assert vae.decoder.conv_in.weight.dtype == torch.bfloat16 if hasattr(vae.decoder, "conv_in") else True
    assert t.codebook.dtype == torch.float32  # the flow map and nearest-code lookups use the fp32 codebook
    labels = torch.arange(4)
    tokens = t.sample(labels, seed=0)
    assert tokens.dtype == torch.long and tokens.shape == (4, t.tokens_per_image)
    assert t.logits(labels, tokens).dtype == torch.float32
    images = t.decode(tokens)
    assert images.dtype == torch.float32 and 0 <= float(images.min()) and float(images.max()) <= 1
    # Decoding in bf16 stays close to the fp32 decoder on the same tokens.
    ref = _teacher(teachers, name)
    assert (images - ref.decode(tokens)).abs().max() < 0.05


@pytest.mark.parametrize("name", ["var-toy-l", "llamagen-toy"])
def test_bf16_keeps_sample_quality(teachers, name):
    """Evaluator accuracy of 96 bf16 samples within 12 points of the fp32 samples at the same seeds (the 1000-image
    toy-FID comparison is in docs/benchmarks.md)."""
    ev = ardistill.load_evaluator()
    ref, low = _teacher(teachers, name), _teacher(teachers, name, dtype="bf16")
    labels = torch.arange(96) % ref.num_classes
    acc = {}
    for key, t in (("fp32", ref), ("bf16", low)):
        images = torch.cat([t.decode(t.sample(labels[i:i + 48], seed=i)) for i in (0, 48)])
        acc[key] = float((ev.predict(images) == labels).float().mean())
    assert abs(acc["fp32"] - acc["bf16"]) < 0.12, acc


def test_code_pair_runs_in_bf16(teachers):
    d, r = _teacher(teachers, "var-toy-l", dtype="bf16"), _teacher(teachers, "var-toy-s", dtype="bf16")
    tokens = ardistill.CoDe(d, r).sample(torch.arange(4), draft_steps=2, seed=0)
    assert tokens.shape == (4, d.tokens_per_image)


def test_options_parse_and_reject_bad_values():
    assert parse_dtype("bf16") == torch.bfloat16 and parse_dtype(None) == torch.float32
    assert resolve_compile(True, "cpu") == "default" and resolve_compile(True, "cuda") == "reduce-overhead"
    assert resolve_compile("off", "cpu") is None and resolve_compile(False, "cpu") is None
    assert make_fast_options() == FastOptions() and FastOptions().reference
    assert make_fast_options(compile="default").fast
    with pytest.raises(BadArgumentError, match="dtype"):
        parse_dtype("int8")
    with pytest.raises(BadArgumentError, match="compile mode"):
        resolve_compile("turbo", "cpu")
    with pytest.raises(BadArgumentError, match="fp16 is not supported on CPU"):
        ardistill.load_teacher("var-toy-s", dtype="fp16")


def _cli(argv, capsys):
    from ardistill.cli import main

    with pytest.raises(SystemExit) as e:
        main(argv)
    out = capsys.readouterr()
    return e.value.code, out.out + out.err


def test_cli_sample_fast_options(tmp_path, capsys):
    code, out = _cli(["sample", "--teacher", "llamagen-toy", "--num-images", "2", "--dtype", "bf16", "--fast", "--out", str(tmp_path / "g.png")], capsys)
    assert code == 0, out
    assert (tmp_path / "g.png").is_file()
    code, out = _cli(["sample", "--teacher", "llamagen-toy", "--num-images", "2", "--compile", "turbo", "--out", str(tmp_path / "h.png")], capsys)
    assert code != 0 and "compile mode" in out and "Traceback" not in out


@pytest.mark.slow
@pytest.mark.parametrize("name", ["llamagen-toy", "var-toy-s"])
def test_compiled_fp32_gives_the_reference_tokens(teachers, name):
    """torch.compile (inductor, CPU) of the per-step forward: same tokens as the eager reference."""
    ref, comp = _teacher(teachers, name), _teacher(teachers, name, compile="default")
    labels = torch.arange(6) % ref.num_classes
    for seed in range(2):
        assert torch.equal(ref.sample(labels, seed=seed), comp.sample(labels, seed=seed))


@pytest.mark.parametrize("name", ["var-toy-s", "llamagen-toy"])
def test_student_in_bf16_follows_the_fp32_student(teachers, name, tmp_path):
    """A DD student loaded with dtype=bf16 (matrices bf16, outputs fp32) stays close to the same student in fp32
    (a random student: its outputs are not images, only the numerics are compared)."""
    from ardistill.bench.toy_models import write_random_student

    teacher = _teacher(teachers, name)
    folder = write_random_student(teacher, tmp_path)
    fp32 = ardistill.load_student(folder, teacher=teacher)
    low = ardistill.load_student(folder, teacher=teacher, dtype="bf16")
    assert fp32.dtype == torch.float32 and low.dtype == torch.bfloat16
    noise = fp32.noise(4, seed=0)
    e32 = fp32.sample(torch.arange(4), noise=noise, return_embeddings=True)
    e16 = low.sample(torch.arange(4), noise=noise, return_embeddings=True)
    assert e16.dtype == torch.float32
    # Positions read off as argmax codes may flip to another code; the rest follow closely.
    scale = float(e32.abs().max())
    close = ((e16 - e32).abs().amax(-1) <= 0.05 * scale).float().mean()
    assert close >= 0.9, float(close)
