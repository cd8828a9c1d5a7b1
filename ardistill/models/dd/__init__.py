"""Distilled Decoding students (modules + checkpoint IO only): the VAR student (microsoft/distilled_decoding
VAR/models/dd.py `DD_Model`) and the LlamaGen student (LlamaGen/autoregressive/models/dd.py `DDTransformer`)."""

from ardistill.models.dd.final_layer import FinalLayer
from ardistill.models.dd.llamagen_student import LlamaGenStudent
from ardistill.models.dd.var_student import VARStudent

__all__ = ["FinalLayer", "VARStudent", "LlamaGenStudent"]
