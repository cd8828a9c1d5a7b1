"""Imports point down: the import graph of `ardistill/`, read from the source with `ast` (imports inside functions
and under TYPE_CHECKING included), has no cycle and no edge from a lower layer to a higher one.

The layer order is defined here and explained in docs/architecture.md. Within one layer modules may import each other
(the cycle check still applies). `ardistill` itself (the package __init__, the stable public API) sits with `api`.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ardistill"

# Lowest first. Each entry: layer name → the top-level modules / packages of `ardistill` in it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("errors", "configs", "io", "devices", "distributed", "hub", "images", "shards", "recipes",
                    "recipe_schema")),
    ("models", ("models",)),
    ("sampling", ("sampling",)),
    ("registry", ("registry",)),  # names → specs and weight files; knows no family
    ("teachers", ("teachers",)),
    ("zoo", ("zoo",)),  # registers every built-in and official name with its family's loader
    ("data/training/eval", ("data", "training", "eval")),
    ("methods", ("methods",)),
    ("recipe_kinds", ("recipe_kinds",)),
    ("api", ("api", "", "students")),  # "" = the package itself (ardistill/__init__.py); students: the shipped ones
    ("generators", ("generators",)),  # every image generator behind one interface, built with one set of options
    ("bench", ("bench",)),
    ("pipelines", ("pipelines",)),
    ("cli", ("cli", "__main__")),
]

# Upward edges not yet removed, each with why it is still there. Empty is the goal; a new upward edge fails the test.
KNOWN_UPWARD_EDGES: set[tuple[str, str]] = set()


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def import_edges(mods: dict[str, Path]) -> dict[tuple[str, str], int]:
    """(importer, imported) → first line number, for every import of an `ardistill` module anywhere in a file."""
    edges: dict[tuple[str, str], int] = {}
    for name, path in mods.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                # `from pkg import sub` imports the submodule when there is one; else it names something in pkg.
                targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in mods else module for a in node.names]
            else:
                continue
            for target in targets:
                if target != "ardistill" and not target.startswith("ardistill."):
                    continue
                while target not in mods:
                    target = target.rpartition(".")[0]
                if target != name:
                    key = (name, target)
                    edges[key] = min(edges.get(key, node.lineno), node.lineno)
    return edges


def layer_of(module: str) -> int:
    """Rank of `module` in LAYERS: by its first component below `ardistill` ("" for the package itself)."""
    top = module.removeprefix("ardistill").removeprefix(".").partition(".")[0]
    for rank, (_, prefixes) in enumerate(LAYERS):
        if top in prefixes:
            return rank
    raise AssertionError(f"{module} is in no layer: add it to LAYERS in tests/test_layers.py")


def cycles(edges) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    graph = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        found.append(sorted(comp))
    return found


def upward_edges(edges) -> dict[tuple[str, str], int]:
    return {e: line for e, line in edges.items() if layer_of(e[1]) > layer_of(e[0])}


def test_every_module_has_a_layer():
    for name in modules():
        layer_of(name)


def test_no_import_cycles():
    edges = import_edges(modules())
    found = cycles(edges)
    lines = []
    for comp in found:
        inside = sorted((e, line) for e, line in edges.items() if e[0] in comp and e[1] in comp)
        lines.append("cycle: " + " ↔ ".join(comp) + "\n" + "\n".join(f"    {a} → {b} (line {line})" for (a, b), line in inside))
    assert not found, "import cycles in ardistill/:\n" + "\n".join(lines)


def test_imports_point_down():
    up = upward_edges(import_edges(modules()))
    new = {e: line for e, line in up.items() if e not in KNOWN_UPWARD_EDGES}
    names = [n for n, _ in LAYERS]
    msg = "\n".join(f"  {a} (line {line}, layer {names[layer_of(a)]}) → {b} (layer {names[layer_of(b)]})"
                    for (a, b), line in sorted(new.items()))
    assert not new, "imports pointing up the layers (see LAYERS in tests/test_layers.py, docs/architecture.md):\n" + msg


def test_known_upward_edges_still_exist():
    # A removed edge must leave the list, so the list never hides a future one.
    up = upward_edges(import_edges(modules()))
    gone = sorted(KNOWN_UPWARD_EDGES - set(up))
    assert not gone, f"no longer upward (remove from KNOWN_UPWARD_EDGES): {gone}"


def test_checker_sees_function_level_imports_and_cycles(tmp_path):
    # The checker itself: a cycle made only of an import inside a function is found, and so is its upward edge.
    edges = {("ardistill.models.x", "ardistill.api"): 3, ("ardistill.api", "ardistill.models.x"): 1}
    assert cycles(edges) == [["ardistill.api", "ardistill.models.x"]]
    assert set(upward_edges(edges)) == {("ardistill.models.x", "ardistill.api")}


def test_models_never_import_the_registry_or_the_zoo():
    # The rule, spelled out: a family's code gets registered specs passed in, never looks them up.
    bad = sorted(f"{a} → {b} (line {line})" for (a, b), line in import_edges(modules()).items()
                 if a.startswith("ardistill.models") and b in ("ardistill.registry", "ardistill.zoo"))
    assert not bad, "\n".join(bad)


def test_registry_lookups_see_the_zoo_and_import_stays_lazy():
    # The registry no longer imports the zoo: api adds it as a catalogue run on the first lookup. A fresh process that
    # only imports ardistill.registry still finds every name, and `import ardistill` alone does not import the zoo.
    import subprocess
    import sys

    code = ("import sys\nimport ardistill.registry as r\nassert 'ardistill.zoo' not in sys.modules\n"
            "names = {s.name for s in r.list_models()}\nassert {'var-d16', 'llamagen-b', 'dd-var-d16'} <= names, names\n"
            "assert 'ardistill.zoo' in sys.modules\nprint(len(r.checkpoint_guessers()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent, timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) >= 2  # one guesser per family (var, llamagen)


# A method is policy over the step sampler and the Teacher protocol: it never asks which family a teacher is, never
# reaches for a family's modules, and never reads a teacher's execution options (the teacher applies them).
FAMILY_BRANCH = re.compile(
    r"""family\s*[!=]=\s*["']|["'](var|llamagen)["']\s*[!=]=|\.(transformer|gpt|vae|vq)\b(?!\s+import)"""
    r"""|isinstance\([^)]*(VAR|LlamaGen)Teacher"""
    r"""|getattr\(\w+,\s*["'](options|family)["']""")


def methods_family_branches() -> list[str]:
    found = []
    for path in sorted((PACKAGE / "methods").rglob("*.py")):
        for i, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if FAMILY_BRANCH.search(code):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{i}: {line.strip()}")
    return found


def test_methods_never_branch_on_a_family():
    assert not methods_family_branches(), "\n".join(methods_family_branches())


def test_family_branch_pattern_catches_the_old_forms():
    for line in ('if teacher.family == "var":', "gpt = teacher.gpt", "options=getattr(teacher, \"options\", None)",
                 "x = self.teacher.transformer.config", "if family != 'llamagen':"):
        assert FAMILY_BRANCH.search(line), line
    for line in ("teacher.network.config", "config.family", "DDStudentConfig(family=teacher.family)",
                 "if teacher.family != config.family:", "from ardistill.models.var.transformer import VARTransformer"):
        assert not FAMILY_BRANCH.search(line), line
