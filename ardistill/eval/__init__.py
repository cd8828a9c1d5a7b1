"""The shipped evaluator, its torch-fidelity integration, and the one evaluation protocol.

`ardistill.eval.protocol` is how every toy-FID in the project is taken (labels, chunks, seeds, metrics and their
names); `ardistill.eval.fidelity` (imported when metrics are first computed, since torch-fidelity is slow to
import) registers the torch-fidelity feature extractor "ardistill-toy".
"""

from ardistill.eval.evaluator import Evaluator, load_evaluator, save_evaluator
from ardistill.eval.network import EvaluatorConfig, ToyClassifier


def toy_fidelity_metrics(*args, **kwargs) -> dict:
    """See `ardistill.eval.protocol.toy_fidelity_metrics`."""
    from ardistill.eval.protocol import toy_fidelity_metrics as metrics

    return metrics(*args, **kwargs)


__all__ = ["Evaluator", "EvaluatorConfig", "ToyClassifier", "load_evaluator", "save_evaluator", "toy_fidelity_metrics"]
