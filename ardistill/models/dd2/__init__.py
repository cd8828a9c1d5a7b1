"""Distilled Decoding 2 networks: a backbone of the teacher + a light MLP head (`net`), one backbone per family
(`var`; docs/dd2.md)."""

from ardistill.models.dd2.net import DD2Generator, DD2Guidance, DD2Net, DiffusionHead, as_role
from ardistill.models.dd2.var import VARBackbone, continuous_next_scale_input, var_dd2_net

__all__ = ["DD2Net", "DD2Generator", "DD2Guidance", "DiffusionHead", "as_role", "VARBackbone",
           "continuous_next_scale_input", "var_dd2_net"]
