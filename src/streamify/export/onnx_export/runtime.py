"""Run an ONNX stream step written by :func:`~streamify.export.onnx_export.export_onnx` in ONNX Runtime.

:class:`OnnxStream` keeps the state between calls; :func:`read_onnx_info` and
:func:`describe_onnx` read the metadata (the state protocol, the timing).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from streamify.layers.base import StreamingError, busy_message

#: metadata key of the ONNX model (``session.get_modelmeta().custom_metadata_map``)
METADATA_KEY = "streamify"


def _require(name: str):
    """Import an optional dependency of the ONNX export, or say how to install it."""
    from streamify.extras import require

    return require(name, "the ONNX export", "export")


def read_onnx_info(path: Union[str, Path, bytes]) -> Dict[str, Any]:
    """The ``"streamify"`` metadata of an ONNX model written by :func:`export_onnx`."""
    onnx = _require("onnx")
    name = "the ONNX model" if isinstance(path, bytes) else str(path)
    if not isinstance(path, bytes) and Path(path).is_file() and Path(path).stat().st_size == 0:
        raise StreamingError(f"streamify: {name} is empty (0 bytes); export the model again with streamify export")
    proto = onnx.load_from_string(path) if isinstance(path, bytes) else onnx.load(str(path), load_external_data=False)
    for entry in proto.metadata_props:
        if entry.key == METADATA_KEY:
            return json.loads(entry.value)
    raise StreamingError(
        f"streamify: {name} was not written by streamify export (no streamify metadata inside); "
        "export the model with streamify export"
    )


def describe_onnx(path: Union[str, Path]):
    """A table of an ONNX stream's timing and state inputs (for ``streamify info model.onnx``)."""
    from rich.table import Table

    info = read_onnx_info(path)
    sample_rate = info.get("sample_rate")
    table = Table(
        title=f"{Path(path).name}: ONNX stream step of {info['method']!r} (streamify {info['streamify_version']})"
    )
    for column in ("state input", "layer", "buffer", "shape (batch 1)", "dtype", "initial value"):
        table.add_column(column)
    for entry in info["states"]:
        initial = str(entry["fill"]) if "fill" in entry else "explicit values (metadata 'init')"
        table.add_row(entry["input"], entry["layer"], entry["buffer"], str(entry["shape"]), entry["dtype"], initial)
    delay = f"{info['delay_samples']} samples"
    if sample_rate:
        delay += f" ({1000.0 * info['delay_samples'] / sample_rate:.2f} ms)"
    length = info.get("buffer_size") or f"any multiple of {info['buffer_multiple']}"
    table.caption = (
        f"x [batch, {info['in_channels']}, n] -> y [batch, {info['out_channels']}, n * {info['ratio'][1]} / "
        f"{info['ratio'][0]}]; n: {length} frames; delay {info['delay_frames']} output frames = {delay}"
    )
    return table


def _initial(entry: Dict[str, Any], batch: int) -> np.ndarray:
    dtype = np.dtype(entry["dtype"])
    shape = list(entry["shape"])
    axis = entry["batch_axis"]
    if "fill" in entry:
        shape[axis] = entry["batch_factor"] * batch
        return np.full(shape, float(entry["fill"]), dtype=dtype)
    one = np.array([float(v) for v in entry["init"]], dtype=dtype).reshape(shape)
    return np.concatenate([one] * batch, axis=axis)


