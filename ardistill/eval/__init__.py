"""The shipped evaluator for the procedural world and its torch-fidelity integration.

`ardistill.eval.fidelity` (imported on first use of `toy_fidelity_metrics`, since torch-fidelity is slow to
import) registers the torch-fidelity feature extractor "ardistill-toy".
"""

from ardistill.eval.evaluator import Evaluator, load_evaluator, save_evaluator
from ardistill.eval.network import EvaluatorConfig, ToyClassifier


def toy_fidelity_metrics(*args, **kwargs) -> dict:
    """See `ardistill.eval.fidelity.toy_fidelity_metrics`."""
    from ardistill.eval.fidelity import toy_fidelity_metrics as metrics

    return metrics(*args, **kwargs)


__all__ = ["Evaluator", "EvaluatorConfig", "ToyClassifier", "load_evaluator", "save_evaluator", "toy_fidelity_metrics"]
