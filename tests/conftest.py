"""Shared pytest set-up.

This directory holds no ``__init__.py``: pytest puts it on ``sys.path`` for this
conftest, so test modules anywhere below can ``import helpers`` (tests/helpers.py).
"""
