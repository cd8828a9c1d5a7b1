"""DD student modules: shapes, attention semantics, init from the teacher, official key layouts and strict loading."""

import math

import pytest
import torch

from ardistill.errors import CheckpointError, WeightsMissingError
from ardistill.models.dd import LlamaGenStudent, VARStudent
from ardistill.models.dd.checkpoint import load_official_student, load_student_file
from ardistill.models.llamagen.config import GPTConfig, VQConfig, gpt_config
from ardistill.models.llamagen.gpt import LlamaGenGPT
from ardistill.models.var.config import VARConfig, VQVAEConfig, var_config
from ardistill.models.var.transformer import VARTransformer

PNS = (1, 2, 3)  # 14 teacher tokens, 15 student positions


def var_cfg() -> VARConfig:
    return VARConfig(depth=2, embed_dim=32, num_heads=2, num_classes=4, patch_nums=PNS, vocab_size=16, z_channels=4,
                     drop_path_rate=0.0, vae=VQVAEConfig(vocab_size=16, z_channels=4, patch_nums=PNS))


def gpt_cfg() -> GPTConfig:
    return GPTConfig(dim=32, n_layer=2, n_head=2, num_classes=4, vocab_size=16, block_size=9, multiple_of=32,
                     vq=VQConfig(codebook_size=16, codebook_embed_dim=8))


@torch.no_grad()
def randomize_(module, seed):
    g = torch.Generator().manual_seed(seed)
    for name, p in sorted(module.named_parameters()):
        p.copy_(torch.randn(p.shape, generator=g) / (math.sqrt(p.shape[-1]) if p.dim() >= 2 else 5))
    return module.eval()


def test_shapes_and_official_parameter_counts():
    s = randomize_(VARStudent(var_cfg()), 0)
    cont, logits = s(torch.tensor([0, 3]), torch.randn(2, 14, 4), torch.tensor([0, 2]))
    assert cont.shape == (2, 14, 4) and logits.shape == (2, 14, 16) and cont.dtype == logits.dtype == torch.float32
    g = randomize_(LlamaGenStudent(gpt_cfg()), 0)
    cont, logits = g(torch.tensor([0, 3]), torch.randn(2, 9, 8), torch.tensor([0, 5]))
    assert cont.shape == (2, 9, 8) and logits.shape == (2, 9, 16)
    with torch.device("meta"):  # the release README / spec counts (LlamaGen exact; VAR README rounds 328.2M to 327M)
        assert sum(p.numel() for p in LlamaGenStudent(gpt_config("B", 256)).parameters()) == 98_321_672
        assert sum(p.numel() for p in LlamaGenStudent(gpt_config("L", 256)).parameters()) == 326_155_272
        assert sum(p.numel() for p in VARStudent(var_config(20)).parameters()) == 635_399_088


def test_var_mask_noise_position_sees_earlier_scales_and_itself_only():
    s = randomize_(VARStudent(var_cfg()), 1)
    bias = s.attn_bias_for_masking[0, 0]
    assert bias.shape == (15, 15)
    lvl = s.lvl_1L[0]
    want = (lvl[:, None] > lvl[None, :]) | torch.eye(15, dtype=torch.bool)
    assert torch.equal(bias == 0, want)
    x, labels, t = torch.randn(1, 14, 4), torch.tensor([1]), torch.tensor([0])
    base_c, base_l = s(labels, x, t)
    for pos in (2, 6):  # token 2 is in scale 1 (tokens 1..4), token 6 in scale 2 (tokens 5..13)
        x2 = x.clone()
        x2[0, pos] += 1.0
        c, l = s(labels, x2, t)
        changed = ((c - base_c).abs().amax(-1) > 1e-6) | ((l - base_l).abs().amax(-1) > 1e-6)
        scale = s.lvl_1L[0, 1:] - 1  # teacher scale of each token
        expect = (scale > scale[pos]) | (torch.arange(14) == pos)
        assert torch.equal(changed[0], expect)


def test_llamagen_is_causal_and_predicts_in_place():
    g = randomize_(LlamaGenStudent(gpt_cfg()), 2)
    x, labels, t = torch.randn(1, 9, 8), torch.tensor([2]), torch.tensor([0])
    c0, l0 = g(labels, x, t)
    x2 = x.clone()
    x2[0, 4] += 1.0
    c1, l1 = g(labels, x2, t)
    changed = ((c1 - c0).abs().amax(-1) > 1e-6) | ((l1 - l0).abs().amax(-1) > 1e-6)
    assert torch.equal(changed[0], torch.arange(9) >= 4)


def test_indicator_changes_outputs():
    s = randomize_(VARStudent(var_cfg()), 3)
    x, labels = torch.randn(1, 14, 4), torch.tensor([1])
    assert not torch.allclose(s(labels, x, torch.tensor([0]))[1], s(labels, x, torch.tensor([2]))[1])
    assert s.data_mask(torch.tensor([0, 2])).sum(1).tolist() == [1, 1 + 5]  # class slot (+ N(2) = 5 tokens)
    g = randomize_(LlamaGenStudent(gpt_cfg()), 3)
    assert g.data_mask(torch.tensor([0, 4])).sum(1).tolist() == [1, 5]


