"""What a non-editable install gets: the wheel built from this checkout ships the recipes and the package finds them
through importlib.resources, away from the checkout (the user's `pip install ardistill` case)."""

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted(p.relative_to(ROOT / "recipes").as_posix() for p in (ROOT / "recipes").rglob("*.yaml"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel of this checkout (≈ 15 s: setuptools from the test environment, no network, no dependencies)."""
    out = tmp_path_factory.mktemp("wheel")
    # Built from a copy of the sources: an in-tree build would leave build/lib in the checkout, whose stale files
    # (a module deleted since) would go into later wheels.
    src = out / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for name in ("ardistill", "recipes"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(src)],
                   check=True, cwd=out, stdout=subprocess.DEVNULL)
    (whl,) = out.glob("ardistill-*.whl")
    return whl


def test_recipes_are_inside_the_wheel(wheel):
    assert len(RECIPES) >= 10
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        for rel in RECIPES:
            assert f"ardistill/_recipes/{rel}" in names, rel
            assert zf.read(f"ardistill/_recipes/{rel}") == (ROOT / "recipes" / rel).read_bytes()


def test_installed_wheel_resolves_recipes_through_importlib_resources(wheel, tmp_path):
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)  # a wheel's files are what pip puts into site-packages
    away = tmp_path / "elsewhere"
    away.mkdir()
    script = (
        "import importlib.resources, json, ardistill\n"
        "from ardistill.recipes import builtin_root, list_recipes, load_recipe\n"
        "from ardistill.pipelines.distill import recipe_for_teacher\n"
        "print(json.dumps({'package': ardistill.__file__, 'files': str(importlib.resources.files('ardistill._recipes')),\n"
        "    'root': str(builtin_root()), 'dd': recipe_for_teacher('var-toy-l'),\n"
        "    'tokenizer': load_recipe(load_recipe('toy/var-toy-l')['tokenizer_recipe'])['_path'],\n"
        "    'names': [r.name for r in list_recipes()]}))\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ARDISTILL_RECIPES")}
    env["PYTHONPATH"] = str(site)
    done = subprocess.run([sys.executable, "-c", script], cwd=away, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    import json

    got = json.loads(done.stdout.strip().splitlines()[-1])
    recipes = site / "ardistill" / "_recipes"
    assert Path(got["package"]).parent == site / "ardistill"  # the installed copy, not this checkout
    assert Path(got["files"]) == recipes and Path(got["root"]) == recipes
    assert Path(got["dd"]) == recipes / "dd" / "var-toy-l.yaml"
    assert Path(got["tokenizer"]) == recipes / "toy" / "var-tokenizer.yaml"
    assert got["names"] == sorted(r.removesuffix(".yaml") for r in RECIPES)


def _requirements() -> dict[str, str]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        from pip._vendor import tomli as tomllib
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    out = {}
    for dep in deps:
        name = dep.split(";")[0].strip()
        for i, ch in enumerate(name):
            if ch in "<>=!~[ ":
                out[name[:i].lower()] = name[i:].strip()
                break
        else:
            out[name.lower()] = ""
    return out


def test_torch_is_a_range_and_the_tested_build_a_constraint():
    """Installing ardistill must not replace the user's torch: pyproject states a range; the tested build is pinned in
    constraints.txt (torch and torchvision only), which the README's commands and CI install with."""
    from pip._vendor.packaging.specifiers import SpecifierSet

    reqs = _requirements()
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name.strip().lower()] = version.strip()
    assert set(pins) == {"torch", "torchvision"}, pins
    for name in ("torch", "torchvision"):
        spec = SpecifierSet(reqs[name])
        assert "==" not in reqs[name] and any(s.operator == ">=" for s in spec), reqs[name]
        assert pins[name] in spec  # the tested build satisfies the range


def test_readme_setup_commands_and_ci_install_with_the_constraints():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    commands = [line.strip() for line in readme.splitlines() if line.startswith("python3 -m venv .venv")]
    assert len(commands) == 2, commands  # "Set-up: two commands"
    for command in commands:
        assert "pip install -c constraints.txt " in command or "pip install -q -c constraints.txt " in command, command
    (test_command,) = [c for c in commands if "pytest" in c]
    assert test_command in ci.splitlines()  # CI runs the README's test command literally
    installs = [line for line in ci.splitlines() if re.search(r"pip\"? install", line) and not line.lstrip().startswith("#")]
    assert len(installs) >= 2 and all(re.search(r"-c \"?\S*constraints\.txt", line) for line in installs), installs
