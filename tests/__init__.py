"""The test suite, a package: `from tests.conftest import ...` then finds this directory, never
a top-level `tests` package that a dependency installs into site-packages (baycomp 1.0.3 does).
"""
