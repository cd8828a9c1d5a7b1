"""Test-only CLI entry for torchrun workers: registers the tiny VAR teacher of the trajectory tests and the random-init
toy teacher of the bench tests (each worker is a fresh process, so a registration the test makes in its own process
does not reach it), then runs `ardistill`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "methods" / "dd"))

from trajectory_teachers import tiny_var_spec  # noqa: E402

from ardistill import registry  # noqa: E402

from ardistill.bench.toy_models import ensure_benchable  # noqa: E402

spec = tiny_var_spec()
registry._MODELS[spec.name] = spec
ensure_benchable("var-toy-l")  # the toy teacher `ardistill bench` tests use, random-init

if __name__ == "__main__":
    from ardistill.cli import main

    main(sys.argv[1:])
