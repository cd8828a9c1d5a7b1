"""DD2's LlamaGen adapter (`LlamaGenFamily`) and the continuous adaptation that precedes GTS (spec §2).

LlamaGen's GPT reads token ids; DD2's networks read continuous vectors. The adaptation, two stages on the shared loop
(resumable, torchrun data parallel):

1. **fit** (`adapt-fit/`): the token embedding becomes `ContinuousEmbedding` (MLP on the code vector), fitted to the
   embedding rows, mean over codes of ‖mlp(c_v) − emb(v)‖² (full batch over the V codes).
2. **fine-tune** (`adapt/`): the whole adapted GPT is trained to the teacher's next-token distributions on the pool's
   teacher samples, KL(p_teacher ‖ p_adapted) at every position, for the sample's class and for the null class
   (so CFG keeps working) [inferred: the paper fine-tunes with the plain AR loss on ImageNet; on the toy world the
   teacher's own distributions are the exact, cheaper target — decision 18, docs/dd2.md].

The adapted GPT is a sampler in its own right (`adapted_teacher()`: the teacher's sampler, KV cache and all, reading
ids through the codebook and the MLP), measured against the original by the evaluation protocol; it initialises the
DD2 networks' backbone (`ardistill.models.dd2.llamagen.LlamaGenBackbone`), one AR step = one token.

Shapes: B batch, L image tokens, C code dimension (8), V codebook size, D GPT width.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ardistill.methods.dd2.adapter import DD2Family
from ardistill.models.dd2.llamagen import ContinuousEmbedding, llamagen_dd2_net, with_continuous_embedding
from ardistill.models.dd2.net import DD2Net
from ardistill.training.loop import TrainConfig, batch_seed, train_loop


def adaptation_kl(adapted, teacher_gpt, labels: torch.Tensor, tokens: torch.Tensor, null_class: int) -> tuple[torch.Tensor, dict]:
    """KL(p_teacher ‖ p_adapted), mean over the L positions of labels `[B]` and tokens `[B, L]`, each sample read with
    its class and with the null class (`null_class` = num_classes): the loss of the fine-tuning stage."""
    both = torch.cat((labels, torch.full_like(labels, null_class)))
    inputs = tokens[:, :-1].repeat(2, 1)
    with torch.no_grad():
        target = F.log_softmax(teacher_gpt(both, inputs).float(), dim=-1)
    log_q = F.log_softmax(adapted(both, inputs).float(), dim=-1)
    kl = (target.exp() * (target - log_q)).sum(-1).mean()
    agree = (log_q.argmax(-1) == target.argmax(-1)).float().mean()
    return kl, {"kl": float(kl.detach()), "argmax_agree": float(agree)}


class LlamaGenFamily(DD2Family):
    """DD2 adapter for a loaded `LlamaGenTeacher` (arguments: `DD2Family`). `adapt` runs the continuous adaptation;
    until then (or when a saved student is rebuilt) the networks carry a fresh embedding of the given width."""

    needs_adaptation = True

    def __init__(self, teacher, **settings):
        super().__init__(teacher, **settings)
        self.adapted_gpt = None  # set by `adapt`
        self._hidden = 4 * teacher.network.config.dim

    @property
    def embedding_hidden(self) -> int:
        return self._hidden

    def fresh_embedding(self, hidden: int, *, seed: int = 0) -> ContinuousEmbedding:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            emb = ContinuousEmbedding(self.teacher.codebook.detach().float(), self.teacher.network.config.dim, hidden)
        return emb.to(self.device)

    def _network(self, *, head_width: int, head_depth: int, embedding_hidden: int) -> DD2Net:
        gpt = self.adapted_gpt
        if gpt is None or gpt.tok_embeddings.mlp[0].out_features != embedding_hidden:
            gpt = with_continuous_embedding(self.teacher.network, self.fresh_embedding(embedding_hidden))
        return llamagen_dd2_net(gpt, code_scale=self.code_scale, head_width=head_width, head_depth=head_depth)

    # ------------------------------------------------------------------------------------------- adaptation
    def adapt(self, tokens: torch.Tensor, labels: torch.Tensor, settings, out_dir: str | Path, *, resume: bool,
              progress: bool = True) -> dict:
        """Run (or resume) both adaptation stages on teacher samples tokens `[N, L]` / labels `[N]`; `settings`: the
        recipe's `DD2Adaptation`. Sets `adapted_gpt`; returns {"fit_mse", "fit_relative", "kl", "argmax_agree",
        "seconds"}."""
        out = Path(out_dir)
        teacher_gpt = self.teacher.network
        self._hidden = settings.hidden or 4 * teacher_gpt.config.dim
        gpt = with_continuous_embedding(teacher_gpt, self.fresh_embedding(self._hidden, seed=settings.seed)).to(self.device)
        target = teacher_gpt.tok_embeddings.weight.detach().float()  # [V, D]
        V = target.shape[0]
        scale = float(target.square().sum(-1).mean())
        emb = gpt.tok_embeddings

        def fit_loss(ids: torch.Tensor, step: int):
            err = (emb(ids) - target[ids]).square().sum(-1).mean()
            return err, {"relative": float(err.detach()) / scale}

        seconds, report = 0.0, {}
        if settings.fit_steps:
            fit = TrainConfig(steps=settings.fit_steps, lr=settings.fit_lr, warmup_steps=min(50, settings.fit_steps // 10),
                              schedule="cosine", grad_clip=0.0, ckpt_every=settings.ckpt_every, log_every=settings.log_every,
                              seed=settings.seed)
            ids = torch.arange(V, device=self.device)
            r = train_loop(model=emb, loss_fn=fit_loss, get_batch=lambda step, micro: ids, cfg=fit, out_dir=out.parent / f"{out.name}-fit",
                           resume=resume or (out.parent / f"{out.name}-fit" / "checkpoint.pt").is_file(), progress=progress,
                           description="DD2 continuous adaptation (embedding fit)")
            seconds += r.seconds
            fit_mse = r.losses[-1][1] if r.losses else r.last_loss  # a finished run resumed logs no new step
            report.update(fit_mse=fit_mse, fit_relative=fit_mse / scale)
        if settings.steps:
            N, null = tokens.shape[0], self.num_classes

            def batch(step: int, micro: int) -> dict:
                g = torch.Generator().manual_seed(batch_seed("dd2-adapt", settings.seed, step, micro))
                idx = torch.randint(N, (settings.batch_size,), generator=g)
                return {"labels": labels[idx].to(self.device), "tokens": tokens[idx].to(self.device)}

            tune = TrainConfig(steps=settings.steps, lr=settings.lr, warmup_steps=settings.warmup_steps, schedule="cosine",
                               grad_clip=1.0, ckpt_every=settings.ckpt_every, log_every=settings.log_every, seed=settings.seed)
            r = train_loop(model=gpt, loss_fn=lambda b, step: adaptation_kl(gpt, teacher_gpt, b["labels"], b["tokens"], null),
                           get_batch=batch, cfg=tune, out_dir=out, resume=resume or (out / "checkpoint.pt").is_file(),
                           progress=progress, description="DD2 continuous adaptation (AR fine-tuning)")
            seconds += r.seconds
            report["kl"] = r.losses[-1][1] if r.losses else r.last_loss
        self.adapted_gpt = gpt.eval().requires_grad_(False)
        report["seconds"] = seconds
        return report

    def adapted_teacher(self):
        """The adapted GPT as a teacher (the original's tokenizer and default sampling): samples through the
        teacher's sampler, reading ids through codebook + MLP. For measuring what the adaptation costs."""
        from ardistill.teachers.llamagen import LlamaGenTeacher

        if self.adapted_gpt is None:
            raise RuntimeError("adapt() first")
        gpt = with_continuous_embedding(self.adapted_gpt, self.adapted_gpt.tok_embeddings)
        return LlamaGenTeacher(f"{self.teacher.name}-adapted", gpt, self.teacher.tokenizer,
                               default_sampling=self.teacher.default_sampling)


__all__ = ["LlamaGenFamily", "adaptation_kl"]
