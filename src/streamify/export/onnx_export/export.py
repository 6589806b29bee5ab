"""Export of one streaming step with explicit state to ONNX (see the package docstring)."""

from __future__ import annotations

import copy
import io
import json
import math
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from streamify._version import __version__
from streamify.export.files import write_atomically
from streamify.export.methods import ConvertedMethod, convert_methods
from streamify.export.onnx_export import rnn  # noqa: F401 (registers the RNN layers' ONNX nodes)
from streamify.export.onnx_export.runtime import METADATA_KEY, _require
from streamify.export.onnx_export.verify import LengthMismatch, verify
from streamify.export.progress import stage
from streamify.layers.base import StreamingError, StreamingModule
from streamify.layers.recurrent import Recurrent
from streamify.runtime.model import StreamingModel
from streamify.runtime.state import StateSlot, _explicit_step, initial_state, state_layout

#: ONNX opset of the exported graphs
OPSET = 17


def _explicit_copy(model: StreamingModel) -> StreamingModel:
    """A private copy of ``model`` for tracing :func:`streamify.state.step` (no NaN check: it reads values)."""
    model = copy.deepcopy(model)
    for module in model.modules():
        if not isinstance(module, StreamingModule):
            continue
        if isinstance(module, Recurrent) and getattr(module.rnn, "proj_size", 0):
            raise StreamingError(
                f"streamify: export_onnx: {module.layer_name} is an LSTM with proj_size, which ONNX's LSTM "
                "operator lacks; use an LSTM without projection (or a Linear after it)"
            )
        module.check_finite = False
    return model


class _Step(nn.Module):
    """:func:`streamify.state.step` as a module of the buffer and the state tensors that a step replaces (traced).

    ``forward(x, *state) -> (y, *next_state)``, one tensor per slot of ``slots``; the model's other state
    tensors (never read: caches of length 0, unused warm-up positions) keep their values.
    """

    def __init__(self, model: StreamingModel, slots: List[StateSlot]) -> None:
        super().__init__()
        self.model = model
        self.slots = slots
        object.__setattr__(self, "_targets", [(model.get_submodule(s.path), s.buffer) for s in slots])

    def forward(self, x: Tensor, *state: Tensor) -> Tuple[Tensor, ...]:
        y, next_state = _explicit_step(self.model, x, self._targets, list(state))
        return (y, *next_state)


def _used_slots(explicit: StreamingModel, fresh: Dict[str, Tensor], batch: int, frames: int) -> List[StateSlot]:
    """The state entries one step replaces (caches of length 0, unused warm-up positions... are left out).

    Leaves the fresh state in ``explicit``'s buffers, so that the entries left out keep fresh values.
    """
    layout = state_layout(explicit)
    targets = [(explicit.get_submodule(slot.path), slot.buffer) for slot in layout]
    for (module, buffer), slot in zip(targets, layout):
        setattr(module, buffer, fresh[slot.name].clone())
    before = [getattr(module, buffer) for module, buffer in targets]
    marker = explicit.dtype_marker
    with torch.no_grad():
        _, after = _explicit_step(
            explicit, torch.zeros(batch, explicit.in_channels, frames, dtype=marker.dtype), targets, before
        )
    return [slot for slot, old, new in zip(layout, before, after) if new is not old]


def _fill_rule(value: Tensor) -> Dict[str, Any]:
    """How a host initialises a state tensor: one fill value, or the explicit batch-1 values."""
    flat = value.flatten()
    if flat.numel() == 0 or bool((flat == flat[0]).all()):
        fill = float(flat[0]) if flat.numel() else 0.0
        return {"fill": fill if math.isfinite(fill) else str(fill)}
    return {"init": [_json_number(v) for v in value.flatten().tolist()]}


def _json_number(v: float) -> Union[float, str]:
    return v if math.isfinite(v) else str(v)


def _state_spec(
    slots: List[StateSlot], one: Dict[str, Tensor], two: Dict[str, Tensor], model: StreamingModel
) -> List[Dict[str, Any]]:
    spec = []
    for index, slot in enumerate(slots):
        a, b = one[slot.name], two[slot.name]
        axes = [d for d in range(a.dim()) if a.size(d) != b.size(d)]
        if len(axes) != 1 or b.size(axes[0]) != 2 * a.size(axes[0]):
            raise StreamingError(
                f"streamify: export_onnx: the state {slot.name} (shapes {tuple(a.shape)} at batch 1, "
                f"{tuple(b.shape)} at batch 2) does not grow along one batch axis"
            )
        entry: Dict[str, Any] = {
            "input": f"state_{index}",
            "output": f"next_state_{index}",
            "module": slot.path or "<root>",
            "buffer": slot.buffer,
            "layer": model.get_submodule(slot.path).layer_name,
            "dtype": str(a.dtype).replace("torch.", ""),
            "shape": list(a.shape),
            "batch_axis": axes[0],
            "batch_factor": int(a.size(axes[0])),
        }
        entry.update(_fill_rule(a))
        spec.append(entry)
    return spec


