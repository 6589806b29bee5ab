"""The examples in the docstrings of the public layers run as written, and every public layer shows its shapes.

Each public layer (what :mod:`streamify.layers` exports, :class:`~streamify.layers.periodic.Periodic`,
:class:`~streamify.runtime.buffering.AnyLengthStream`) has a ``Shape:`` block and an example in its own
docstring; the examples of the modules below are run with :mod:`doctest` (tiny tensors, fast).
"""

from __future__ import annotations

import doctest
import importlib
import inspect

import pytest
import torch
from torch import nn

import streamify
import streamify.layers
from streamify.layers.periodic import Periodic
from streamify.runtime.buffering import AnyLengthStream

#: the modules whose docstring examples CI runs
MODULES = [
    "streamify.runtime.buffering",
    "streamify.convert",
    "streamify.exactness",
    "streamify.layers.base",
    "streamify.layers.containers",
    "streamify.layers.conv",
    "streamify.layers.conv_transpose",
    "streamify.layers.framing",
    "streamify.layers.istft",
    "streamify.layers.overlap_add",
    "streamify.layers.periodic",
    "streamify.layers.pointwise",
    "streamify.layers.recurrent",
    "streamify.layers.resample",
    "streamify.layers.shift",
    "streamify.layers.stft",
    "streamify.layers.time_fold",
    "streamify.layers.timeline",
]

PUBLIC_LAYERS = [
    getattr(streamify.layers, name)
    for name in streamify.layers.__all__
    if inspect.isclass(getattr(streamify.layers, name)) and issubclass(getattr(streamify.layers, name), nn.Module)
] + [Periodic, AnyLengthStream]

PUBLIC_FUNCTIONS = [streamify.convert, streamify.layers.as_streaming, streamify.layers.upsample]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    tests = doctest.DocTestFinder(exclude_empty=True).find(module, name)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    report: list[str] = []
    torch.manual_seed(0)
    for test in tests:
        runner.run(test, out=report.append)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, "".join(report)
    assert results.attempted > 0, f"{name} has no docstring example"


@pytest.mark.parametrize("layer", PUBLIC_LAYERS, ids=lambda layer: layer.__name__)
def test_public_layer_shows_its_shapes_and_an_example(layer):
    doc = inspect.cleandoc(layer.__dict__.get("__doc__") or "")
    assert "\nShape:\n" in doc, f"{layer.__name__}'s docstring has no Shape: block"
    assert "\n>>> " in doc, f"{layer.__name__}'s docstring has no example"


@pytest.mark.parametrize("function", PUBLIC_FUNCTIONS, ids=lambda function: function.__name__)
def test_public_function_has_an_example(function):
    assert "\n>>> " in inspect.cleandoc(function.__doc__ or ""), f"{function.__name__}'s docstring has no example"
