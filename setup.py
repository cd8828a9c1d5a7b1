"""Only what pyproject.toml cannot say: the package list. It is every `ardistill*` package found under ardistill/
plus the data package `ardistill._recipes`, which [tool.setuptools.package-dir] maps to the top-level `recipes/`
folder so that wheels ship the recipes (pyproject's `packages.find` cannot add a package that lives elsewhere)."""

from setuptools import find_packages, setup

setup(packages=find_packages(include=["ardistill", "ardistill.*"]) + ["ardistill._recipes"])
