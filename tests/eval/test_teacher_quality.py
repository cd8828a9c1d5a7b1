"""Teacher quality on the procedural world: balanced labels, metrics of samples and reconstructions."""

import torch

from ardistill.eval.quality import balanced_labels, teacher_quality
from ardistill.models.var.config import VARConfig, VQVAEConfig
from ardistill.models.var.transformer import VARTransformer
from ardistill.models.var.vqvae import VQVAE
from ardistill.teachers.base import SamplingSettings
from ardistill.teachers.var import VARTeacher


def _tiny_teacher() -> VARTeacher:
    vq = VQVAEConfig(vocab_size=32, z_channels=8, ch=32, ch_mult=(1, 1, 1, 1), num_res_blocks=1, patch_nums=(1, 2, 4, 8),
                     using_sa=False, using_mid_sa=False)
    cfg = VARConfig(depth=1, embed_dim=32, num_heads=1, num_classes=12, patch_nums=vq.patch_nums, vocab_size=32,
                    z_channels=8, vae=vq)
    torch.manual_seed(0)
    transformer = VARTransformer(cfg)
    transformer.init_weights(torch.Generator().manual_seed(0))
    return VARTeacher("tiny", transformer, VQVAE(vq), default_sampling=SamplingSettings(cfg=1.0, top_k=0, top_p=0.0))


def test_balanced_labels():
    assert balanced_labels(25, 12).bincount().tolist() == [3] + [2] * 11


def test_teacher_quality_reports_samples_and_reconstructions():
    teacher = _tiny_teacher()
    q = teacher_quality(teacher, num=24, progress=False)
    assert q["images"].shape == (24, 3, 64, 64)
    for what in ("samples", "reconstructions"):
        m = q[what]
        assert 0.0 <= m["class_accuracy"] <= 1.0 and m["fid"] > 0 and 0 <= m["precision"] <= 1
    # an untrained tokenizer and transformer are far from the real images
    assert q["samples"]["fid"] > 10
    # deterministic given the seed
    again = teacher_quality(teacher, num=24, progress=False)
    assert torch.equal(q["images"], again["images"])
