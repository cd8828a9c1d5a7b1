"""Acceleration methods built on the model zoo: Distilled Decoding (dd) and Collaborative Decoding (code)."""
