"""Recipes: YAML files that fully describe a training or evaluation run.

The built-in recipes are the repository's top-level `recipes/` folder, shipped inside the package as the data
package `ardistill._recipes` (pyproject.toml maps it to `recipes/`) and read through importlib.resources, so a
wheel install has them as well as an editable one. A source checkout on `sys.path` without an install reads its own
`recipes/` folder (the folder an editable install maps the package to anyway).

A recipe is named by its path under the recipes root without `.yaml` (`toy/var-toy-l`, `dd/var-toy-l`), or given as
a path to a YAML file. `$ARDISTILL_RECIPES` names a folder of the user's own recipes, searched before the built-in
ones (`ardistill recipes copy NAME DEST` copies a built-in recipe out for editing).
"""

from __future__ import annotations

import importlib.resources
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from ardistill.errors import ArdistillError, BadArgumentError

try:
    from importlib.resources.abc import Traversable
except ImportError:  # Python 3.10
    from importlib.abc import Traversable

BUILTIN_PACKAGE = "ardistill._recipes"
RECIPES_ENV = "ARDISTILL_RECIPES"


def builtin_root() -> Traversable:
    """The folder of the built-in recipes (a Path unless the package is imported from an archive)."""
    package_dir = Path(__file__).resolve().parent
    checkout = package_dir.parent / "recipes"
    if (checkout / "__init__.py").is_file() and (package_dir.parent / "pyproject.toml").is_file():
        return checkout  # a source checkout: its own recipes, even when another ardistill is installed
    try:
        return importlib.resources.files(BUILTIN_PACKAGE)
    except ModuleNotFoundError:
        raise ArdistillError(f"the built-in recipes ({BUILTIN_PACKAGE}) are missing from this installation of "
                             "ardistill; reinstall it") from None


def user_root() -> Path | None:
    """`$ARDISTILL_RECIPES`, the user's own recipes folder, when set."""
    env = os.environ.get(RECIPES_ENV)
    return Path(env) if env else None


def recipes_root() -> Traversable:
    """Where a recipe name is looked up first: `$ARDISTILL_RECIPES` when set, else the built-in recipes."""
    return user_root() or builtin_root()


def _roots() -> list[tuple[str, Traversable]]:
    user = user_root()
    return ([("user", user)] if user is not None else []) + [("built-in", builtin_root())]


def _child(root: Traversable, name: str) -> Traversable:
    node = root
    for part in Path(name).parts:
        node = node / part
    return node


def resolve_recipe(name_or_path: str | os.PathLike) -> Traversable:
    """A path to a YAML file, or a recipe name (`toy/var-toy-l`, `.yaml` optional) under `$ARDISTILL_RECIPES` or
    the built-in recipes, in that order. Returns the file (a Path for every installed or checked-out package)."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    name = p.as_posix()
    if not p.is_absolute() and ".." not in p.parts:
        # `recipes/dd/x.yaml` (the repository spelling the docs use) names the same recipe as `dd/x`
        names = [name] + ([name.split("/", 1)[1]] if name.startswith("recipes/") else [])
        for _, root in _roots():
            for cand in (c for n in names for c in (n, f"{n}.yaml")):
                node = _child(root, cand)
                if node.is_file():
                    return node
    where = " and ".join(f"under {root}" for _, root in _roots())
    raise ArdistillError(f"recipe {str(name_or_path)!r} not found (looked for the file, {where}; `ardistill recipes` lists them)")


def read_recipe_text(name_or_path: str | os.PathLike) -> str:
    return resolve_recipe(name_or_path).read_text(encoding="utf-8")


def load_recipe(name_or_path: str | os.PathLike) -> dict:
    path = resolve_recipe(name_or_path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ArdistillError(f"{path}: not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise ArdistillError(f"{path}: a recipe must be a mapping at top level")
    data.setdefault("_path", str(path))
    return data


@dataclass(frozen=True)
class RecipeInfo:
    """One recipe as `ardistill recipes` lists it."""

    name: str  # `dd/var-toy-l`: what --recipe accepts
    kind: str  # the YAML's `kind` (dd-student, var-teacher, code-finetune, ...)
    description: str  # the first clause of the YAML's leading comment (see describe)
    source: str  # "built-in" or "user" ($ARDISTILL_RECIPES)
    file: Traversable


def _walk(root: Traversable, prefix: str = ""):
    for node in sorted(root.iterdir(), key=lambda n: n.name):
        if node.is_dir() and not node.name.startswith(("_", ".")):
            yield from _walk(node, f"{prefix}{node.name}/")
        elif node.is_file() and node.name.endswith(".yaml"):
            yield f"{prefix}{node.name[:-5]}", node


def describe(text: str) -> str:
    """One line about a recipe: the first clause of its leading `#` comment block, cut at the first `. `, `: ` or
    `; ` outside brackets and backquotes ("" when the file has no leading comment). A leading `name:` label is dropped."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    words = " ".join(lines).strip() + " "
    clauses, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(words[:-1]):
        if ch == "`":
            quoted = not quoted
        elif not quoted and ch in "([{":
            depth += 1
        elif not quoted and ch in ")]}":
            depth = max(0, depth - 1)
        elif not quoted and depth == 0 and ch in ".:;" and words[i + 1] == " ":
            clauses.append(words[start : i + (ch == ".")].strip())
            start = i + 1
    clauses.append(words[start:].strip())
    clauses = [c for c in clauses if c]
    if len(clauses) > 1 and " " not in clauses[0]:
        clauses = clauses[1:]  # `var-toy-l: the larger built-in VAR teacher ...`
    first = clauses[0] if clauses else ""
    return first[:1].upper() + first[1:]


def list_recipes() -> list[RecipeInfo]:
    """Every recipe by name; a user recipe hides the built-in one of the same name (as resolve_recipe does)."""
    found: dict[str, RecipeInfo] = {}
    for source, root in _roots():
        if not root.is_dir():
            continue
        for name, node in _walk(root):
            if name in found:
                continue
            text = node.read_text(encoding="utf-8")
            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError:
                data = None
            kind = str(data.get("kind", "?")) if isinstance(data, dict) else "(not a recipe)"
            found[name] = RecipeInfo(name, kind, describe(text), source, node)
    return sorted(found.values(), key=lambda r: r.name)


def copy_recipe(name: str, dest: str | os.PathLike, *, force: bool = False) -> Path:
    """Copy recipe `name` to `dest` (a file, or an existing folder to put `<stem>.yaml` in) for editing; refuses to
    overwrite unless `force`. Returns the written file."""
    src = resolve_recipe(name)
    dest = Path(dest)
    if dest.is_dir():
        dest = dest / src.name
    if dest.exists() and not force:
        raise BadArgumentError(f"{dest} exists; pass --force to overwrite it")
    if not dest.parent.is_dir():
        raise BadArgumentError(f"{dest.parent} is not a folder")
    tmp = dest.with_name(f".{dest.name}.tmp")
    try:
        with src.open("rb") as fin, open(tmp, "wb") as fout:
            shutil.copyfileobj(fin, fout)
        os.replace(tmp, dest)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise BadArgumentError(f"cannot write {dest}: {e.strerror or e}") from None
    return dest


def relative_name(path: str | os.PathLike) -> str:
    """`recipes/<name>.yaml` for a built-in recipe file (wherever the package is installed), else the path as given.
    Model cards and reports quote recipes this way, never the trainer's home folder."""
    text = str(path)
    for marker in ("/recipes/", "/_recipes/"):
        if marker in text:
            return "recipes/" + text.rsplit(marker, 1)[1]
    return text
