"""Set-up of the export tests.

The plain models of the conversion tests (``tests/convert/plain_models.py``) are imported the
same way as there (``from plain_models import ...``): their directory is put on ``sys.path``.
The ONNX tests need the ``export`` extra (``onnx``, ``onnxruntime``) and skip without it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

CONVERT_TESTS = Path(__file__).resolve().parent.parent / "convert"
if str(CONVERT_TESTS) not in sys.path:
    sys.path.append(str(CONVERT_TESTS))


@pytest.fixture
def keep_tuned_tables(monkeypatch):
    """The tuner's whole-call check undoes a choice when timing says so (machine load decides): tests of
    what carries the tuned tables keep them always."""
    import streamify.tuning as tuning

    def keep(model, layers, before, x, pairs, min_gain):
        return tuning.WholeCallCheck(batch=x.size(0), buffer=x.size(-1), before_ms=1.0, tuned_ms=1.0, kept=True)

    monkeypatch.setattr(tuning, "_check_whole_calls", keep)
