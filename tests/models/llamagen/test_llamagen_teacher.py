"""The LlamaGen teacher behind the Teacher protocol, its one-line errors, and the CLI (sample / inspect / convert)."""

import pytest
import torch

from ardistill import load_teacher
from ardistill.cli import main
from ardistill.errors import BadArgumentError
from ardistill.teachers.base import Teacher


def test_protocol_and_shapes(tiny_teacher):
    t = tiny_teacher
    assert isinstance(t, Teacher) and t.family == "llamagen"
    assert (t.num_classes, t.vocab_size, t.tokens_per_image, t.image_size) == (10, 64, 16, 16)
    assert t.codebook.shape == (64, 8) and torch.allclose(t.codebook.norm(dim=-1), torch.ones(64), atol=1e-6)
    assert t.device == torch.device("cpu")


def test_logits_position_i_predicts_token_i(tiny_teacher):
    g = torch.Generator().manual_seed(0)
    labels, tokens = torch.tensor([3, 4]), torch.randint(0, 64, (2, 16), generator=g)
    logits = tiny_teacher.logits(labels, tokens)
    assert logits.shape == (2, 16, 64) and logits.dtype == torch.float32
    other = tokens.clone()
    other[:, 5] = (other[:, 5] + 1) % 64
    changed = tiny_teacher.logits(labels, other)
    assert torch.equal(changed[:, :6], logits[:, :6])  # logits of token 5 do not see token 5
    assert not torch.allclose(changed[:, 6], logits[:, 6])
    # the class token alone predicts token 0
    torch.testing.assert_close(logits[:, 0], tiny_teacher.gpt(labels, tokens[:, :0])[:, 0], rtol=0, atol=1e-5)


def test_decode_encode_and_embeddings(tiny_teacher):
    tokens = tiny_teacher.sample(torch.tensor([1, 2]), seed=0)
    images = tiny_teacher.decode(tokens)
    assert images.shape == (2, 3, 16, 16) and images.min() >= 0 and images.max() <= 1
    raw = tiny_teacher.vq.decode_indices(tokens, (4, 4))
    assert torch.equal(images, ((raw + 1) / 2).clamp(0, 1))
    # codebook rows as continuous embeddings decode to the same images as the tokens
    torch.testing.assert_close(tiny_teacher.decode_embeddings(tiny_teacher.codebook[tokens]), images, rtol=0, atol=1e-5)
    codes = tiny_teacher.encode(images)
    assert codes.shape == (2, 16) and codes.dtype == torch.long


def test_random_init_is_official_and_seeded(tiny_spec):
    a = load_teacher(tiny_spec.name, random_init=True, seed=0)
    b = load_teacher(tiny_spec.name, random_init=True, seed=0)
    c = load_teacher(tiny_spec.name, random_init=True, seed=1)
    w = a.gpt.layers[0].attention.wqkv.weight
    assert torch.equal(w, b.gpt.layers[0].attention.wqkv.weight) and not torch.equal(w, c.gpt.layers[0].attention.wqkv.weight)
    assert abs(w.std().item() - 0.02) < 0.002 and torch.equal(a.gpt.output.weight, torch.zeros_like(a.gpt.output.weight))
    assert torch.equal(a.vq.quantize.embedding.weight, b.vq.quantize.embedding.weight)
    assert torch.equal(a.logits([0], torch.zeros(1, 16, dtype=torch.long)), torch.zeros(1, 16, 64))  # zero head


