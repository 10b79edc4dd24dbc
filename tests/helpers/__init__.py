"""Code the tests share: plain functions and classes, one module per concept, imported as
`tests.helpers.NAME`. Fixtures are in the conftest.py files; no test module imports another.

Every test directory is a package (an `__init__.py`), so pytest puts the repository root on
sys.path and `tests.helpers` and `bench` import the same way from `make test`, from
`python -m pytest tests/cli` and from a single file.
"""
