"""The one evaluation protocol: which images a generator is scored on, and how they are scored.

Every toy-FID in the project comes from here: the model cards of the built-in teachers (`ardistill teacher export`),
`ardistill teacher eval`, the DD trainer's periodic evaluation, `ardistill bench` and so `ardistill distill`. Given the
same generator, seed and number of samples they all report the same numbers (docs/evaluation.md).

A generator is anything with the two fields of `ardistill.bench.methods.BenchMethod`:
`generate_tokens(labels [B] int64, seed: int) -> tokens [B, L]` and `decode(tokens) -> images [B, 3, H, W]` in [0, 1].

The protocol (`PROTOCOL` names this version):

- **Labels**: sample i (global index, 0-based) has class `i mod C` (`balanced_labels`); `num` a multiple of C gives
  every class equally often.
- **Chunks**: samples are made in chunks of `CHUNK` = 16 consecutive global indices; chunk c holds samples
  [16c, 16c + 16) (the last one may be shorter) and is one `generate_tokens` call.
- **Seeds**: chunk c is generated with seed `chunk_seed(seed, c) = seed · 1_000_003 + c`. Samples are therefore a
  pure function of (generator, seed, global index): the same whatever batch size the caller uses for other
  purposes, however torch-fidelity batches its reads, and however many ranks share the work (each rank makes a
  contiguous range of chunks and rank 0 scores all images in global-index order). For seed 0 the rule is the
  `seed + c` the benchmark used before it (so seed-0 benchmark numbers are unchanged); the factor keeps the chunk
  seeds of different seeds disjoint (seed 1 no longer re-uses seed 0's chunk seeds 1, 2, ...).
- **Reference** (toy world): the first `num` images of the procedural world's held-out stream
  (`split_images(split="heldout", seed=0)`) at the generator's image size.
- **Metrics**: torch-fidelity `calculate_metrics` with the shipped evaluator as the feature extractor
  ("ardistill-toy", registered by `ardistill.eval.fidelity`): FID, KID (subset size min(1000, N, N_ref)),
  precision/recall, IS (min(10, N) splits), features read in batches of `FEATURE_BATCH`; the names are
  `METRIC_NAMES` (`fid`, `kid_mean`, `kid_std`, `precision`, `recall`, `f_score`, `isc_mean`, `isc_std`);
  `class_accuracy` is the shipped evaluator's accuracy on the generated images against their requested labels.

torch-fidelity is imported on first use (it is slow to import).
"""

from __future__ import annotations

import time
from typing import Callable, Iterable, Protocol

import torch
from torch.utils.data import Dataset

from ardistill import distributed
from ardistill.data import NUM_CLASSES, split_images
from ardistill.errors import ArdistillError, BadArgumentError
from ardistill.eval.evaluator import EXTRACTOR_NAME as TOY_EXTRACTOR
from ardistill.eval.evaluator import load_evaluator
from ardistill.images import to_uint8

PROTOCOL = "ardistill.eval.protocol/1"
CHUNK = 16  # samples per generate_tokens call; part of what defines the samples
SEED_STRIDE = 1_000_003  # chunk seed = seed · SEED_STRIDE + chunk index
FEATURE_BATCH = 64  # images per feature-extractor batch inside torch-fidelity
HELDOUT_BLOCK = 256  # held-out reference images rendered per block

# torch-fidelity's result keys → the names every report, card and JSON file uses.
METRIC_NAMES = {
    "frechet_inception_distance": "fid",
    "kernel_inception_distance_mean": "kid_mean",
    "kernel_inception_distance_std": "kid_std",
    "precision": "precision",
    "recall": "recall",
    "f_score": "f_score",
    "inception_score_mean": "isc_mean",
    "inception_score_std": "isc_std",
}


class Generator(Protocol):
    """What the protocol needs of a model (the fields of `ardistill.bench.methods.BenchMethod`)."""

    generate_tokens: Callable[[torch.Tensor, int], torch.Tensor]  # (labels [B] int64, seed) → tokens [B, L]
    decode: Callable[[torch.Tensor], torch.Tensor]  # tokens [B, L] → images [B, 3, H, W] in [0, 1]


class GeneratorFns:
    """A `Generator` made of two callables (for callers that have no `BenchMethod`)."""

    def __init__(self, generate_tokens: Callable[[torch.Tensor, int], torch.Tensor], decode: Callable[[torch.Tensor], torch.Tensor]):
        self.generate_tokens, self.decode = generate_tokens, decode


