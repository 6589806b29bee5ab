"""The path of one buffer (docs/architecture.md, "The path of a buffer"): from the host's call to a conv's
kernel in at most six calls, the buffer validated once.

The frames are counted on the eager path: the Python stack inside ``Conv1d._window`` (the conv kernel),
from ``AnyLengthStream.forward`` down, counting streamify's own functions and the converted graph's generated
code (torch's ``Module.__call__`` plumbing is not a call of streamify's).
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import List

import pytest
import torch

import streamify
from helpers import small_codec
from streamify import convert
from streamify.layers.base import StreamingModule
from streamify.layers.conv import Conv1d
from streamify.runtime import AnyLengthStream

PACKAGE = str(Path(streamify.__file__).resolve().parent)


def _ours(frame: traceback.FrameSummary) -> bool:
    """A frame of streamify's code, or of the graph that fx generated for a converted model."""
    return frame.filename.startswith(PACKAGE) or frame.filename.startswith("<eval_with_key")


@pytest.fixture
def model():
    plain = small_codec()
    return convert(plain, torch.randn(1, 1, 64))


def test_a_buffer_reaches_the_conv_kernel_in_at_most_six_calls_validated_once(model, monkeypatch):
    paths: List[List[str]] = []
    validations: List[str] = []
    kernel = Conv1d._window

    def recording_kernel(self, z):
        stack = [f for f in traceback.extract_stack()[:-1] if _ours(f)]  # [:-1]: this wrapper
        names = [f.name for f in stack]
        start = max(i for i, name in enumerate(names) if name == "forward" and "buffering" in stack[i].filename)
        paths.append(names[start:] + ["_window"])
        return kernel(self, z)

    def counting(validate, label):
        def check(self, x):
            validations.append(label)
            return validate(self, x)

        return check

    monkeypatch.setattr(Conv1d, "_window", recording_kernel)
    monkeypatch.setattr(StreamingModule, "_validate", counting(StreamingModule._validate, "module"))
    monkeypatch.setattr(AnyLengthStream, "_validate", counting(AnyLengthStream._validate, "any length"))
    stream = AnyLengthStream(model)
    assert model.buffer_multiple == 2 and model.ratio == 1
    for n in (3, 3, 5):  # odd lengths: accumulated to multiples of 2, the model runs once per call
        validations.clear()
        paths.clear()
        stream(torch.randn(1, 1, n))
        assert validations == ["any length"], validations
        assert len(paths) == 2, paths  # both convs ran
        for path in paths:
            assert len(path) <= 6, " -> ".join(path)
            assert path[:2] == ["forward", "advance"], path  # AnyLengthStream.forward -> StreamingModel.advance


def test_a_converted_model_called_directly_validates_once(model, monkeypatch):
    validations: List[str] = []
    validate = StreamingModule._validate

    def counting(self, x):
        validations.append(self.layer_name)
        return validate(self, x)

    monkeypatch.setattr(StreamingModule, "_validate", counting)
    model(torch.randn(1, 1, 8))
    assert validations == [model.layer_name]
