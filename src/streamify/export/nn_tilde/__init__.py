"""TorchScript files for nn~ (Max/MSP, PureData), one module per job.

* :mod:`.module`: :class:`NnTildeModule`, the file's TorchScript module (nn~'s contract, resets, warm-up);
* :mod:`.codegen`: the module's class for one export, whose methods carry the exported names;
* :mod:`.pipeline`: :func:`export_nn_tilde` (convert, tune, wrap, script, check, write);
* :mod:`.metadata`: the file's JSON metadata (:func:`read_info`, :func:`describe_file`, also for ONNX files).
"""

from streamify.export.nn_tilde.metadata import EXTRA_FILE, describe_file, read_info
from streamify.export.nn_tilde.module import TYPE_BOOL, TYPE_FLOAT, TYPE_INT, TYPE_STR, NnTildeModule
from streamify.export.nn_tilde.pipeline import NN_TILDE_DEFAULT_BUFFER, NN_TILDE_SIZES, export_nn_tilde

__all__ = [
    "EXTRA_FILE",
    "NN_TILDE_DEFAULT_BUFFER",
    "NN_TILDE_SIZES",
    "TYPE_BOOL",
    "TYPE_FLOAT",
    "TYPE_INT",
    "TYPE_STR",
    "NnTildeModule",
    "describe_file",
    "export_nn_tilde",
    "read_info",
]