def student_generator(student, *, steps: int = 1) -> GeneratorFns:
    """A DD or DD2 student's `steps`-step sampler with the one student decode rule (the official DD release's:
    continuous code vectors `[B, L, C]` → `teacher.decode_embeddings`), as the benchmark's `dd-{steps}step` /
    `dd2-{steps}step` generators (`ardistill.generators.dd_generators`) decode it. Used by training evaluations."""
    return GeneratorFns(lambda labels, seed: student.sample(labels, steps=steps, seed=seed, return_embeddings=True),
                        student.teacher.decode_embeddings)


# ------------------------------------------------------------------------------------------ labels, chunks, seeds
def balanced_labels(num: int, num_classes: int, start: int = 0) -> torch.Tensor:
    """Labels `[num]` int64 of the global indices [start, start + num): index i has class `i mod num_classes`."""
    return torch.arange(start, start + num, dtype=torch.long) % num_classes


def chunk_seed(seed: int, chunk: int) -> int:
    """The `generate_tokens` seed of chunk `chunk` (global indices [CHUNK·chunk, CHUNK·(chunk + 1)))."""
    return int(seed) * SEED_STRIDE + int(chunk)


def num_chunks(num: int) -> int:
    return (num + CHUNK - 1) // CHUNK


def check_seed(seed: int) -> int:
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise BadArgumentError(f"the evaluation seed must be an integer ≥ 0, got {seed!r}")
    return seed


def describe(num: int, seed: int) -> dict:
    """The protocol of one evaluation, as reports record it."""
    return {"protocol": PROTOCOL, "num_samples": num, "seed": seed, "chunk": CHUNK,
            "labels": "global index i → class i mod C",
            "chunk_seed": f"seed · {SEED_STRIDE} + i // {CHUNK}",
            "metrics": f"torch-fidelity calculate_metrics, feature batch {FEATURE_BATCH}"}