def export_onnx(
    model: nn.Module,
    path: Union[str, Path],
    example: Tensor,
    method: str = "forward",
    sample_rate: Optional[int] = None,
    buffer_size: Optional[int] = None,
    example_input: Optional[Tensor] = None,
) -> Dict[str, Any]:
    """Write an ONNX model of one streaming step with explicit state (see the package docstring).

    Args:
        model: a float32 plain PyTorch model (converted with :func:`streamify.convert`), or a
            :class:`streamify.StreamingModel`.
        path: the ``.onnx`` file to write.
        example: the conversion example ``[batch, channels, time]`` (audio, or what ``method`` takes).
        method: the method to export.
        sample_rate: recorded in the metadata.
        buffer_size: fix the buffer length (frames of the method's input); by default the
            length is dynamic (any multiple of the buffer multiple), verified at export.
        example_input: the method's input when it is not the audio ``example`` (``decode``:
            latents); the example is then only used to find it.

    Returns:
        The metadata written into the model (key ``"streamify"``): timing and the state protocol.

    Raises:
        StreamingError: where the model cannot stream or ONNX Runtime does not reproduce the
            PyTorch stream (relative error > 1e-4) from a fresh stream over many buffers.
    """
    where = "export_onnx"
    _require("onnx")
    _require("onnxruntime")
    examples = {method: example_input} if example_input is not None else None
    converted = convert_methods(model, example, (method,), examples, where)[0]
    stream = converted.stream
    stream.reset()
    multiple = int(stream.buffer_multiple)
    if buffer_size is not None and (buffer_size <= 0 or buffer_size % multiple != 0):
        raise StreamingError(
            f"streamify: {where}: buffer_size {buffer_size} is not a positive multiple of the buffer multiple {multiple}"
        )
    trace_frames = buffer_size or multiple * max(1, math.ceil(256 / multiple))
    trace = _Trace(stream, trace_frames)
    info = _onnx_info(converted, method, sample_rate, buffer_size, trace.spec)
    stage(f"tracing one step of {method} into ONNX")
    data = _exported_and_verified(trace, converted, info, dynamic_length=buffer_size is None)
    stage(f"writing {path}")
    write_atomically(path, data, "export_onnx")  # whole or not at all: the old file stays on failure
    stream.reset()
    return info


class _Trace:
    """What tracing one step of ``stream`` needs: a private explicit-state copy wrapped as :class:`_Step`, the
    state slots one step replaces, their fresh values at batch 2 and their spec (the file's state protocol)."""

    def __init__(self, stream: StreamingModel, frames: int) -> None:
        self.frames = frames
        fresh_one = initial_state(stream, 1)
        self.fresh_two = initial_state(stream, 2)
        explicit = _explicit_copy(stream)
        self.slots = _used_slots(explicit, self.fresh_two, 2, frames)
        self.spec = _state_spec(self.slots, fresh_one, self.fresh_two, stream)
        self.step = _Step(explicit, self.slots).eval()


def _onnx_info(
    converted: ConvertedMethod,
    method: str,
    sample_rate: Optional[int],
    buffer_size: Optional[int],
    spec: List[Dict[str, Any]],
) -> Dict[str, Any]:
    """The file's metadata (key ``"streamify"``): versions, timing, the buffer length and the state protocol."""
    stream = converted.stream
    return {
        "format": "streamify ONNX stream step",
        "streamify_version": __version__,
        "torch_version": torch.__version__,
        "method": method,
        "sample_rate": sample_rate,
        "in_channels": converted.in_channels,
        "out_channels": converted.out_channels,
        "ratio": [stream.ratio.numerator, stream.ratio.denominator],
        "in_ratio": converted.in_ratio,
        "out_ratio": converted.out_ratio,
        "delay_frames": converted.delay_frames,
        "delay_samples": converted.delay_samples,
        "buffer_multiple": int(stream.buffer_multiple),
        "buffer_size": buffer_size,
        "input": "x",
        "output": "y",
        "states": spec,
    }


