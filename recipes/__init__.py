"""The built-in recipes, installed as the data package `ardistill._recipes` (see setup.py and pyproject.toml);
read them through `ardistill.recipes`, never by path."""
