"""How much of the noise → token map a DD student has learnt, and how much a position alone allows.

    python benchmarks/dd_token_accuracy.py --student runs/dd-long/llamagen-toy/student \
        --heldout runs/traj/heldout --out benchmarks/results/dd-token-accuracy.json

1. Student: share of tokens its 1-step logits get right (argmax == the teacher's flow-map token), per position, on
   the first `--num` samples of its own training trajectories and of a held-out trajectory set made with the same
   teacher settings and another seed (`ardistill trajectories ... --seed 1`). Train ≈ held-out means the student
   is not memorising; both low means it has not learnt the map.
2. Position bound: a small MLP trained on (ε_k, class) → token k alone, for the positions in `--mlp-positions`
   (held-out accuracy). Position 0 depends on nothing else, so this is how learnable the flow map itself is at that
   position with this many trajectories; at later positions it shows how much the context (earlier tokens) matters.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch import nn

from ardistill.io import atomic_write_json
from ardistill.methods.dd.noise import trajectory_noise
from ardistill.methods.dd.student import load_student
from ardistill.shards import ShardedDataset


def load_trajectories(folder: str | Path, num: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict]:
    """(noise [N, L, C], labels [N], tokens [N, L], meta) of a trajectory dataset (first `num` samples)."""
    ds = ShardedDataset.open(folder)
    data, meta = ds.load_all(), ds.meta
    n = len(data["labels"]) if num is None else min(num, len(data["labels"]))
    noise = trajectory_noise(int(meta["seed"]), data["index"][:n].long(), int(meta["tokens_per_image"]), int(meta["code_dim"]))
    return noise, data["labels"][:n].long(), data["tokens"][:n].long(), meta


@torch.no_grad()
def student_accuracy(student, noise, labels, tokens, batch: int = 128) -> torch.Tensor:
    """Per-position share [L] of argmax(1-step logits) == token."""
    hits = torch.zeros(tokens.shape[1])
    for b in range(0, len(labels), batch):
        lab = labels[b:b + batch]
        _, logits = student.model(lab, noise[b:b + batch], torch.zeros_like(lab))
        hits += (logits.argmax(-1) == tokens[b:b + batch]).float().sum(0)
    return hits / len(labels)


def position_mlp_accuracy(train, heldout, position: int, num_classes: int, vocab: int, *, steps: int, seed: int = 0) -> float:
    """Held-out accuracy of an MLP (ε_position, one-hot class) → token_position."""
    (e, y, t), (he, hy, ht) = [(n[:, position], lab, tok[:, position]) for n, lab, tok in (train, heldout)]
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(e.shape[1] + num_classes, 512), nn.GELU(), nn.Linear(512, 512), nn.GELU(), nn.Linear(512, vocab))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    inputs = lambda eps, lab: torch.cat([eps, nn.functional.one_hot(lab, num_classes).float()], 1)  # noqa: E731
    for _ in range(steps):
        i = torch.randint(len(y), (256,), generator=g)
        loss = nn.functional.cross_entropy(net(inputs(e[i], y[i])), t[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return (net(inputs(he, hy)).argmax(-1) == ht).float().mean().item()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--student", required=True, help="student folder (its trajectories: --train, default <student>/../trajectories)")
    ap.add_argument("--train", help="the student's training trajectories")
    ap.add_argument("--heldout", required=True, help="trajectories of the same teacher settings, another seed")
    ap.add_argument("--num", type=int, default=512, help="samples per set for the student's accuracy")
    ap.add_argument("--mlp-positions", default="0", help="positions for the MLP bound, e.g. 0,30 (empty: skip)")
    ap.add_argument("--mlp-steps", type=int, default=4000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    student = load_student(a.student)
    train_dir = a.train or str(Path(a.student).parent / "trajectories")
    train, heldout = load_trajectories(train_dir), load_trajectories(a.heldout)
    if train[3]["sampling"] != heldout[3]["sampling"] or train[3]["teacher"] != heldout[3]["teacher"]:
        raise SystemExit("the held-out trajectories were made with other teacher settings than the training ones")
    result = {"student": a.student, "train": train_dir, "heldout": a.heldout, "sampling": train[3]["sampling"],
              "num_train_trajectories": len(train[1])}
    for name, (noise, labels, tokens, _) in (("train", train), ("heldout", heldout)):
        acc = student_accuracy(student, noise[:a.num], labels[:a.num], tokens[:a.num])
        eighth = max(1, len(acc) // 8)
        result[f"student_{name}"] = {"mean": acc.mean().item(), "position_0": acc[0].item(),
                                     "by_eighth": [acc[i * eighth:(i + 1) * eighth].mean().item() for i in range(8)]}
    positions = [int(p) for p in a.mlp_positions.split(",") if p.strip()]
    result["mlp_heldout"] = {str(p): position_mlp_accuracy(train[:3], heldout[:3], p, int(train[3]["num_classes"]),
                                                           int(train[3]["vocab_size"]), steps=a.mlp_steps) for p in positions}
    atomic_write_json(Path(a.out), result)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
