"""The package's version: one place, read by the package, its exporters and its build (pyproject.toml)."""

__version__ = "0.1.0"
