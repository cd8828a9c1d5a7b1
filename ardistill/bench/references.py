"""FID references for `ardistill bench --fid --fid-ref NAME|PATH`: the published ImageNet references by name (where
each is hosted, its protocol, which paper tables it reproduces) and readers of their file formats.

Formats read here (any of them may also be given as a path):

- ADM reference batch `.npz` (openai/guided-diffusion `evaluations/`): `arr_0` uint8 images `[N, H, W, 3]` (10,000
  for VIRTUAL_imagenet256_labeled.npz), `mu` `[2048]` and `sigma` `[2048, 2048]` of TF-Inception pool3 features over
  the whole ImageNet training set, and `mu_s` / `sigma_s` (spatial features for sFID; not used here).
- DD FID statistics `statistic.pth` (microsoft/distilled_decoding `LlamaGen/evaluations/fid_score.py`):
  `torch.save({"m": mu, "s": sigma})` with numpy arrays of pytorch-fid's InceptionV3 pool3 features (2048-d). A
  folder holding `statistic.pth` (what the release's `--fid_statistic DIR` takes) works too. Read with
  `torch.load(weights_only=True)` and only the numpy globals an array needs allowed: nothing else is unpickled.
- Any `.npz` with `mu`/`sigma` and/or `arr_0`, or a folder of png/jpg images.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ardistill.errors import ArdistillError, BadArgumentError
from ardistill.hub import HubFile, download_file

REFERENCES_SUBDIR = "fid-references"  # under --weights-dir / $ARDISTILL_HOME
DD_STATISTICS_FILE = "statistic.pth"
INCEPTION_POOL3_DIM = 2048  # torch-fidelity's inception-v3-compat "2048" layer, the FID layer of every reference here


@dataclass(frozen=True)
class FidReference:
    """A published FID reference: `filename` is its path under the references folder (for a Hub file: its path
    in the repository, so `hf download ... --local-dir FOLDER` puts it there); `image_size` and `num_classes` are
    what the generated images must have to be compared with it."""

    name: str
    filename: str
    image_size: int
    num_classes: int
    protocol: str
    reproduces: str
    hub: HubFile | None = None
    url: str | None = None  # where it is published when it is not on the Hugging Face Hub

    def download_command(self, home: Path) -> str:
        if self.hub is not None:
            return f"hf download {self.hub.repo_id} {self.hub.filename} --revision {self.hub.revision} --local-dir {home}"
        return f"curl -L --create-dirs -o {home / self.filename} {self.url}"


FID_REFERENCES: dict[str, FidReference] = {r.name: r for r in (
    FidReference(
        name="adm-imagenet256", filename="VIRTUAL_imagenet256_labeled.npz", image_size=256, num_classes=1000,
        protocol="ADM reference batch (openai/guided-diffusion evaluator): FID against its mu/sigma over ImageNet-256 "
                 "train, precision/recall and KID against its 10,000 images",
        reproduces="VAR, LlamaGen and CoDe FID-50k tables",
        url="https://openaipublic.blob.core.windows.net/diffusion/jul-2021/ref_batches/imagenet/256/VIRTUAL_imagenet256_labeled.npz",
    ),
    FidReference(
        name="dd-imagenet256", filename=f"ImageNet-256_FID_Statistic/{DD_STATISTICS_FILE}", image_size=256, num_classes=1000,
        protocol="Distilled Decoding release statistics (pytorch-fid pool3 mu/sigma of ImageNet-256): FID only",
        reproduces="DD1 and DD2 ImageNet-256 FID-50k tables",
        hub=HubFile("microsoft/distilled_decoding", f"ImageNet-256_FID_Statistic/{DD_STATISTICS_FILE}"),
    ),
)}


def references_home(weights_dir: str | os.PathLike | None = None) -> Path:
    """Where named references are looked up and downloaded: `<weights home>/fid-references`."""
    from ardistill.registry import weights_home

    return weights_home(weights_dir) / REFERENCES_SUBDIR


def fetch_reference(spec: FidReference, *, weights_dir: str | os.PathLike | None = None, offline: bool | None = None) -> Path:
    """The local file of a named reference: already in the references folder, else downloaded from the Hub there
    (`offline`: never touch the network; default `$HF_HUB_OFFLINE`). One-line errors carry the download command."""
    home = references_home(weights_dir)
    local = home / spec.filename
    if local.is_file():
        return local
    how = f"download it with `{spec.download_command(home)}` or pass --fid-ref PATH"
    if spec.hub is None:
        raise ArdistillError(f"{spec.name}: {local} not found; it is not on the Hugging Face Hub: {how}")
    try:
        return download_file(spec.hub, local_dir=home, offline=offline)
    except ArdistillError:
        raise
    except (OSError, ValueError) as e:  # huggingface_hub's errors (offline, no connection, HTTP) are OSErrors
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ArdistillError(f"{spec.name}: {spec.hub.filename} is not in {home} and could not be downloaded "
                             f"({type(e).__name__}: {reason[:160]}); {how}") from None


class NpzImages(Dataset):
    """The `arr_0` images (uint8 `[N, H, W, 3]`) of an ADM reference batch, memory-mapped, as `[3, H, W]` items."""

    def __init__(self, images):
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ArdistillError(f"arr_0 has shape {list(images.shape)}; expected [N, H, W, 3] uint8")
        self.images = images

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.images[i].copy()).permute(2, 0, 1).contiguous()


def npz_member(path: Path, name: str) -> np.ndarray:
    """Array `name` of an .npz, memory-mapped when the member is stored uncompressed (as `np.savez` writes ADM's
    reference batches: 10 GB of images are not read into memory); compressed members are read whole."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(f"{name}.npy")
        if info.compress_type != zipfile.ZIP_STORED:
            with zf.open(info) as f:
                return np.lib.format.read_array(f)
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)  # zip local file header: name and extra-field lengths at bytes 26..29
        f.seek(info.header_offset + 30 + int.from_bytes(local[26:28], "little") + int.from_bytes(local[28:30], "little"))
        fmt = np.lib.format
        readers = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}
        version = fmt.read_magic(f)
        if version not in readers:
            return np.load(path)[name]
        shape, fortran, dtype = readers[version](f)
        offset = f.tell()
    return np.memmap(path, dtype=dtype, mode="r", shape=shape, offset=offset, order="F" if fortran else "C")


