"""Acceleration methods built on the model zoo: Distilled Decoding (dd), Distilled Decoding 2 (dd2) and
Collaborative Decoding (code)."""
