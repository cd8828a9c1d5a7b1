import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from ardistill.bench import quality
from ardistill.bench.methods import build_methods
from ardistill.bench.quality import (CHUNK, GeneratedImages, HeldoutImages, NpzImages, fidelity_against_reference,
                                     inception_weights, load_reference)
from ardistill.errors import ArdistillError
from ardistill.images import save_png, to_uint8
from ardistill.io import sha256_file


@pytest.fixture(scope="module")
def teacher_method(toy_teacher):
    return build_methods("teacher", teacher=toy_teacher)[0]


def test_samples_are_keyed_by_global_index_not_by_reader_batch(teacher_method, toy_teacher):
    seen = []
    ds = GeneratedImages(teacher_method, CHUNK + 4, num_classes=toy_teacher.num_classes, seed=3, device=torch.device("cpu"),
                         on_chunk=lambda images, labels: seen.append(labels.tolist()))
    by_5 = torch.cat(list(DataLoader(ds, batch_size=5)))
    assert by_5.dtype == torch.uint8 and by_5.shape == (CHUNK + 4, 3, toy_teacher.image_size, toy_teacher.image_size)
    assert seen == [[i % toy_teacher.num_classes for i in range(CHUNK)], [i % toy_teacher.num_classes for i in range(CHUNK, CHUNK + 4)]]
    fresh = GeneratedImages(teacher_method, CHUNK + 4, num_classes=toy_teacher.num_classes, seed=3, device=torch.device("cpu"))
    assert torch.equal(fresh[CHUNK + 2], by_5[CHUNK + 2]) and torch.equal(fresh[1], by_5[1])  # random access, same pixels
    other_seed = GeneratedImages(teacher_method, CHUNK, num_classes=toy_teacher.num_classes, seed=4, device=torch.device("cpu"))
    assert not torch.equal(other_seed[0], by_5[0])


def test_inception_weights_missing_wrong_and_right(tmp_path, monkeypatch):
    monkeypatch.delenv(quality.INCEPTION_ENV, raising=False)
    with pytest.raises(ArdistillError, match=quality.INCEPTION_ENV) as e:
        inception_weights(None)
    assert quality.INCEPTION_URL in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ArdistillError, match="no such file"):
        inception_weights(tmp_path / "missing.pth")
    f = tmp_path / "w.pth"
    f.write_bytes(b"not inception")
    with pytest.raises(ArdistillError, match="SHA-256"):
        inception_weights(f)
    monkeypatch.setattr(quality, "INCEPTION_SHA256_PREFIX", sha256_file(f)[:8])
    monkeypatch.setenv(quality.INCEPTION_ENV, str(f))
    assert inception_weights(None) == str(f)


def test_adm_reference_batch_and_folder(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, size=(3, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "ref.npz", arr_0=images, mu=np.zeros(4, np.float32), sigma=np.eye(4))
    ref = load_reference(tmp_path / "ref.npz")
    assert isinstance(ref.images.images, np.memmap)  # 50k ImageNet images are never read whole
    assert isinstance(ref.images, NpzImages) and len(ref.images) == 3 and ref.fid_statistics["mu"].dtype == np.float64
    assert torch.equal(ref.images[2], torch.from_numpy(images[2]).permute(2, 0, 1))
    np.savez_compressed(tmp_path / "packed.npz", arr_0=images)
    assert torch.equal(load_reference(tmp_path / "packed.npz").images[1], torch.from_numpy(images[1]).permute(2, 0, 1))
    np.savez(tmp_path / "stats.npz", mu=np.zeros(4), sigma=np.eye(4))
    assert load_reference(tmp_path / "stats.npz").images is None
    np.savez(tmp_path / "bad.npz", x=np.zeros(4))
    with pytest.raises(ArdistillError, match="arr_0 .images. or mu and sigma"):
        load_reference(tmp_path / "bad.npz")
    with pytest.raises(ArdistillError, match="expected an ADM reference batch"):
        load_reference(tmp_path / "nothing.txt")
    folder = tmp_path / "imgs"
    for i in range(3):
        save_png(torch.rand(3, 8, 8), folder / f"{i}.png")
    assert len(load_reference(folder).images) == 3


def test_fid_against_statistics_equals_fid_against_the_images(tmp_path):
    """The ADM path (features once, FID from mu/sigma) through torch-fidelity, checked on the toy extractor."""
    import ardistill.eval.fidelity  # noqa: F401  (registers "ardistill-toy")
    from ardistill.data import split_images
    from ardistill.eval.evaluator import load_evaluator

    generated = HeldoutImages(40, size=64, seed=1)
    real, _ = split_images(60, split="heldout", seed=0, size=64)
    feats = load_evaluator().features(real).double().numpy()
    np.savez(tmp_path / "ref.npz", arr_0=to_uint8(real).numpy(), mu=feats.mean(0), sigma=np.cov(feats, rowvar=False))
    cpu = torch.device("cpu")
    with_stats = fidelity_against_reference(generated, load_reference(tmp_path / "ref.npz"), extractor="ardistill-toy", weights_path=None, device=cpu)
    with_images = quality.fidelity(generated, NpzImages(to_uint8(real).numpy()), extractor="ardistill-toy", weights_path=None, device=cpu)
    assert with_stats["fid_against"].startswith("reference statistics")
    assert with_stats["fid"] == pytest.approx(with_images["fid"], rel=1e-3)
    for k in ("kid_mean", "precision", "recall", "isc_mean"):
        assert with_stats[k] == pytest.approx(with_images[k], rel=1e-4, abs=1e-6)


def test_imagenet_samples_must_be_class_balanced(teacher_method):
    with pytest.raises(ArdistillError, match="multiple of 1000"):
        quality.imagenet_quality(teacher_method, 1500, num_classes=1000, reference="x", weights=None, seed=0, device=torch.device("cpu"))
