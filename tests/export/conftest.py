"""Set-up of the export tests.

The plain models of the conversion tests (``tests/convert/plain_models.py``) are imported the
same way as there (``from plain_models import ...``): their directory is put on ``sys.path``.
The ONNX tests need the ``export`` extra (``onnx``, ``onnxruntime``) and skip without it.
"""

from __future__ import annotations

import sys
from pathlib import Path

CONVERT_TESTS = Path(__file__).resolve().parent.parent / "convert"
if str(CONVERT_TESTS) not in sys.path:
    sys.path.append(str(CONVERT_TESTS))
