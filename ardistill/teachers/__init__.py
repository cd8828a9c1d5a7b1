"""Teachers: a tokenizer + an AR transformer + its reference sampler behind one small protocol."""

from ardistill.teachers.base import SamplingSettings, Teacher

__all__ = ["Teacher", "SamplingSettings"]
