"""Distilled Decoding: a deterministic flow-matching map from Gaussian noise to the teacher's tokens."""

from ardistill.methods.dd.flow import FlowMapConfig, flow_map_tokens, time_grid
from ardistill.methods.dd.noise import trajectory_labels, trajectory_noise

__all__ = ["FlowMapConfig", "flow_map_tokens", "time_grid", "trajectory_noise", "trajectory_labels"]
