"""What a DD student is besides its weights: its teacher, the split points it was trained on and the head split."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class DDStudentConfig:
    """t_list: the training split points T (VAR: teacher scales given as data; LlamaGen: tokens given as data);
    1-step sampling uses t_list[0] = 0, 2-step uses (0, t_list[1]). split: the release's loss_split_t / split_t —
    positions before it take argmax(logits), positions from it on take the continuous head."""

    family: str  # teacher family: "var" | "llamagen"
    teacher: str  # registered teacher name
    t_list: tuple[int, ...] = (0,)
    split: int = 0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["t_list"] = list(self.t_list)
        return d
