"""The runtime floor: a converted model streams, exports and plays without the converter.

A fresh process blocks every import of ``streamify.convert`` (a meta-path finder that raises), then streams a
pickled converted model through ``streamify.runtime``, writes its nn~ file with ``streamify.export`` and plays
that file with ``streamify.host`` (``floor_child.py``). An import of the converter anywhere on that path, at
import time or at run time, fails the test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

import streamify
from helpers import small_codec
from streamify import convert

CHILD = Path(__file__).resolve().parent / "floor_child.py"
SOURCE = Path(streamify.__file__).resolve().parent.parent  # the src/ folder of the package under test


def test_a_converted_model_streams_exports_and_plays_without_the_converter(tmp_path):
    model = small_codec()
    stream = convert(model, torch.randn(1, 1, 64))
    x = torch.randn(1, 1, 960)
    with torch.no_grad():
        offline = model(x)
    torch.save(stream, tmp_path / "stream.pt")
    torch.save(x, tmp_path / "signal.pt")
    torch.save(offline, tmp_path / "offline.pt")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SOURCE), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run(
        [sys.executable, str(CHILD), str(tmp_path)], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "streamed without streamify.convert" in done.stdout
