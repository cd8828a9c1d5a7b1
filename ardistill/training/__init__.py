"""The one training loop every trainer shares (toy teachers, DD students, CoDe fine-tuning)."""

from ardistill.training.loop import EMA, TrainConfig, TrainResult, train_loop

__all__ = ["EMA", "TrainConfig", "TrainResult", "train_loop"]
