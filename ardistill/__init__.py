"""ardistill — make autoregressive image generators (VAR, LlamaGen) fast.

Python API::

    import ardistill
    teacher = ardistill.load_teacher("var-d16")            # official weights, downloaded from the Hub on first use
    tokens = teacher.sample([207] * 4, cfg=1.5, top_k=900, top_p=0.95, seed=0)   # [4, 680]
    images = teacher.decode(tokens)                         # [4, 3, 256, 256] in [0, 1]
"""

from __future__ import annotations

__version__ = "0.1.0"

from ardistill.api import download, list_models, load_evaluator, load_student, load_teacher
from ardistill.errors import ArdistillError
from ardistill.methods.code import CoDe
from ardistill.teachers.base import SamplingSettings, Teacher

__all__ = ["__version__", "download", "load_teacher", "list_models", "load_evaluator", "load_student", "ArdistillError", "Teacher", "SamplingSettings", "CoDe"]