class OnnxStream:
    """Stream buffers through an ONNX model written by :func:`export_onnx`, state kept between calls.

    ``stream(x)`` takes ``[batch, in_channels, n]`` float32 (a NumPy array or a torch tensor,
    returned in kind), ``n`` a multiple of ``buffer_multiple``; ``reset()`` returns to a
    fresh stream, ``reset([i, ...])`` only those batch items. Like the PyTorch model, a
    stream keeps its batch size until reset.

    The state stays in ONNX Runtime between calls: each call binds the previous call's
    ``next_state_i`` outputs (ORT values on the session's device) as its ``state_i``
    inputs, without copying them through NumPy.

    Like a PyTorch stream, an ``OnnxStream`` is one sequence of buffers, not thread-safe: a call that
    starts while another runs (from another thread) raises :class:`StreamingError`. The state is replaced
    only when a run succeeds, so a call that raises leaves the stream usable.
    """

    def __init__(self, path: Union[str, Path, bytes], providers: Optional[Sequence[str]] = None, threads: int = 0):
        ort = _require("onnxruntime")
        self._ort = ort
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        model = path if isinstance(path, bytes) else str(path)
        providers = list(providers or ["CPUExecutionProvider"])
        self.session = ort.InferenceSession(model, options, providers=providers)
        self.device = "cuda" if self.session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"
        metadata = self.session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in metadata:
            raise StreamingError("streamify: OnnxStream: this ONNX model was not written by streamify.export_onnx")
        self.info: Dict[str, Any] = json.loads(metadata[METADATA_KEY])
        self.states_spec: List[Dict[str, Any]] = self.info["states"]
        self._state: Optional[List[Any]] = None  # OrtValues
        self.batch = 0
        self._busy = False  # the thread guard: True while a call runs

    @property
    def delay(self) -> int:
        return int(self.info["delay_frames"])

    @property
    def buffer_multiple(self) -> int:
        return int(self.info["buffer_multiple"])

    @property
    def in_channels(self) -> int:
        return int(self.info["in_channels"])

    @property
    def out_channels(self) -> int:
        return int(self.info["out_channels"])

    def initial_state(self, batch: int) -> Dict[str, np.ndarray]:
        """The state inputs of a fresh stream of ``batch`` items."""
        return {entry["input"]: _initial(entry, batch) for entry in self.states_spec}

    def state(self) -> Dict[str, np.ndarray]:
        """A copy of the current state (empty before the first buffer of a stream)."""
        if self._state is None:
            return {}
        return {entry["input"]: value.numpy().copy() for entry, value in zip(self.states_spec, self._state)}

    def _to_ort(self, array: np.ndarray):
        return self._ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array), self.device, 0)

    def reset(self, indices: Optional[Sequence[int]] = None) -> None:
        """Back to a fresh stream: all of it, or only batch items ``indices``."""
        if indices is None or self._state is None:
            self._state = None
            self.batch = 0
            return
        for i in indices:
            if i < 0 or i >= self.batch:
                raise StreamingError(
                    f"streamify: OnnxStream: reset index {i} is outside the stream's batch of {self.batch}"
                )
        fresh = [_initial(entry, 1) for entry in self.states_spec]
        for position, (entry, init) in enumerate(zip(self.states_spec, fresh)):
            value = self._state[position].numpy().copy()
            k = entry["batch_factor"]
            axis = entry["batch_axis"]
            for i in indices:
                index = [slice(None)] * value.ndim
                index[axis] = slice(i * k, (i + 1) * k)
                value[tuple(index)] = init
            self._state[position] = self._to_ort(value)

    def __call__(self, x: Union[np.ndarray, Tensor]):
        as_torch = isinstance(x, Tensor)
        array = x.detach().cpu().numpy() if as_torch else np.asarray(x)
        if array.ndim != 3 or array.shape[1] != self.in_channels:
            raise StreamingError(
                f"streamify: OnnxStream: expected a buffer [batch, {self.in_channels}, n], got {tuple(array.shape)}"
            )
        if array.dtype != np.float32:
            raise StreamingError(f"streamify: OnnxStream: expected float32, got {array.dtype}")
        n = array.shape[2]
        fixed = self.info.get("buffer_size")
        if n <= 0 or n % self.buffer_multiple != 0 or (fixed and n != fixed):
            accepted = f"exactly {fixed}" if fixed else f"positive multiples of {self.buffer_multiple}"
            raise StreamingError(
                f"streamify: OnnxStream: buffer length {n} is not accepted; lengths must be {accepted}"
            )
        if self._busy:
            raise StreamingError(busy_message("OnnxStream", sticky=False))
        self._busy = True
        try:
            y = self._run(array)
        finally:
            self._busy = False
        return torch.from_numpy(y) if as_torch else y

    def _run(self, array: np.ndarray) -> np.ndarray:
        """One validated buffer through the session, the guard held; the state advances on success only."""
        batch = array.shape[0]
        if self._state is None:
            self._state = [self._to_ort(_initial(entry, batch)) for entry in self.states_spec]
            self.batch = batch
        elif batch != self.batch:
            raise StreamingError(
                f"streamify: OnnxStream: the batch size changed from {self.batch} to {batch} in the middle of a "
                "stream; call reset() before streaming with another batch size"
            )
        binding = self.session.io_binding()
        binding.bind_cpu_input("x", np.ascontiguousarray(array))
        binding.bind_output("y", "cpu")
        for entry, value in zip(self.states_spec, self._state):
            binding.bind_ortvalue_input(entry["input"], value)
            binding.bind_output(entry["output"], self.device)
        self.session.run_with_iobinding(binding)
        outputs = binding.get_outputs()
        self._state = list(outputs[1:])
        return outputs[0].numpy()