@dataclass
class Reference:
    """What a reference offers: images (KID, precision/recall, FID) and/or precomputed FID statistics (`mu` `[D]`,
    `sigma` `[D, D]`, float64). `image_size`: the side of its images where known (None: statistics only);
    `spec`: the registry entry when it was named."""

    images: Dataset | None
    fid_statistics: dict | None
    source: str
    image_size: int | None = None
    spec: FidReference | None = field(default=None)


def _statistics(mu, sigma, path: Path) -> dict:
    mu, sigma = (np.asarray(x.numpy() if torch.is_tensor(x) else x, np.float64) for x in (mu, sigma))
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise ArdistillError(f"{path}: FID statistics must be mu [D] and sigma [D, D]; got {list(mu.shape)} and {list(sigma.shape)}")
    return {"mu": mu, "sigma": sigma}


def _numpy_pickle_globals() -> list:
    """What unpickling a numpy array needs, under numpy 2's and numpy 1's module names (files written by either)."""
    reconstruct = np._core.multiarray._reconstruct if hasattr(np, "_core") else np.core.multiarray._reconstruct
    dtypes = [type(np.dtype(t)) for t in (np.float16, np.float32, np.float64)]
    return [reconstruct, (reconstruct, "numpy.core.multiarray._reconstruct"), (reconstruct, "numpy._core.multiarray._reconstruct"),
            np.ndarray, np.dtype, *dtypes]


def read_statistics_pth(path: Path) -> dict:
    """`{"mu", "sigma"}` (float64) from a DD `statistic.pth` (`{"m": mu, "s": sigma}`, numpy arrays or tensors;
    `{"mu", "sigma"}` is accepted too)."""
    try:
        with torch.serialization.safe_globals(_numpy_pickle_globals()):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001  (any failure to parse a user's file is that file's fault: one line)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ArdistillError(f"{path}: not a readable FID statistics file ({first[:160]})") from None
    for m, s in (("m", "s"), ("mu", "sigma")):
        if isinstance(obj, dict) and m in obj and s in obj:
            return _statistics(obj[m], obj[s], path)
    keys = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
    raise ArdistillError(f"{path}: FID statistics need keys m and s (Distilled Decoding) or mu and sigma; found {keys}")


