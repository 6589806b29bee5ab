"""Loading the model a spec names: the one room every command, :mod:`streamify.host` and :mod:`streamify.serve` use.

* :func:`resolve` turns a spec (a built-in name, ``package.module:factory``, a checkpoint, an acids-rave run,
  an exported ``.ts`` / ``.onnx`` / ``.nm`` file, or an ``nn.Module``) into a :class:`Resolved`: what it is,
  the module or the file, its channels, sample rate, whether it already streams;
* :func:`to_stream` converts a resolved PyTorch model (load -> channels -> example -> convert);
* :func:`load_model` and :func:`load_weights` (:mod:`streamify.loading.pytorch`) load the PyTorch kinds.

>>> from streamify.loading import Kind, kind_of
>>> kind_of("demo"), kind_of("model.ts"), kind_of("mymodel:build")
(<Kind.builtin: 'built-in'>, <Kind.torchscript: 'TorchScript'>, <Kind.factory: 'factory'>)
"""

from streamify.loading.pytorch import BUILTIN, factories, load_model, load_weights
from streamify.loading.resolve import (
    EXAMPLE_LENGTH,
    Kind,
    Resolved,
    check_run_options,
    example,
    guess_channels,
    input_refusal,
    inputs_checked,
    kind_of,
    resolve,
    streaming_model,
    to_stream,
)

__all__ = [
    "BUILTIN",
    "EXAMPLE_LENGTH",
    "Kind",
    "Resolved",
    "check_run_options",
    "example",
    "factories",
    "guess_channels",
    "input_refusal",
    "inputs_checked",
    "kind_of",
    "load_model",
    "load_weights",
    "resolve",
    "streaming_model",
    "to_stream",
]
