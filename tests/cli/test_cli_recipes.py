"""`ardistill recipes`: list / show / copy the shipped recipes; $ARDISTILL_RECIPES adds the user's own."""

from pathlib import Path

import pytest

from ardistill.cli import main
from ardistill.recipes import describe, load_recipe

ROOT = Path(__file__).resolve().parents[2]


def run(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


@pytest.fixture(autouse=True)
def _wide(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # rich tables: one row per recipe
    monkeypatch.delenv("ARDISTILL_RECIPES", raising=False)


def test_list_names_every_shipped_recipe_with_kind_and_description(capsys):
    code, out, err = run(["recipes"], capsys)
    assert code == 0, err
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]] for line in out.splitlines() if line.startswith("│")}
    shipped = {p.relative_to(ROOT / "recipes").with_suffix("").as_posix() for p in (ROOT / "recipes").rglob("*.yaml")}
    assert set(rows) == shipped
    assert rows["dd/var-toy-l"] == ["dd-student", "DD student of the built-in var-toy-l"]
    assert rows["toy/var-toy-l"] == ["var-teacher", "The larger built-in VAR teacher (the CoDe drafter; the default DD teacher)."]
    code, out, _ = run(["recipes", "list", "--kind", "code-finetune"], capsys)
    assert code == 0 and "code/var-toy" in out and "dd/var-toy-l" not in out


def test_describe_takes_the_first_clause_of_the_leading_comment():
    assert describe("# var-x: the teacher (a; b). More.\n# next line\nkind: x\n# not leading\n") == "The teacher (a; b)."
    assert describe("# Student of `a: b` here; rest\n") == "Student of `a: b` here"
    assert describe("kind: x\n") == ""


def test_show_prints_the_file_exactly(capsys):
    code, out, _ = run(["recipes", "show", "dd/var-toy-l"], capsys)
    assert code == 0 and out == (ROOT / "recipes" / "dd" / "var-toy-l.yaml").read_text()


def test_copy_refuses_to_overwrite_without_force(tmp_path, capsys):
    dest = tmp_path / "mine.yaml"
    code, _, err = run(["recipes", "copy", "dd/var-toy-l", dest], capsys)
    assert code == 0, err
    assert dest.read_bytes() == (ROOT / "recipes" / "dd" / "var-toy-l.yaml").read_bytes()
    dest.write_text("edited")
    code, _, err = run(["recipes", "copy", "dd/var-toy-l", dest], capsys)
    assert code == 2 and "--force" in err and len(err.strip().splitlines()) == 1 and dest.read_text() == "edited"
    code, _, err = run(["recipes", "copy", "dd/var-toy-l", dest, "--force"], capsys)
    assert code == 0 and load_recipe(dest)["teacher"] == "var-toy-l"
    code, _, err = run(["recipes", "copy", "toy/var-toy-l", tmp_path], capsys)  # into a folder: its file name kept
    assert code == 0 and (tmp_path / "var-toy-l.yaml").is_file()
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("argv, needle", [
    (["recipes", "show", "dd/nope"], "recipe 'dd/nope' not found"),
    (["recipes", "copy", "dd/nope", "x.yaml"], "recipe 'dd/nope' not found"),
    (["recipes", "copy", "dd/var-toy-l", "/nonexistent-dir/x.yaml"], "is not a folder"),
    (["recipes", "list", "--kind", "nope"], "no recipe of kind 'nope'"),
])
def test_user_mistakes_are_one_line(argv, needle, capsys):
    code, _, err = run(argv, capsys)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err


def test_user_recipes_folder_is_searched_first(tmp_path, monkeypatch, capsys):
    (tmp_path / "dd").mkdir()
    (tmp_path / "dd" / "var-toy-l.yaml").write_text("# My own var-toy-l student. Edited.\nkind: dd-student\nteacher: var-toy-l\n")
    (tmp_path / "dd" / "extra.yaml").write_text("kind: dd-student\n")
    monkeypatch.setenv("ARDISTILL_RECIPES", str(tmp_path))
    assert load_recipe("dd/var-toy-l")["_path"] == str(tmp_path / "dd" / "var-toy-l.yaml")
    assert load_recipe("toy/var-toy-l")["kind"] == "var-teacher"  # the built-ins stay reachable
    code, out, _ = run(["recipes"], capsys)
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]] for line in out.splitlines() if line.startswith("│")}
    assert code == 0 and rows["dd/var-toy-l"] == ["dd-student", "user", "My own var-toy-l student."]
    assert rows["dd/extra"][1] == "user" and rows["toy/var-toy-l"][1] == "built-in"


def test_the_repository_spelling_names_the_builtin_recipe(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # away from the checkout, as after `pip install`
    assert load_recipe("recipes/dd/var-toy-l.yaml")["name"] == load_recipe("dd/var-toy-l")["name"] == "dd-var-toy-l"
