"""A tiny regression trained through the shared loop; run in-process (one rank) or by torchrun (`python ddp_worker.py
OUT STEPS [--resume]`), rank 0 saving {losses, weights} to OUT/result.pt."""

import sys
from pathlib import Path

import torch

from ardistill.training.loop import TrainConfig, train_loop

GLOBAL_BATCH = 8


class Net(torch.nn.Module):
    """An MLP plus an `aux` layer used on even steps only: on odd steps no rank gives it a gradient, and the optimiser
    must skip it as it does in one process (a zero gradient would still move it through Adam's momentum)."""

    def __init__(self):
        super().__init__()
        self.mlp = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
        self.aux = torch.nn.Linear(6, 3)

    def forward(self, x: torch.Tensor, step: int) -> torch.Tensor:
        return self.mlp(x) + (0.1 * self.aux(x) if step % 2 == 0 else 0)


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return Net()


def get_batch(step: int, micro: int) -> dict:
    g = torch.Generator().manual_seed(1000 * step + micro)
    x = torch.randn(GLOBAL_BATCH, 6, generator=g)
    mask = torch.rand(GLOBAL_BATCH, 3, generator=g) < 0.6  # uneven per-rank counts: tests the loss_weight path
    return {"x": x, "y": torch.sin(x[:, :3] * 2), "mask": mask}


def train(out: Path, steps: int, resume: bool = False):
    model = make_model()

    def loss_fn(batch, step):
        err = (model(batch["x"], step) - batch["y"]).square() * batch["mask"]
        count = batch["mask"].sum().clamp_min(1)
        return err.sum() / count, {"loss_weight": float(count)}

    cfg = TrainConfig(steps=steps, lr=3e-2, warmup_steps=2, grad_accum=2, ema_decay=0.9, ckpt_every=2, log_every=1,
                      grad_clip=0.5)
    result = train_loop(model=model, loss_fn=loss_fn, get_batch=get_batch, cfg=cfg, out_dir=out, resume=resume, progress=False)
    return result, {k: v.clone() for k, v in model.state_dict().items()}


if __name__ == "__main__":
    from ardistill import distributed

    torch.set_num_threads(1)
    distributed.init()
    out = Path(sys.argv[1])
    result, weights = train(out, int(sys.argv[2]), resume="--resume" in sys.argv)
    if distributed.is_main():
        torch.save({"losses": result.losses, "weights": weights, "world": distributed.world()}, out / "result.pt")
    distributed.shutdown()