@pytest.mark.parametrize("call, match", [
    (lambda t: t.sample(torch.tensor([10])), "class id 10 out of range"),
    (lambda t: t.sample(torch.tensor([-1])), "class id -1 out of range"),
    (lambda t: t.sample(torch.tensor([1]), top_k=65), "top_k must be an integer in"),
    (lambda t: t.sample(torch.tensor([1]), top_k=-3), "top_k must be an integer in"),
    (lambda t: t.sample(torch.tensor([1]), top_k=[5, 6]), "one value for LlamaGen"),
    (lambda t: t.sample(torch.tensor([1]), top_p=1.5), "top_p must be in"),
    (lambda t: t.sample(torch.tensor([1]), temperature=0), "temperature must be > 0"),
    (lambda t: t.sample(torch.tensor([1]), cfg=-1.0), "cfg must be"),
    (lambda t: t.sample(torch.tensor([1]), cfg_interval=-2), "cfg_interval"),
    (lambda t: t.logits(torch.tensor([1]), torch.zeros(1, 15, dtype=torch.long)), r"tokens must have shape \[B, 16\]"),
    (lambda t: t.decode(torch.full((1, 16), 64)), "token ids must be in"),
    (lambda t: t.encode(torch.zeros(1, 3, 32, 32)), r"images must have shape \[B, 3, 16, 16\]"),
    (lambda t: t.decode_embeddings(torch.zeros(1, 16, 4)), r"embeddings must have shape \[B, 16, 8\]"),
])
def test_bad_inputs_are_one_line_errors(tiny_teacher, call, match):
    with pytest.raises(BadArgumentError, match=match) as e:
        call(tiny_teacher)
    assert "\n" not in str(e.value)


def test_top_p_zero_means_off(tiny_teacher):
    labels = torch.tensor([4, 4])
    assert torch.equal(tiny_teacher.sample(labels, top_p=0.0, seed=2), tiny_teacher.sample(labels, top_p=1.0, seed=2))


def _run(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_cli_sample_random_init(tiny_spec, tmp_path, capsys):
    out = tmp_path / "grid.png"
    code, stdout, err = _run(["sample", "--teacher", tiny_spec.name, "--random-init", "--num-images", "3", "--class", "1,7", "--seed", "4",
                              "--top-k", "10", "--out", str(out), "--save-tokens"], capsys)
    assert code in (0, None), err
    assert out.is_file() and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from safetensors.torch import load_file

    saved = load_file(str(out.with_suffix(".tokens.safetensors")))
    assert saved["tokens"].shape == (3, 16) and saved["labels"].tolist() == [1, 7, 1]


@pytest.mark.parametrize("argv, needle", [
    (["--class", "10"], "class id 10 out of range"),
    (["--class", "1", "--top-k", "100"], "top_k must be an integer in [0, 64]"),
    (["--class", "1", "--top-k", "5,6"], "one value for LlamaGen"),
])
def test_cli_sample_errors_exit_2(tiny_spec, tmp_path, capsys, argv, needle):
    code, _, err = _run(["sample", "--teacher", tiny_spec.name, "--random-init", "--num-images", "1", "--out", str(tmp_path / "x.png"), *argv], capsys)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_cli_sample_from_files_inspect_and_convert(tiny_spec, tiny_files, tmp_path, capsys):
    code, out, _ = _run(["inspect", str(tiny_files["gpt_pt"])], capsys)
    assert code in (0, None) and "llamagen" in out and tiny_spec.name in out and "ok" in out
    code, out, _ = _run(["inspect", str(tiny_files["vq_pt"])], capsys)
    assert code in (0, None) and "VQ tokenizer" in out
    st = tmp_path / "conv" / "c2i_tiny_16.safetensors"
    code, _, err = _run(["convert", str(tiny_files["gpt_compiled"]), str(st)], capsys)
    assert code in (0, None), err
    png = tmp_path / "files.png"
    code, _, err = _run(["sample", "--teacher", str(st), "--vae", str(tiny_files["vq_st"]), "--class", "3", "--num-images", "2", "--out", str(png)], capsys)
    assert code in (0, None), err
    assert png.is_file()
    code, _, err = _run(["sample", "--teacher", str(tiny_files["vq_pt"]), "--out", str(png)], capsys)
    assert code == 2 and "not recognised" in err
