"""Reference samplers, one module per family (their random-number use and filtering semantics differ)."""
