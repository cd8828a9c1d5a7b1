"""Small random-init VAR teachers of the toy configs (var-toy-l: drafter/teacher, var-toy-s: refiner)."""

import pytest
import torch

import ardistill
from ardistill.bench.toy_models import ensure_benchable


@pytest.fixture(scope="session")
def toy_pair():
    for name in ("var-toy-l", "var-toy-s"):
        ensure_benchable(name)
    torch.set_num_threads(1)
    return ardistill.load_teacher("var-toy-l", random_init=True), ardistill.load_teacher("var-toy-s", random_init=True)


@pytest.fixture(scope="session")
def toy_teacher(toy_pair):
    return toy_pair[0]
