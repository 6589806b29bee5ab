"""Set-up of the export tests.

The plain models of the conversion tests (``tests/convert/plain_models.py``) are imported the
same way as there (``from plain_models import ...``): their directory is put on ``sys.path``.
The ONNX tests need the ``export`` extra (``onnx``, ``onnxruntime``) and skip without it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

CONVERT_TESTS = Path(__file__).resolve().parent.parent / "convert"
if str(CONVERT_TESTS) not in sys.path:
    sys.path.append(str(CONVERT_TESTS))


@pytest.fixture(autouse=True)
def _one_thread():
    """Tests stream tiny buffers: more torch threads only contend (and slow down shared machines)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
