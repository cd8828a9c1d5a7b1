"""The shared training loop: loss goes down, resume is exact, NaN stops with the last good checkpoint."""

import pytest
import torch

from ardistill.errors import ArdistillError
from ardistill.training import TrainConfig, train_loop


def make_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))


def get_batch(step, micro):
    g = torch.Generator().manual_seed(1000 * step + micro)
    x = torch.randn(32, 4, generator=g)
    return x, 0.3 * (x @ torch.tensor([[1.0], [-2.0], [0.5], [1.5]]))


def mse(model):
    def loss_fn(batch, step):
        x, y = batch
        loss = torch.nn.functional.mse_loss(model(x), y)
        return loss, {"mse": loss.item()}

    return loss_fn


def test_loss_decreases_and_checkpoint_written(tmp_path):
    model = make_model()
    cfg = TrainConfig(steps=100, lr=1e-2, log_every=5, ckpt_every=20, ema_decay=0.9)
    res = train_loop(model=model, loss_fn=mse(model), get_batch=get_batch, cfg=cfg, out_dir=tmp_path, progress=False)
    assert res.step == 100
    assert res.losses[-1][1] < 0.5 * res.losses[0][1]
    assert (tmp_path / "checkpoint.pt").is_file()


def test_resume_is_exact(tmp_path):
    cfg = TrainConfig(steps=30, lr=1e-2, ckpt_every=10, grad_accum=2, log_every=1)
    full = make_model()
    train_loop(model=full, loss_fn=mse(full), get_batch=get_batch, cfg=cfg, out_dir=tmp_path / "a", progress=False)

    part = make_model()
    short = TrainConfig(**{**cfg.to_dict(), "betas": cfg.betas, "steps": 30})
    # Stop after 20 steps by raising from get_batch (a crash mid-run), then resume.
    def crashing(step, micro):
        if step == 20:
            raise KeyboardInterrupt
        return get_batch(step, micro)

    with pytest.raises(KeyboardInterrupt):
        train_loop(model=part, loss_fn=mse(part), get_batch=crashing, cfg=short, out_dir=tmp_path / "b", progress=False)
    resumed = make_model()
    train_loop(model=resumed, loss_fn=mse(resumed), get_batch=get_batch, cfg=short, out_dir=tmp_path / "b", resume=True, progress=False)
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_training_time_adds_up_across_a_resume(tmp_path):
    """A model card's training time is the whole run's, not the last segment's: the checkpoint carries it."""
    import time

    cfg = TrainConfig(steps=20, lr=1e-2, ckpt_every=10, log_every=5)

    def slow_then_crash(step, micro):
        if step == 10:
            raise KeyboardInterrupt
        time.sleep(0.05)
        return get_batch(step, micro)

    model = make_model()
    with pytest.raises(KeyboardInterrupt):
        train_loop(model=model, loss_fn=mse(model), get_batch=slow_then_crash, cfg=cfg, out_dir=tmp_path, progress=False)
    first = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["seconds"]
    assert first >= 0.5  # ten 50 ms steps before the checkpoint at step 10
    res = train_loop(model=model, loss_fn=mse(model), get_batch=get_batch, cfg=cfg, out_dir=tmp_path, resume=True, progress=False)
    assert res.seconds >= first


def test_a_finished_run_resumed_keeps_its_last_loss(tmp_path):
    """Re-saving a finished run (`--resume`, no further step) must not turn its card's final loss into NaN."""
    cfg = TrainConfig(steps=12, lr=1e-2, ckpt_every=5, log_every=5)
    model = make_model()
    done = train_loop(model=model, loss_fn=mse(model), get_batch=get_batch, cfg=cfg, out_dir=tmp_path, progress=False)
    again = train_loop(model=model, loss_fn=mse(model), get_batch=get_batch, cfg=cfg, out_dir=tmp_path, resume=True,
                       progress=False)
    assert again.step == 12 and again.last_loss == done.last_loss and done.last_loss == done.last_loss  # not NaN


def test_existing_run_needs_resume_flag(tmp_path):
    model = make_model()
    cfg = TrainConfig(steps=2, ckpt_every=1)
    train_loop(model=model, loss_fn=mse(model), get_batch=get_batch, cfg=cfg, out_dir=tmp_path, progress=False)
    with pytest.raises(ArdistillError, match="--resume"):
        train_loop(model=model, loss_fn=mse(model), get_batch=get_batch, cfg=cfg, out_dir=tmp_path, progress=False)


def test_nan_loss_stops_with_last_good_checkpoint(tmp_path):
    model = make_model()

    def loss_fn(batch, step):
        loss, m = mse(model)(batch, step)
        return (loss * float("nan") if step == 7 else loss), m

    cfg = TrainConfig(steps=20, ckpt_every=5)
    with pytest.raises(ArdistillError, match="step 7.*step 5"):
        train_loop(model=model, loss_fn=loss_fn, get_batch=get_batch, cfg=cfg, out_dir=tmp_path, progress=False)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["step"] == 5
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_ema_skips_non_finite_buffers():
    """A VAR-style −inf attention mask is not averaged (−inf − −inf would turn it into NaN)."""
    import torch

    from ardistill.training.loop import EMA

    m = torch.nn.Linear(2, 2)
    m.register_buffer("mask", torch.tensor([0.0, -float("inf")]))
    ema = EMA(m, decay=0.9)
    with torch.no_grad():
        m.weight.add_(1.0)
    ema.update(m, step=100)
    ema.copy_to(m)
    assert "mask" not in ema.shadow
    assert torch.equal(m.mask, torch.tensor([0.0, -float("inf")]))
