import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from ardistill.bench import quality
from ardistill.bench.methods import build_methods
from ardistill.bench.quality import CHUNK, GeneratedImages, NpzImages, inception_weights, reference_dataset
from ardistill.errors import ArdistillError
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


def test_adm_reference_batch_images(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, size=(3, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "ref.npz", arr_0=images, mu=np.zeros(4), sigma=np.eye(4))
    ds = reference_dataset(tmp_path / "ref.npz")
    assert isinstance(ds, NpzImages) and len(ds) == 3
    assert torch.equal(ds[2], torch.from_numpy(images[2]).permute(2, 0, 1))
    np.savez(tmp_path / "stats.npz", mu=np.zeros(4))
    with pytest.raises(ArdistillError, match="arr_0"):
        reference_dataset(tmp_path / "stats.npz")
    with pytest.raises(ArdistillError, match="expected an ADM reference batch"):
        reference_dataset(tmp_path / "nothing.txt")
    assert reference_dataset(tmp_path) == str(tmp_path)  # a folder of images goes to torch-fidelity as a path


def test_imagenet_samples_must_be_class_balanced(teacher_method):
    with pytest.raises(ArdistillError, match="multiple of 1000"):
        quality.imagenet_quality(teacher_method, 1500, num_classes=1000, reference="x", weights=None, seed=0, device=torch.device("cpu"))
