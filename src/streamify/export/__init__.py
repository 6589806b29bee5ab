"""Export of streaming models for real-time hosts.

* :func:`export_nn_tilde` writes a TorchScript file that the nn~ external (Max/MSP,
  PureData) loads: one method per exported model method, nn~'s ``METHOD_params``,
  ``get_methods``/``get_attributes``, a ``reset`` attribute, the delays and versions.
* :func:`export_onnx` writes an ONNX model whose inputs and outputs carry the stream
  state explicitly; :class:`OnnxStream` runs it buffer by buffer in ONNX Runtime.

See ``docs/export.md``. The ONNX part needs the ``export`` extra (``onnx``, ``onnxruntime``).
"""

from streamify.export.nn_tilde import describe_file, export_nn_tilde, read_info

__all__ = ["OnnxStream", "describe_file", "export_nn_tilde", "export_onnx", "read_info"]


def __getattr__(name: str):
    # the ONNX side imports onnx and onnxruntime (optional) only when used
    if name in ("export_onnx", "OnnxStream", "read_onnx_info"):
        from streamify.export import onnx_export

        return getattr(onnx_export, name)
    raise AttributeError(f"module 'streamify.export' has no attribute {name!r}")