# ------------------------------------------------------------------------------------------------ the datasets
class GeneratedImages(Dataset):
    """`num` images of `generator` as uint8 `[3, H, W]` items (global index order), made chunk by chunk on first access.

    `on_chunk(images [n, 3, H, W] in [0, 1] on the CPU, labels [n])` sees every chunk once it is made (accuracy,
    progress, grids). `seconds` accumulates the time spent in `generate_tokens` + `decode`.
    """

    def __init__(self, generator: Generator, num: int, *, num_classes: int = NUM_CLASSES, seed: int = 0,
                 device: torch.device | str = "cpu", on_chunk: Callable[[torch.Tensor, torch.Tensor], None] | None = None):
        self.generator, self.num, self.num_classes = generator, int(num), int(num_classes)
        self.seed, self.device, self.on_chunk = check_seed(seed), torch.device(device), on_chunk
        self.seconds = 0.0
        self._chunk_index, self._chunk = -1, None

    def __len__(self) -> int:
        return self.num

    def chunk(self, c: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(images `[n, 3, H, W]` float in [0, 1] on the CPU, labels `[n]`) of chunk `c`; does not call `on_chunk`."""
        start = c * CHUNK
        labels = balanced_labels(min(CHUNK, self.num - start), self.num_classes, start=start)
        t0 = time.perf_counter()
        with torch.no_grad():
            tokens = self.generator.generate_tokens(labels.to(self.device), chunk_seed(self.seed, c))
            images = self.generator.decode(tokens).float().cpu()
        self.seconds += time.perf_counter() - t0
        return images, labels

    def made(self, c: int) -> torch.Tensor:
        """Chunk `c` as uint8 `[n, 3, H, W]`, passed to `on_chunk` (made once; the last chunk is cached)."""
        if c != self._chunk_index:
            images, labels = self.chunk(c)
            if self.on_chunk is not None:
                self.on_chunk(images, labels)
            self._chunk_index, self._chunk = c, to_uint8(images).permute(0, 3, 1, 2).contiguous()
        return self._chunk

    def __getitem__(self, i: int) -> torch.Tensor:
        if not 0 <= i < self.num:
            raise IndexError(f"index {i} out of range for {self.num} generated images")
        return self.made(i // CHUNK)[i % CHUNK]


class HeldoutImages(Dataset):
    """The first `num` images of the procedural world's held-out stream, uint8 `[3, size, size]`, rendered lazily."""

    def __init__(self, num: int, *, size: int, seed: int = 0):
        self.num, self.size, self.seed = num, size, seed
        self._start, self._block = -1, None

    def __len__(self) -> int:
        return self.num

    def __getitem__(self, i: int) -> torch.Tensor:
        start = i - i % HELDOUT_BLOCK
        if start != self._start:
            images, _ = split_images(min(HELDOUT_BLOCK, self.num - start), split="heldout", seed=self.seed, size=self.size, start=start)
            self._start, self._block = start, to_uint8(images).permute(0, 3, 1, 2).contiguous()
        return self._block[i - start]


class Uint8Images(Dataset):
    """uint8 images `[N, 3, H, W]` as a torch-fidelity input (each item `[3, H, W]` uint8)."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def as_uint8_images(images) -> torch.Tensor:
    """A tensor `[N, 3, H, W]` in [0, 1] (or uint8), or an iterable of such batches or of (images, labels)
    pairs → one uint8 tensor `[N, 3, H, W]` (rounded to nearest, as when saved to PNG)."""
    batches = [images] if isinstance(images, torch.Tensor) else list(images)
    out = []
    for b in batches:
        b = b[0] if isinstance(b, (tuple, list)) else b
        if not isinstance(b, torch.Tensor) or b.dim() != 4 or b.shape[1] != 3:
            got = list(b.shape) if isinstance(b, torch.Tensor) else type(b).__name__
            raise BadArgumentError(f"expected images [N, 3, H, W], got {got}")
        out.append(b.cpu() if b.dtype == torch.uint8 else to_uint8(b).permute(0, 3, 1, 2).contiguous())
    if not out or sum(b.shape[0] for b in out) == 0:
        raise BadArgumentError("no images to score")
    sizes = {tuple(b.shape[1:]) for b in out}
    if len(sizes) != 1:
        raise BadArgumentError(f"all batches must have the same image shape, got {sorted(sizes)}")
    return torch.cat(out)


# -------------------------------------------------------------------------------------------------- the metrics
def short_names(raw: dict) -> dict[str, float]:
    """torch-fidelity's result → {short name: float} (`METRIC_NAMES`; keys it did not compute are left out)."""
    return {short: float(raw[long]) for long, short in METRIC_NAMES.items() if long in raw}


def fidelity(generated: Dataset, reference: Dataset | None, *, extractor: str = TOY_EXTRACTOR, weights_path: str | None = None,
             device: torch.device | str = "cpu", fid: bool = True, kid: bool = True, prc: bool = True, isc: bool = True) -> dict:
    """torch-fidelity metrics of `generated` against `reference` (datasets of uint8 `[3, H, W]` items), with the
    protocol's settings; {"fid", "kid_mean", "kid_std", "precision", "recall", "f_score", "isc_mean", "isc_std",
    "num_images", "num_reference"} (only the requested metrics)."""
    if extractor == TOY_EXTRACTOR:
        import ardistill.eval.fidelity  # noqa: F401  (registers the "ardistill-toy" extractor)
    from torch_fidelity import calculate_metrics

    if not (fid or kid or prc or isc):
        raise BadArgumentError("choose at least one of fid, kid, prc, isc")
    needs_reference = fid or kid or prc
    n1, n2 = len(generated), (len(reference) if reference is not None else 0)
    if needs_reference and min(n1, n2) < 2:
        raise ArdistillError("FID/KID/precision-recall need at least 2 images on each side (--num-samples ≥ 2)")
    raw = calculate_metrics(
        input1=generated, input2=reference if needs_reference else None, feature_extractor=extractor,
        feature_extractor_weights_path=weights_path, fid=fid, kid=kid, prc=prc, isc=isc, batch_size=FEATURE_BATCH,
        cuda=torch.device(device).type == "cuda", kid_subset_size=min(1000, n1, n2) if needs_reference else 1000,
        isc_splits=min(10, n1), save_cpu_ram=True, cache=False, verbose=False,
    )
    return short_names(raw) | {"num_images": n1, "num_reference": n2}


def gather_generated(generated: GeneratedImages) -> Dataset | None:
    """This rank's contiguous range of chunks, made here (each seen once by `on_chunk`), then all ranks' uint8
    images on rank 0 in global index order; None on the other ranks. Rank 0 holds all N images
    (N × 3 × H × W bytes: 9.8 GB for 50k at 256 px)."""
    first, stop = distributed.split_range(num_chunks(generated.num), distributed.rank(), distributed.world())
    mine = [generated.made(c) for c in range(first, stop)]
    parts = distributed.gather_objects(torch.cat(mine) if mine else None)
    return None if parts is None else Uint8Images(torch.cat([p for p in parts if p is not None]))


def on_all_ranks(generated: GeneratedImages, score: Callable[[Dataset], dict], *, across_ranks: bool = True) -> dict:
    """`score(images)`: in one process directly over the lazy dataset; under torchrun (`across_ranks`) every rank
    makes its chunks, rank 0 scores them all in global index order, and every rank returns rank 0's numbers.
    `across_ranks=False`: this process makes and scores everything (e.g. rank 0 alone, inside a trainer)."""
    if not across_ranks or distributed.world() == 1:
        return score(generated)
    images = gather_generated(generated)
    return distributed.broadcast_object(score(images) if distributed.is_main() else None)


def toy_quality(generator: Generator, num: int, *, seed: int = 0, image_size: int, num_classes: int = NUM_CLASSES,
                device: torch.device | str = "cpu", on_chunk: Callable[[torch.Tensor, torch.Tensor], None] | None = None,
                across_ranks: bool = True, evaluator_dir: str | None = None) -> dict:
    """The protocol on the toy world: `num` samples of `generator` (chunks, labels, seeds as in the module
    docstring) against the first `num` held-out real images; the shipped evaluator (or `evaluator_dir`) is the
    feature extractor and the classifier.

    Returns {"fid", "kid_mean", "kid_std", "precision", "recall", "f_score", "isc_mean", "isc_std",
    "class_accuracy", "num_images", "num_reference", "extractor", "reference", "generation_seconds"}.
    """
    if num < 2:
        raise BadArgumentError(f"the evaluation needs at least 2 samples, got {num}")
    evaluator = load_evaluator(evaluator_dir, device=device)
    correct = [0, 0]

    def score_chunk(images: torch.Tensor, labels: torch.Tensor) -> None:
        correct[0] += int((evaluator.predict(images) == labels).sum())
        correct[1] += int(labels.numel())
        if on_chunk is not None:
            on_chunk(images, labels)

    generated = GeneratedImages(generator, num, num_classes=num_classes, seed=seed, device=device, on_chunk=score_chunk)
    reference = HeldoutImages(num, size=image_size)
    metrics = on_all_ranks(generated, lambda images: fidelity(images, reference, weights_path=evaluator_dir, device=device),
                           across_ranks=across_ranks)
    tally = torch.tensor([*correct, generated.seconds], dtype=torch.float64)
    if across_ranks:
        tally = distributed.all_reduce_sum(tally)
    right, total, seconds = tally.tolist()
    return {**metrics, "class_accuracy": right / max(total, 1), "extractor": f"{TOY_EXTRACTOR} (shipped evaluator)"
            if evaluator_dir is None else f"{TOY_EXTRACTOR} ({evaluator_dir})",
            "reference": f"procedural world held-out stream, first {num} images", "generation_seconds": seconds}


def toy_fidelity_metrics(
    images: torch.Tensor | Iterable,
    reference: torch.Tensor | Iterable | None = None,
    *,
    reference_num: int | None = None,
    reference_seed: int = 0,
    fid: bool = True,
    kid: bool = True,
    prc: bool = True,
    isc: bool = True,
    evaluator_dir: str | None = None,
    device: str = "cpu",
) -> dict[str, float]:
    """The protocol's metrics of images already made (reconstructions, a sweep's images, real images).

    Args:
        images: images `[N, 3, H, W]` in [0, 1] or uint8 (or an iterable of batches / (images, labels) pairs).
        reference: real images in the same form; default: the first `reference_num` (default N) images of the
            held-out stream (`split_images(split="heldout", seed=reference_seed)`) at the size of `images`.
    Returns: {"fid", "kid_mean", "kid_std", "precision", "recall", "f_score", "isc_mean", "isc_std", "num_images",
        "num_reference"} (only the requested metrics).
    """
    generated = as_uint8_images(images)
    if reference is None:
        num = reference_num or generated.shape[0]
        reference = split_images(num, split="heldout", seed=reference_seed, size=generated.shape[-1])[0]
    real = as_uint8_images(reference)
    return fidelity(Uint8Images(generated), Uint8Images(real), weights_path=evaluator_dir, device=device,
                    fid=fid, kid=kid, prc=prc, isc=isc)


__all__ = ["PROTOCOL", "CHUNK", "SEED_STRIDE", "FEATURE_BATCH", "TOY_EXTRACTOR", "METRIC_NAMES", "Generator", "GeneratorFns", "student_generator",
           "balanced_labels", "chunk_seed", "num_chunks", "describe", "GeneratedImages", "HeldoutImages", "Uint8Images",
           "as_uint8_images", "short_names", "fidelity", "gather_generated", "on_all_ranks", "toy_quality",
           "toy_fidelity_metrics"]
