"""The one evaluation protocol: the same generator, seed and sample count give the same toy-FID from the model-card
code path, `ardistill teacher eval`, `ardistill bench --fid`, `ardistill distill`'s benchmark and the DD trainer's
evaluation; samples depend on (seed, global index) only, not on reader batches or the number of ranks."""

import json
import math

import pytest
import torch
from torch.utils.data import DataLoader

import ardistill.api
from ardistill import distributed
from ardistill.bench import quality as bench_quality
from ardistill.bench.methods import build_methods
from ardistill.cli import main
from ardistill.eval.protocol import (CHUNK, GeneratedImages, GeneratorFns, Uint8Images, balanced_labels, chunk_seed, fidelity,
                                     HeldoutImages, num_chunks, toy_quality)
from ardistill.eval.quality import card_metrics, teacher_quality
from ardistill.methods.dd.student import Student
from ardistill.methods.dd.train import new_student_model, toy_eval_fn
from ardistill.models.dd.config import DDStudentConfig
from ardistill.models.var.config import VARConfig, VQVAEConfig
from ardistill.models.var.transformer import VARTransformer
from ardistill.models.var.vqvae import VQVAE
from ardistill.teachers.base import SamplingSettings
from ardistill.teachers.var import VARTeacher

N = 40  # chunks of 16, 16, 8: the last one partial on purpose
KEYS = ("fid", "kid_mean", "precision", "recall", "class_accuracy")


