"""Distilled Decoding: a deterministic flow-matching map from Gaussian noise to the teacher's tokens."""

from ardistill.methods.dd.flow import FlowMapConfig, flow_map_tokens, time_grid

__all__ = ["FlowMapConfig", "flow_map_tokens", "time_grid"]
