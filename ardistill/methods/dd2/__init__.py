"""Distilled Decoding 2: one-step students by conditional score distillation (spec: shared/specs/dd2.md).

- `score`: the teacher's conditional score / clean-token prediction in closed form from its per-position probabilities.
- `losses`: the generator's CSD loss, the guidance network's FCS loss, noise-level draws, the progressive EMA rate.
- `alternating`: the K-guidance-steps-per-generator-step iteration over any generator / guidance / teacher callables.
- `synthetic`: a known-joint AR teacher and small networks, the method's correctness check (docs/dd2.md).
- `gts`: the Ground-Truth-Score initialisation (spec §3), family-generic over an adapter.
- `var`: the VAR adapter (`VARFamily`): the teacher's sampling distribution on a prefix, network space, the networks,
  the tuned model's Euler sampler, decoding.
- `evaluate`: toy-FID / class accuracy of continuous samples through the evaluation protocol, decoded both ways.
"""

from ardistill.methods.dd2.alternating import DD2Config, DD2Trainer
from ardistill.methods.dd2.losses import csd_generator_loss, fcs_guidance_loss, progressive_ema_rate, sample_t
from ardistill.methods.dd2.score import (
    clean_token_prediction,
    conditional_score,
    log_probs_from_probs,
    mixture_log_density,
    posterior_weights,
    score_from_clean,
    velocity_from_clean,
)

__all__ = [
    "DD2Config", "DD2Trainer", "csd_generator_loss", "fcs_guidance_loss", "progressive_ema_rate", "sample_t",
    "clean_token_prediction", "conditional_score", "log_probs_from_probs", "mixture_log_density", "posterior_weights",
    "score_from_clean", "velocity_from_clean",
]
