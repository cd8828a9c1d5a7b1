"""Training data of the built-in teachers: images of the procedural world keyed by global index, their tokens
(encoded once and cached), and epoch batches over those tokens that are a pure function of the step.

Shapes: images [B, 3, H, W] in [0, 1]; tokens [N, L] int64; labels [N] int64.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ardistill.data.procedural import ROTATION
from ardistill.io import atomic_save_safetensors, load_state_dict_file


@dataclass(frozen=True)
class ImageData:
    """Where training images come from: the "train" split of the procedural world at `size` px, seed `seed`
    (the held-out split the evaluator and FID use is a disjoint stream); `rotation`: the world's range of shape
    angles in degrees (the default world: 30; the shipped tokenizers were trained on 360)."""

    seed: int = 0
    size: int = 64
    rotation: float = ROTATION

    def batch(self, start: int, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Images [count, 3, size, size] in [0, 1] and labels [count] of global indices [start, start + count)."""
        from ardistill.data import make_images, stream_seed

        return make_images(range(start, start + count), seed=stream_seed("train", self.seed), size=self.size,
                           rotation=self.rotation)


@torch.no_grad()
def tokenize_dataset(vae: VQVAE, data: ImageData, num_images: int, *, batch_size: int = 256,
                     progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode images [0, num_images) once: tokens [N, L] int64 and labels [N] int64."""
    from rich.progress import Progress

    tokens, labels = [], []
    vae.eval()
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"tokenizing {num_images} training images", total=num_images)
        for start in range(0, num_images, batch_size):
            n = min(batch_size, num_images - start)
            images, lab = data.batch(start, n)
            tokens.append(torch.cat(vae.img_to_idx(images.mul(2).sub_(1)), dim=1))
            labels.append(lab)
            bar.advance(task, n)
    return torch.cat(tokens), torch.cat(labels).long()


def load_or_make_token_cache(vae: VQVAE, data: ImageData, num_images: int, path: Path,
                             progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens of the training images, cached in `path` (written atomically) so a resumed run skips the encoding;
    the cache is used only if it was made from the same images (count, seed, size, rotation)."""
    # What the cache was made from (a folder reused after a change of the world must not train on stale tokens).
    key = torch.tensor([num_images, data.seed, data.size, round(data.rotation * 1000)], dtype=torch.int64)
    if path.is_file():
        sd = load_state_dict_file(path)
        if "data_key" in sd and torch.equal(sd["data_key"], key):
            return sd["tokens"].long(), sd["labels"].long()
    tokens, labels = tokenize_dataset(vae, data, num_images, progress=progress)
    atomic_save_safetensors({"tokens": tokens.to(torch.int32), "labels": labels, "data_key": key}, path)
    return tokens, labels


class EpochBatches:
    """`(step, micro) → (tokens [B, L], labels [B])`: a seeded permutation per epoch, so the batch of a step is a pure
    function of (seed, step, micro) and a resumed run sees exactly the batches of an uninterrupted one."""

    def __init__(self, tokens: torch.Tensor, labels: torch.Tensor, *, batch_size: int, grad_accum: int, seed: int):
        self.tokens, self.labels = tokens, labels
        self.batch_size, self.grad_accum, self.seed = batch_size, grad_accum, seed
        self.steps_per_epoch = max(1, tokens.shape[0] // batch_size)

    def __call__(self, step: int, micro: int) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, i = divmod(step * self.grad_accum + micro, self.steps_per_epoch)
        order = torch.randperm(self.tokens.shape[0], generator=torch.Generator().manual_seed(self.seed * 7919 + epoch))
        idx = order[i * self.batch_size : (i + 1) * self.batch_size]
        return self.tokens[idx], self.labels[idx]


def train_on_tokens(model: torch.nn.Module, batch_loss, encoder, train, data: ImageData, out_dir: str | Path, *,
                    num_images: int, batch_size: int, resume: bool, progress: bool, description: str):
    """Train `model` (already initialised) through the shared loop on the cached tokens of `num_images` training
    images: `batch_loss(tokens [B, L], labels [B]) -> scalar`; `encoder.img_to_idx` tokenizes (see
    `load_or_make_token_cache`). Returns the loop's TrainResult."""
    import math

    from ardistill.training.loop import train_loop

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokens, labels = load_or_make_token_cache(encoder, data, num_images, out_dir / "tokens.safetensors", progress)
    get_batch = EpochBatches(tokens, labels, batch_size=batch_size, grad_accum=train.grad_accum, seed=train.seed)

    def loss_fn(batch, step: int):
        loss = batch_loss(*batch)
        return loss, {"ppl": math.exp(min(20.0, loss.item()))}

    return train_loop(model=model, loss_fn=loss_fn, get_batch=get_batch, cfg=train, out_dir=out_dir, resume=resume,
                      progress=progress, description=description)


__all__ = ["ImageData", "tokenize_dataset", "load_or_make_token_cache", "EpochBatches", "train_on_tokens"]