def _randomize(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in sorted(module.named_parameters()):
            p.copy_(torch.randn(p.shape, generator=g) * (0.3 / math.sqrt(p[0].numel()) if p.dim() >= 2 else 0.05))
    return module.eval()


@pytest.fixture(scope="module")
def teacher() -> VARTeacher:
    """A random 32 px VAR teacher of the toy world's 12 classes (21 tokens)."""
    pn = (1, 2, 4)
    vae = VQVAEConfig(vocab_size=32, z_channels=8, ch=32, ch_mult=(1, 1, 1, 1), num_res_blocks=1, patch_nums=pn,
                      using_sa=False, using_mid_sa=False)
    cfg = VARConfig(depth=1, embed_dim=32, num_heads=1, num_classes=12, patch_nums=pn, vocab_size=32, z_channels=8,
                    drop_path_rate=0.0, vae=vae)
    teacher = VARTeacher("protocol-tiny", _randomize(VARTransformer(cfg), 1), _randomize(VQVAE(vae), 2),
                         default_sampling=SamplingSettings(cfg=1.5, top_k=0, top_p=0.0, temperature=1.0))
    assert teacher.image_size == 32
    return teacher


def test_labels_and_chunk_seeds():
    assert balanced_labels(5, 3, start=4).tolist() == [1, 2, 0, 1, 2]
    assert balanced_labels(25, 12).bincount().tolist() == [3] + [2] * 11
    assert [chunk_seed(0, c) for c in range(3)] == [0, 1, 2]  # seed 0: the benchmark's former `seed + c`
    seeds = {s: {chunk_seed(s, c) for c in range(1000)} for s in range(3)}
    assert not (seeds[0] & seeds[1]) and not (seeds[1] & seeds[2])  # different seeds never share a chunk's seed
    assert num_chunks(N) == 3


def test_samples_do_not_depend_on_reader_batches_or_ranks(teacher):
    """The protocol claims: reader batch size and the number of ranks change nothing (chunks are keyed by their
    global index; the chunk size is the protocol's, not the caller's)."""
    gen = GeneratorFns(lambda labels, seed: teacher.sample(labels, seed=seed), teacher.decode)
    seen = []
    ds = GeneratedImages(gen, N, seed=3, on_chunk=lambda images, labels: seen.append(labels.tolist()))
    by_reader = {b: torch.cat(list(DataLoader(ds, batch_size=b))) for b in (1, 5, 64)}
    assert all(torch.equal(by_reader[1], x) for x in by_reader.values())
    assert seen[:3] == [balanced_labels(16, 12, s).tolist() for s in (0, 16)] + [balanced_labels(8, 12, 32).tolist()]
    # world sizes 1, 2, 3: each rank makes its contiguous chunks (as `gather_generated`); rank order = global order
    for world in (2, 3):
        parts = []
        for rank in range(world):
            first, stop = distributed.split_range(num_chunks(N), rank, world)
            fresh = GeneratedImages(gen, N, seed=3)
            parts += [fresh.made(c) for c in range(first, stop)]
        assert torch.equal(torch.cat(parts), by_reader[1])
    # a chunk is one generator call with its chunk seed, whatever else was generated before it
    images, labels = GeneratedImages(gen, N, seed=3).chunk(2)
    assert torch.equal(images, teacher.decode(teacher.sample(balanced_labels(8, 12, 32), seed=chunk_seed(3, 2))).float())
    # the lazy dataset and the gathered images give the same torch-fidelity numbers
    ref = HeldoutImages(N, size=32)
    assert fidelity(GeneratedImages(gen, N, seed=3), ref) == fidelity(Uint8Images(by_reader[1]), ref)
    assert not torch.equal(torch.cat(list(DataLoader(GeneratedImages(gen, CHUNK, seed=4), batch_size=CHUNK))), by_reader[1][:CHUNK])


def _student_dir(teacher, tmp_path):
    model = new_student_model(teacher, seed=0)
    config = DDStudentConfig("var", teacher.name, (0, 1), 1)
    Student(model, teacher, config).save(tmp_path / "student")
    return model, config, tmp_path / "student"


def test_every_user_reports_the_same_numbers(teacher, tmp_path, monkeypatch, capsys):
    """Teacher: model card ↔ `teacher eval` (function and CLI) ↔ bench ↔ distill's benchmark. 1-step DD student:
    the trainer's evaluation ↔ bench ↔ distill's benchmark."""
    from ardistill.pipelines.distill import DistillPlan, _bench

    model, config, student_dir = _student_dir(teacher, tmp_path)
    monkeypatch.setattr(ardistill.api, "load_teacher", lambda *a, **k: teacher)

    card = card_metrics(teacher, num=N, progress=False)
    evaluated = teacher_quality(teacher, num=N, progress=False)
    bench_method = build_methods("teacher", teacher=teacher)[0]
    bench = bench_quality.toy_quality(bench_method, N, num_classes=12, image_size=32, seed=0, device=torch.device("cpu"))
    with pytest.raises(SystemExit) as e:
        main(["teacher", "eval", teacher.name, "--num-samples", str(N), "--out", str(tmp_path / "eval.png")])
    assert e.value.code in (0, None), capsys.readouterr().err
    cli = json.loads((tmp_path / "eval.json").read_text())
    plan = DistillPlan(teacher=teacher.name, recipe="unused", out=tmp_path, steps=(1,), fid_samples=N, batch_sizes=(1,),
                       repeats=1, baselines=())
    distilled = _bench(plan, student_dir, tmp_path / "bench")["quality"]

    for key in KEYS:
        value = bench[key]
        assert evaluated["samples"][key] == value and cli["samples"][key] == value, key
        assert distilled["teacher"][key] == value, key
        assert card["samples"][key] == round(value, 4), key
    assert card["seed"] == 0 and card["protocol"] == evaluated["protocol"]["protocol"]

    trainer = toy_eval_fn(teacher, config, num=N, seed=0)(model, 0)
    assert trainer["fid"] == distilled["dd-1step"]["fid"] and trainer["class_acc"] == distilled["dd-1step"]["class_accuracy"]
    for key in ("kid_mean", "precision", "recall"):
        assert trainer[key] == distilled["dd-1step"][key], key
    assert trainer["fid"] != bench["fid"]  # a different generator, so the check above is not vacuous


def test_seed_changes_the_samples_and_is_checked(teacher):
    gen = GeneratorFns(lambda labels, seed: teacher.sample(labels, seed=seed), teacher.decode)
    a = toy_quality(gen, 24, seed=0, image_size=32)
    b = toy_quality(gen, 24, seed=1, image_size=32)
    assert a["fid"] != b["fid"] and a["num_images"] == a["num_reference"] == 24
    from ardistill.errors import BadArgumentError

    with pytest.raises(BadArgumentError, match="seed"):
        toy_quality(gen, 24, seed=-1, image_size=32)


def test_teacher_eval_refuses_the_old_batch_size(capsys):
    with pytest.raises(SystemExit) as e:
        main(["teacher", "eval", "var-toy-l", "--batch-size", "50"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "chunks of 16" in err and "Traceback" not in err
