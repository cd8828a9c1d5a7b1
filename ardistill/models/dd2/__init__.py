"""Distilled Decoding 2 networks (per family): backbone of the teacher + a light MLP head (docs/dd2.md)."""

from ardistill.models.dd2.var import VARDD2Net, VARGenerator, VARGuidanceNet, as_role, continuous_next_scale_input

__all__ = ["VARDD2Net", "VARGenerator", "VARGuidanceNet", "as_role", "continuous_next_scale_input"]