def test_var_init_from_teacher_copies_and_remaps():
    teacher = randomize_(VARTransformer(var_cfg()), 4)
    s = VARStudent(var_cfg()).init_from_teacher(teacher, torch.Generator().manual_seed(0))
    assert torch.equal(s.class_emb.weight, teacher.class_emb.weight)  # the release's class_emb[1] bug is not copied
    assert torch.equal(s.word_embed.weight, teacher.word_embed.weight) and torch.equal(s.pos_start, teacher.pos_start)
    assert torch.equal(s.lvl_embed.weight[0], teacher.lvl_embed.weight[0])
    assert torch.equal(s.lvl_embed.weight[2:], teacher.lvl_embed.weight[1:])
    assert not torch.equal(s.lvl_embed.weight[1], teacher.lvl_embed.weight[1])
    assert torch.equal(s.pos_1LC[:, 0], teacher.pos_1LC[:, 0]) and torch.equal(s.pos_1LC[:, 2:], teacher.pos_1LC[:, 1:])
    for a, b in zip(s.blocks.state_dict().values(), teacher.blocks.state_dict().values()):
        assert torch.equal(a, b)
    assert torch.equal(s.head.weight, teacher.head.weight) and torch.equal(s.head_nm.ada_lin[1].weight, teacher.head_nm.ada_lin[1].weight)


def test_llamagen_init_from_teacher_copies():
    teacher = randomize_(LlamaGenGPT(gpt_cfg()), 5)
    s = LlamaGenStudent(gpt_cfg())
    s.init_weights(torch.Generator().manual_seed(0))
    s.init_from_teacher(teacher)
    assert torch.equal(s.cls_embedding.embedding_table.weight, teacher.cls_embedding.embedding_table.weight)
    assert torch.equal(s.output.weight, teacher.output.weight) and torch.equal(s.norm.weight, teacher.norm.weight)
    for a, b in zip(s.layers.state_dict().values(), teacher.layers.state_dict().values()):
        assert torch.equal(a, b)
    assert s.tok_embeddings.weight.shape == (32, 8)  # a new Linear on code vectors, not the index table


def _official_var_file(tmp_path, model, nesting):
    params = {k: v.clone() for k, v in model.named_parameters()}
    full = {k: v.clone() for k, v in model.state_dict().items()}
    full.update(lvl_1L=model.lvl_1L.clone(), attn_bias_for_masking=model.attn_bias_for_masking.clone())  # saved by the release
    obj = {"trainer": {"ema_parameters": params}} if nesting == "ema_parameters" else {"trainer": {"var_wo_ddp": full, "config": {}}}
    path = tmp_path / "var-tiny-dd.pth"
    torch.save(obj, path)
    return path


@pytest.mark.parametrize("nesting", ["ema_parameters", "var_wo_ddp"])
def test_var_official_layout_loads_strictly(tmp_path, nesting):
    src = randomize_(VARStudent(var_cfg()), 6)
    path = _official_var_file(tmp_path, src, nesting)
    loaded = load_official_student(path, "var", var_cfg())
    x, labels, t = torch.randn(2, 14, 4), torch.tensor([0, 1]), torch.tensor([0, 1])
    for a, b in zip(src(labels, x, t), loaded(labels, x, t)):
        assert torch.equal(a, b)


def test_official_layout_mismatch_is_one_line_error(tmp_path):
    src = randomize_(VARStudent(var_cfg()), 7)
    params = {k: v for k, v in src.named_parameters() if not k.startswith("final_layer_conti")}
    torch.save({"trainer": {"ema_parameters": params}}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="missing keys: final_layer_conti") as e:
        load_official_student(tmp_path / "bad.pth", "var", var_cfg())
    assert "\n" not in str(e.value)


def test_llamagen_official_layout_loads_strictly(tmp_path):
    src = randomize_(LlamaGenStudent(gpt_cfg()), 8)
    torch.save({"ema": src.state_dict(), "model": {}, "steps": 1}, tmp_path / "llamagen-T.pt")
    loaded = load_official_student(tmp_path / "llamagen-T.pt", "llamagen", gpt_cfg())
    x, labels, t = torch.randn(2, 9, 8), torch.tensor([0, 1]), torch.tensor([0, 3])
    for a, b in zip(src(labels, x, t), loaded(labels, x, t)):
        assert torch.equal(a, b)
    from ardistill.io import atomic_save_safetensors

    atomic_save_safetensors(src.state_dict(), tmp_path / "student.safetensors")
    assert torch.equal(load_student_file(tmp_path / "student.safetensors", "llamagen", gpt_cfg())(labels, x, t)[1], src(labels, x, t)[1])


def test_missing_official_file_names_file_folder_and_release(tmp_path):
    from ardistill.methods.dd.student import load_student

    with pytest.raises(WeightsMissingError) as e:
        load_student("dd-var-d16", teacher=object(), weights_dir=tmp_path)
    msg = str(e.value)  # offline (tests/conftest.py): the file cannot be downloaded
    assert "var-d16.pth" in msg and str(tmp_path) in msg and "microsoft/distilled_decoding/resolve/" in msg
    assert "/VAR-DD/var-d16.pth" in msg and "`ardistill download dd-var-d16`" in msg
    assert "\n" not in msg