def _read_npz(p: Path) -> Reference:
    try:
        data = np.load(p)
        keys = set(data.files)
        stats = _statistics(data["mu"], data["sigma"], p) if {"mu", "sigma"} <= keys else None
        images = NpzImages(npz_member(p, "arr_0")) if "arr_0" in keys else None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise ArdistillError(f"{p}: not a readable .npz ({e})") from None
    if stats is None and images is None:
        raise ArdistillError(f"{p}: an ADM reference batch needs arr_0 (images) or mu and sigma (statistics); found {sorted(keys)}")
    size = None
    if images is not None:
        h, w = images.images.shape[1:3]
        if h != w:
            raise ArdistillError(f"{p}: arr_0 images are {h}×{w}; expected square images")
        size = int(h)
    return Reference(images, stats, str(p), size)


def load_reference(reference: str | os.PathLike) -> Reference:
    """A reference file or folder: an `.npz` (`mu`/`sigma` → FID; `arr_0` images → KID, precision/recall and FID
    when there are no statistics), a DD `statistic.pth` (or a folder holding one), or a folder of png/jpg images."""
    p = Path(reference).expanduser()
    if p.is_dir() and (p / DD_STATISTICS_FILE).is_file():
        return Reference(None, read_statistics_pth(p / DD_STATISTICS_FILE), str(p / DD_STATISTICS_FILE))
    if p.is_dir():
        from torch_fidelity.datasets import ImagesPathDataset
        from torch_fidelity.utils import glob_samples_paths

        files = glob_samples_paths(str(p), samples_find_deep=False, samples_find_ext="png,jpg,jpeg", verbose=False)
        if len(files) < 2:
            raise ArdistillError(f"reference folder {p}: fewer than 2 png/jpg images (and no {DD_STATISTICS_FILE})")
        images = ImagesPathDataset(files)
        h, w = images[0].shape[-2:]
        return Reference(images, None, str(p), int(h) if h == w else None)
    if p.is_file() and p.suffix == ".npz":
        return _read_npz(p)
    if p.is_file() and p.suffix in (".pth", ".pt"):
        return Reference(None, read_statistics_pth(p), str(p))
    what = "no such file or reference name" if not p.exists() else "unknown kind of file"
    raise ArdistillError(f"--fid-ref {reference}: {what}; expected an ADM reference batch .npz (or any with mu/sigma), a "
                         f"{DD_STATISTICS_FILE}, an image folder or a name: {', '.join(FID_REFERENCES)}")


def open_reference(name_or_path: str | os.PathLike, *, weights_dir: str | os.PathLike | None = None,
                   offline: bool | None = None) -> Reference:
    """A named reference (`FID_REFERENCES`; fetched when missing) or a path, loaded; a named reference whose file
    holds images of another size than its entry says is refused."""
    spec = FID_REFERENCES.get(str(name_or_path))
    if spec is None:
        return load_reference(name_or_path)
    ref = load_reference(fetch_reference(spec, weights_dir=weights_dir, offline=offline))
    if ref.image_size is not None and ref.image_size != spec.image_size:
        raise ArdistillError(f"{spec.name}: {ref.source} holds {ref.image_size}-px images, not the {spec.image_size}-px "
                             f"reference; {spec.download_command(references_home(weights_dir))}")
    ref.spec, ref.image_size = spec, spec.image_size
    ref.source = f"{spec.name} ({ref.source})"
    return ref


def check_reference_fits(ref: Reference | FidReference, *, model: str, image_size: int, num_classes: int,
                         feature_dim: int = INCEPTION_POOL3_DIM) -> None:
    """Refuse (one line) a reference that cannot score `model`'s images: another image size, a class-conditional
    ImageNet reference for a model of other classes, or statistics of another feature size. A registry entry can be
    checked before its file is fetched."""
    if isinstance(ref, FidReference):
        ref = Reference(None, None, ref.name, ref.image_size, ref)
    toy_hint = " (built-in toy models: leave out --fid-ref for the toy-world evaluation)"
    if ref.spec is not None and num_classes != ref.spec.num_classes:
        raise BadArgumentError(f"--fid-ref {ref.spec.name} is class-conditional ImageNet ({ref.spec.num_classes} classes); "
                               f"{model} has {num_classes} classes{toy_hint}")
    if ref.image_size is not None and ref.image_size != image_size:
        raise BadArgumentError(f"--fid-ref {ref.source} holds {ref.image_size}×{ref.image_size} images; {model} makes "
                               f"{image_size}×{image_size} images{toy_hint}")
    if ref.fid_statistics is not None and ref.fid_statistics["mu"].shape[0] != feature_dim:
        raise BadArgumentError(f"--fid-ref {ref.source}: statistics of {ref.fid_statistics['mu'].shape[0]}-d features; "
                               f"Inception pool3 (inception-v3-compat) gives {feature_dim}")
