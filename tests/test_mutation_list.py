"""The mutation script's mutants still fit the code (docs/testing.md): at least 25 can be planted."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

TOOL = Path(__file__).resolve().parent.parent / "tools" / "mutate.py"


def _mutate():
    spec = importlib.util.spec_from_file_location("streamify_mutate", TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_mutants_can_still_be_planted() -> None:
    mutate = _mutate()
    stale = {m.name: mutate.stale(m) for m in mutate.MUTANTS if mutate.stale(m)}
    assert len(mutate.MUTANTS) - len(stale) >= 25, f"update tools/mutate.py: {stale}"
    assert len({m.name for m in mutate.MUTANTS}) == len(mutate.MUTANTS)
    for mutant in mutate.MUTANTS:
        assert mutant.original != mutant.replacement and mutant.tests, mutant.name
        assert all((TOOL.parent.parent / t).exists() for t in mutant.tests if t.startswith("tests/")), mutant.name
