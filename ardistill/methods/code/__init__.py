"""Collaborative Decoding (CoDe): a large VAR drafts the coarse scales, a small VAR with the same tokenizer refines
the fine ones (training-free, or after the CoDe fine-tuning)."""

from ardistill.methods.code.sampler import CoDe, check_same_tokenizer

__all__ = ["CoDe", "check_same_tokenizer"]