def _exported_and_verified(
    trace: _Trace, converted: ConvertedMethod, info: Dict[str, Any], dynamic_length: bool
) -> bytes:
    """The ONNX file's bytes, with ``info``, once ONNX Runtime reproduced the PyTorch stream; a graph that holds
    at the traced length only is exported again with that length fixed (``info["buffer_size"]`` set to it)."""
    stream, frames = converted.stream, trace.frames
    data = _export_bytes(trace, converted, dynamic_length)
    try:
        stage("checking ONNX Runtime against the PyTorch stream (many buffers, batch 2)")
        verify(_with_metadata(data, info), info, stream, converted, frames, dynamic_length=dynamic_length)
    except LengthMismatch:
        # the graph is right at the traced length only: ship it with that length fixed
        stage(f"the graph holds at {frames} frames only: exporting it with that buffer length fixed")
        info["buffer_size"] = frames
        data = _export_bytes(trace, converted, dynamic_length=False)
        verify(_with_metadata(data, info), info, stream, converted, frames, dynamic_length=False)
    return _with_metadata(data, info)


def _movedim_symbolic(g, self, source, destination):
    """``aten::movedim`` for the ONNX exporter with negative dims normalised.

    The built-in symbolic of torch's TorchScript-based exporter indexes its permutation
    with negative dims as given (``movedim(-1, 0)`` yields an invalid ``Transpose``); the
    converted graphs move time axes with such calls.
    """
    from torch.onnx import symbolic_helper

    rank = symbolic_helper._get_tensor_rank(self)
    if rank is None:
        raise StreamingError("streamify: export_onnx: movedim on a tensor of unknown rank")

    def dims(value) -> List[int]:
        value = symbolic_helper._maybe_get_const(value, "t")
        if isinstance(value, Tensor):
            value = value.view(-1).tolist()
        elif isinstance(value, int):
            value = [value]
        return [int(v) % rank for v in value]

    sources, targets = dims(source), dims(destination)
    perm = [-1] * rank
    for src, dst in zip(sources, targets):
        perm[dst] = src
    rest = [d for d in range(rank) if d not in sources]
    for dst in range(rank):
        if perm[dst] < 0:
            perm[dst] = rest.pop(0)
    return g.op("Transpose", self, perm_i=perm)


def _export_bytes(trace: _Trace, converted: ConvertedMethod, dynamic_length: bool) -> bytes:
    """One step traced into ONNX (batch 2; the buffer length dynamic or fixed at the traced length)."""
    step, spec, frames = trace.step, trace.spec, trace.frames
    x = torch.zeros(2, converted.in_channels, frames)
    state = tuple(trace.fresh_two[slot.name].clone() for slot in trace.slots)
    input_names = ["x"] + [s["input"] for s in spec]
    output_names = ["y"] + [s["output"] for s in spec]
    dynamic_axes: Dict[str, Dict[int, str]] = {
        "x": {0: "batch", 2: "frames"} if dynamic_length else {0: "batch"},
        "y": {0: "batch", 2: "out_frames"} if dynamic_length else {0: "batch"},
    }
    for s in spec:
        axis_name = "batch" if s["batch_factor"] == 1 else f"batch_x{s['batch_factor']}"
        dynamic_axes[s["input"]] = {s["batch_axis"]: axis_name}
        dynamic_axes[s["output"]] = {s["batch_axis"]: axis_name}
    buffer = io.BytesIO()
    torch.onnx.register_custom_op_symbolic("aten::movedim", _movedim_symbolic, OPSET)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer and deprecation warnings: the result is verified instead
            torch.onnx.export(
                step,
                (x, *state),
                buffer,
                dynamo=False,
                input_names=input_names,
                output_names=output_names,
                dynamic_axes=dynamic_axes,
                opset_version=OPSET,
                do_constant_folding=True,
            )
    finally:
        torch.onnx.unregister_custom_op_symbolic("aten::movedim", OPSET)
    return buffer.getvalue()


def _with_metadata(data: bytes, info: Dict[str, Any]) -> bytes:
    onnx = _require("onnx")

    proto = onnx.load_from_string(data)
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = json.dumps(info)
    proto.producer_name = "streamify"
    proto.producer_version = __version__
    proto.doc_string = (
        f"streamify streaming step of {info['method']}: y, next_state_i = step(x, state_i); "
        "state layout and initial values in the metadata 'streamify' (JSON)"
    )
    return proto.SerializeToString()
