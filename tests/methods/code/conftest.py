import pytest

from tiny_code_pair import tiny_pair  # noqa: F401  (fixture)
