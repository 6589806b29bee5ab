"""ONNX export with explicit state, and :class:`OnnxStream`, its runner in ONNX Runtime.

The exported graph is one streaming step as a pure function::

    y, next_state_0, ..., next_state_k = step(x, state_0, ..., state_k)

Every cache, delay line, overlap-add tail, recurrent state and warm-up position of the
streaming model is an input and an output of the graph. Warm-up masking (the frames a
fresh stream emits before the offline signal starts) is computed with tensor ops from
the warm-up positions carried in the state, so that the ONNX model reproduces the
PyTorch stream from the first buffer; the Python counters and shortcuts that the
PyTorch layers use are not baked into the graph. Recurrent layers fed by a delayed
stream skip their warm-up frames per batch item with the ``sequence_lens`` input of
ONNX's LSTM/GRU operators.

How it works: a private copy of the streaming model is *instrumented* (its layers get
instance methods that compute masks with tensor ops and leave state allocation to the
caller); a small module feeds the state tensors in as the layers' buffers, runs one
step and returns the updated buffers; the TorchScript-based ONNX exporter
(``torch.onnx.export(..., dynamo=False)``) traces it. The state layout, its initial
values and the model's timing go into the ONNX metadata (key ``"streamify"``, JSON);
``docs/export.md`` describes the protocol.
"""

from __future__ import annotations

import copy
import io
import json
import math
import types
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn

from streamify._version import __version__
from streamify.convert import StreamingModel
from streamify.export.files import write_atomically
from streamify.export.methods import ConvertedMethod, convert_methods
from streamify.layers.base import StreamingError, StreamingModule
from streamify.layers.recurrent import LSTM, Recurrent

#: metadata key of the ONNX model (``session.get_modelmeta().custom_metadata_map``)
METADATA_KEY = "streamify"
#: ONNX opset of the exported graphs
OPSET = 17
#: max error of ONNX Runtime against the PyTorch stream accepted at export (relative to the peak)
EXPORT_REL_TOL = 1e-4


# ---------------------------------------------------------------------------------------------- instrumentation


def _begin_explicit(self: StreamingModule, x: Tensor) -> None:
    """The state is given by the caller: nothing to allocate, no batch bookkeeping."""


def _mask_input_explicit(self: StreamingModule, x: Tensor) -> Tensor:
    """``_mask_input`` with tensor ops only, on every call (no shortcut on the Python counter)."""
    if not (self.masks_input and self.input_delay > 0):
        return x
    n = x.size(-1)
    position = self.warm_pos.unsqueeze(1) + torch.arange(n, device=x.device).unsqueeze(0)
    x = x.masked_fill((position < self.input_delay).unsqueeze(1), self.pad_value)
    self.warm_pos = torch.clamp(self.warm_pos + n, max=self.input_delay)
    return x


def _mask_output_explicit(self: StreamingModule, y: Tensor) -> Tensor:
    """The root's ``_mask_output`` with tensor ops only."""
    if self.delay <= 0:
        return y
    n = y.size(-1)
    position = self.out_warm_pos.unsqueeze(1) + torch.arange(n, device=y.device).unsqueeze(0)
    y = y.masked_fill((position < self.delay).unsqueeze(1), 0.0)
    self.out_warm_pos = torch.clamp(self.out_warm_pos + n, max=self.delay)
    return y


def _onnx_gate_order(g, weight, hidden: int, order: Sequence[int]):
    """Reorder the gate blocks (rows of ``hidden``) of a PyTorch RNN weight or bias for ONNX."""
    blocks = []
    for k in order:
        start = g.op("Constant", value_t=torch.tensor([k * hidden], dtype=torch.long))
        end = g.op("Constant", value_t=torch.tensor([(k + 1) * hidden], dtype=torch.long))
        axis = g.op("Constant", value_t=torch.tensor([0], dtype=torch.long))
        blocks.append(g.op("Slice", weight, start, end, axis))
    return g.op("Concat", *blocks, axis_i=0)


def _unsqueeze0(g, value):
    return g.op("Unsqueeze", value, g.op("Constant", value_t=torch.tensor([0], dtype=torch.long)))


def _squeeze(g, value, axis: int):
    return g.op("Squeeze", value, g.op("Constant", value_t=torch.tensor([axis], dtype=torch.long)))


def _rnn_symbolic(g, kind: str, x, lengths, h0, c0, w_ih, w_hh, b_ih, b_hh, hidden: int):
    """One ONNX LSTM/GRU layer with per-item ``sequence_lens``; returns (y [T, B, H], h [B, H], c [B, H])."""
    order = [0, 3, 1, 2] if kind == "LSTM" else [1, 0, 2]  # PyTorch ifgo -> ONNX iofc; rzn -> zrh
    w = _unsqueeze0(g, _onnx_gate_order(g, w_ih, hidden, order))
    r = _unsqueeze0(g, _onnx_gate_order(g, w_hh, hidden, order))
    gates = len(order)
    if b_ih is None or b_hh is None or (hasattr(b_ih, "node") and b_ih.node().mustBeNone()):
        b = g.op("Constant", value_t=torch.zeros(1, 2 * gates * hidden))
    else:
        b = _unsqueeze0(
            g,
            g.op(
                "Concat",
                _onnx_gate_order(g, b_ih, hidden, order),
                _onnx_gate_order(g, b_hh, hidden, order),
                axis_i=0,
            ),
        )
    seq_lens = g.op("Cast", lengths, to_i=6)  # int32
    h_init = _unsqueeze0(g, h0)
    if kind == "LSTM":
        y, h, c = g.op("LSTM", x, w, r, b, seq_lens, h_init, _unsqueeze0(g, c0), hidden_size_i=hidden, outputs=3)
        return _squeeze(g, y, 1), _squeeze(g, h, 0), _squeeze(g, c, 0)
    y, h = g.op("GRU", x, w, r, b, seq_lens, h_init, hidden_size_i=hidden, linear_before_reset_i=1, outputs=2)
    return _squeeze(g, y, 1), _squeeze(g, h, 0), c0


def _rnn_eager(kind: str, x, lengths, h0, c0, w_ih, w_hh, b_ih, b_hh):
    """What the ONNX layer computes, in PyTorch: item ``b`` runs over its first ``lengths[b]`` steps only."""
    steps, batch = x.size(0), x.size(1)
    hidden = w_hh.size(1)
    y = x.new_zeros(steps, batch, hidden)
    h_out, c_out = h0.clone(), c0.clone()
    params = [w_ih, w_hh] + ([b_ih, b_hh] if b_ih is not None else [])
    for b in range(batch):
        length = int(lengths[b])
        if length <= 0:
            h_out[b] = 0.0
            c_out[b] = 0.0
            continue
        seq = x[:length, b : b + 1]
        if kind == "LSTM":
            out, h, c = torch.lstm(
                seq, (h0[b : b + 1].unsqueeze(0), c0[b : b + 1].unsqueeze(0)), params, b_ih is not None, 1, 0.0,
                False, False, False,
            )  # fmt: skip
            c_out[b] = c[0, 0]
        else:
            out, h = torch.gru(seq, h0[b : b + 1].unsqueeze(0), params, b_ih is not None, 1, 0.0, False, False, False)
        y[:length, b] = out[:, 0]
        h_out[b] = h[0, 0]
    return y, h_out, c_out


class _LstmLayer(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lengths, h0, c0, w_ih, w_hh, b_ih, b_hh):
        return _rnn_eager("LSTM", x, lengths, h0, c0, w_ih, w_hh, b_ih, b_hh)

    @staticmethod
    def symbolic(g, x, lengths, h0, c0, w_ih, w_hh, b_ih, b_hh):
        hidden = _static_size(w_hh, 1)
        return _rnn_symbolic(g, "LSTM", x, lengths, h0, c0, w_ih, w_hh, b_ih, b_hh, hidden)


class _GruLayer(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lengths, h0, c0, w_ih, w_hh, b_ih, b_hh):
        return _rnn_eager("GRU", x, lengths, h0, c0, w_ih, w_hh, b_ih, b_hh)

    @staticmethod
    def symbolic(g, x, lengths, h0, c0, w_ih, w_hh, b_ih, b_hh):
        hidden = _static_size(w_hh, 1)
        return _rnn_symbolic(g, "GRU", x, lengths, h0, c0, w_ih, w_hh, b_ih, b_hh, hidden)


def _static_size(value, dim: int) -> int:
    sizes = value.type().sizes()
    if sizes is None:
        raise StreamingError("streamify: export_onnx: an RNN weight has no static shape in the traced graph")
    return int(sizes[dim])


def _recurrent_stream_explicit(self: Recurrent, x: Tensor) -> Tensor:
    """``Recurrent.stream`` with the warm-up skip done by ``sequence_lens`` (see :func:`_rnn_symbolic`).

    Item ``b`` skips its first ``skip_b = clamp(input_delay - warm_pos_b, 0, n)`` frames: its
    valid frames are gathered to the front, run for ``n - skip_b`` steps from its state, and
    gathered back behind ``skip_b`` zero frames.
    """
    if self.input_delay <= 0:
        y, hidden, cell = self._run(x, self.hidden, self.cell)
        self.hidden = hidden
        if isinstance(self, LSTM):
            self.cell = cell
        return y
    rnn = self.rnn
    n = x.size(-1)
    steps = torch.arange(n, device=x.device).unsqueeze(0)  # [1, n]
    skip = torch.clamp(torch.clamp(self.input_delay - self.warm_pos, min=0), max=n).unsqueeze(1)  # [batch, 1]
    lengths = (n - skip).squeeze(1)  # [batch]
    front = torch.clamp(steps + skip, max=n - 1)
    seq = torch.gather(x, 2, front.unsqueeze(1).expand(-1, x.size(1), -1)).permute(2, 0, 1)  # [n, batch, ch]
    hiddens: List[Tensor] = []
    cells: List[Tensor] = []
    layer_function = _LstmLayer if isinstance(self, LSTM) else _GruLayer
    for layer in range(self.num_layers):
        biases = (getattr(rnn, f"bias_ih_l{layer}"), getattr(rnn, f"bias_hh_l{layer}")) if rnn.bias else (None, None)
        seq, h, c = layer_function.apply(
            seq,
            lengths,
            self.hidden[:, layer],
            self.cell[:, layer] if isinstance(self, LSTM) else self.hidden[:, layer],
            getattr(rnn, f"weight_ih_l{layer}"),
            getattr(rnn, f"weight_hh_l{layer}"),
            *biases,
        )
        hiddens.append(h)
        cells.append(c)
    y = seq.permute(1, 2, 0)  # [batch, hidden, n]
    back = torch.clamp(steps - skip, min=0)
    y = torch.gather(y, 2, back.unsqueeze(1).expand(-1, y.size(1), -1))
    y = y.masked_fill((steps < skip).unsqueeze(1), 0.0)
    active = (lengths > 0).view(-1, 1, 1)
    self.hidden = torch.where(active, torch.stack(hiddens, 1), self.hidden)
    if isinstance(self, LSTM):
        self.cell = torch.where(active, torch.stack(cells, 1), self.cell)
    self.warm_pos = torch.clamp(self.warm_pos + n, max=self.input_delay)
    return y


def _instrument(model: StreamingModel) -> StreamingModel:
    """A private copy of ``model`` whose layers compute one step from caller-provided state with tensor ops."""
    model = copy.deepcopy(model)
    for module in model.modules():
        if not isinstance(module, StreamingModule):
            continue
        if isinstance(module, Recurrent):
            if getattr(module.rnn, "proj_size", 0):
                raise StreamingError(
                    f"streamify: export_onnx: {module.layer_name} is an LSTM with proj_size, which ONNX's LSTM "
                    "operator lacks; use an LSTM without projection (or a Linear after it)"
                )
            module.stream = types.MethodType(_recurrent_stream_explicit, module)
        module._begin = types.MethodType(_begin_explicit, module)
        module._mask_input = types.MethodType(_mask_input_explicit, module)
        module._mask_output = types.MethodType(_mask_output_explicit, module)
    return model


def _candidates(model: StreamingModel) -> List[Tuple[str, str]]:
    slots = []
    for path, module in model.named_modules():
        if isinstance(module, StreamingModule):
            for buffer in tuple(module._state_buffers) + ("warm_pos", "out_warm_pos"):
                slots.append((path, buffer))
    return slots


def _fresh_state(model: StreamingModel, batch: int, frames: int) -> Dict[Tuple[str, str], Tensor]:
    """The state of every streaming layer of a fresh stream of ``batch`` items (as allocated at its first buffer)."""
    probe = copy.deepcopy(model)
    probe.reset()
    captured: Dict[Tuple[str, str], Tensor] = {}
    for path, module in probe.named_modules():
        if not isinstance(module, StreamingModule):
            continue
        original = module.stream

        def entry(x: Tensor, _module=module, _path=path, _original=original) -> Tensor:
            for buffer in tuple(_module._state_buffers) + ("warm_pos", "out_warm_pos"):
                captured.setdefault((_path, buffer), getattr(_module, buffer).detach().clone())
            return _original(x)

        module.stream = entry  # type: ignore[method-assign]
    with torch.no_grad():
        probe(torch.zeros(batch, model.in_channels, frames, dtype=torch.float32))
    return captured


class _Step(nn.Module):
    """One streaming step as a function of the buffer and the state (traced for ONNX)."""

    def __init__(self, model: StreamingModel, slots: List[Tuple[str, str]]) -> None:
        super().__init__()
        self.model = model
        self.slots = slots
        modules = dict(model.named_modules())
        object.__setattr__(self, "_owners", [modules[path] for path, _ in slots])

    def forward(self, x: Tensor, *state: Tensor) -> Tuple[Tensor, ...]:
        for owner, (_, buffer), value in zip(self._owners, self.slots, state):
            setattr(owner, buffer, value)
        y = self.model.stream(x)
        y = self.model._mask_output(y)
        return (y, *[getattr(owner, buffer) for owner, (_, buffer) in zip(self._owners, self.slots)])


def _used_slots(
    instrumented: StreamingModel, fresh: Dict[Tuple[str, str], Tensor], batch: int, frames: int
) -> List[Tuple[str, str]]:
    """The state entries one step reads and replaces (caches of length 0, unused counters... are left out)."""
    candidates = [slot for slot in _candidates(instrumented) if slot in fresh]
    modules = dict(instrumented.named_modules())
    for path, buffer in candidates:
        setattr(modules[path], buffer, fresh[(path, buffer)].clone())
    before = {slot: getattr(modules[slot[0]], slot[1]) for slot in candidates}
    with torch.no_grad():
        y = instrumented.stream(torch.zeros(batch, instrumented.in_channels, frames))
        instrumented._mask_output(y)
    return [slot for slot in candidates if getattr(modules[slot[0]], slot[1]) is not before[slot]]


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
    slots: List[Tuple[str, str]],
    one: Dict[Tuple[str, str], Tensor],
    two: Dict[Tuple[str, str], Tensor],
    model: StreamingModel,
) -> List[Dict[str, Any]]:
    modules = dict(model.named_modules())
    spec = []
    for index, slot in enumerate(slots):
        a, b = one[slot], two[slot]
        axes = [d for d in range(a.dim()) if a.size(d) != b.size(d)]
        if len(axes) != 1 or b.size(axes[0]) != 2 * a.size(axes[0]):
            raise StreamingError(
                f"streamify: export_onnx: the state {slot[0]}.{slot[1]} (shapes {tuple(a.shape)} at batch 1, "
                f"{tuple(b.shape)} at batch 2) does not grow along one batch axis"
            )
        entry: Dict[str, Any] = {
            "input": f"state_{index}",
            "output": f"next_state_{index}",
            "module": slot[0] or "<root>",
            "buffer": slot[1],
            "layer": modules[slot[0]].layer_name,
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
    """Write an ONNX model of one streaming step with explicit state (see the module docstring).

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
    fresh_one = _fresh_state(stream, 1, trace_frames)
    fresh_two = _fresh_state(stream, 2, trace_frames)
    instrumented = _instrument(stream)
    slots = _used_slots(instrumented, fresh_two, 2, trace_frames)
    spec = _state_spec(slots, fresh_one, fresh_two, stream)
    step = _Step(instrumented, slots).eval()
    info: Dict[str, Any] = {
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
        "buffer_multiple": multiple,
        "buffer_size": buffer_size,
        "input": "x",
        "output": "y",
        "states": spec,
    }
    fixed = buffer_size is not None
    data = _export_bytes(step, converted, spec, fresh_two, slots, trace_frames, dynamic_length=not fixed)
    try:
        _verify(data, info, stream, converted, trace_frames, dynamic_length=not fixed)
    except _LengthMismatch:
        # the graph is right at the traced length only: ship it with that length fixed
        info["buffer_size"] = trace_frames
        data = _export_bytes(step, converted, spec, fresh_two, slots, trace_frames, dynamic_length=False)
        _verify(data, info, stream, converted, trace_frames, dynamic_length=False)
    data = _with_metadata(data, info)
    write_atomically(path, data, "export_onnx")  # whole or not at all: the old file stays on failure
    stream.reset()
    return info


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


class _LengthMismatch(Exception):
    pass


def _export_bytes(
    step: _Step,
    converted: ConvertedMethod,
    spec: List[Dict[str, Any]],
    fresh_two: Dict[Tuple[str, str], Tensor],
    slots: List[Tuple[str, str]],
    frames: int,
    dynamic_length: bool,
) -> bytes:
    x = torch.zeros(2, converted.in_channels, frames)
    state = tuple(fresh_two[slot].clone() for slot in slots)
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


def _require(name: str):
    """Import an optional dependency of the ONNX export, or say how to install it."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise StreamingError(
            f"streamify: the ONNX export needs {name}: pip install 'streamify[export]' (onnx, onnxruntime)"
        ) from error


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


def _verify(
    data: bytes,
    info: Dict[str, Any],
    stream: StreamingModel,
    converted: ConvertedMethod,
    frames: int,
    dynamic_length: bool,
) -> None:
    """ONNX Runtime against the PyTorch stream, from a fresh stream, batch 2, many buffers."""
    runner = OnnxStream(_with_metadata(data, info))
    multiple = int(stream.buffer_multiple)
    sizes = [frames] * 6
    if dynamic_length:
        sizes += [multiple, 3 * multiple, 2 * frames, multiple, 5 * multiple, frames]
    from streamify.export.contract import host_signal

    x = host_signal(converted, sum(sizes), 2, seed=1)
    reference = copy.deepcopy(stream)
    reference.reset()
    fixed_part = 6
    start = 0
    with torch.no_grad():
        expected = []
        for size in sizes:
            expected.append(reference(x[..., start : start + size].contiguous()))
            start += size
        scale = max(float(torch.cat(expected, -1).abs().max()), 1e-6)
        start = 0
        for index, size in enumerate(sizes):
            chunk = x[..., start : start + size].contiguous()
            start += size
            try:
                got = runner(chunk)
            except Exception as error:
                if index >= fixed_part:
                    raise _LengthMismatch() from error
                raise StreamingError(
                    f"streamify: export_onnx: ONNX Runtime fails on the exported step of {info['method']!r}: {error}"
                ) from error
            error = float((got - expected[index]).abs().max()) / scale
            if error > EXPORT_REL_TOL:
                if index >= fixed_part:
                    raise _LengthMismatch()
                raise StreamingError(
                    f"streamify: export_onnx: ONNX Runtime differs from the PyTorch stream of {info['method']!r} at "
                    f"buffer {index} (relative error {error:.3g} > {EXPORT_REL_TOL:g}); please report this model"
                )


# ---------------------------------------------------------------------------------------------- runtime


def read_onnx_info(path: Union[str, Path, bytes]) -> Dict[str, Any]:
    """The ``"streamify"`` metadata of an ONNX model written by :func:`export_onnx`."""
    onnx = _require("onnx")

    proto = onnx.load_from_string(path) if isinstance(path, bytes) else onnx.load(str(path), load_external_data=False)
    for entry in proto.metadata_props:
        if entry.key == METADATA_KEY:
            return json.loads(entry.value)
    raise StreamingError(f"streamify: {path!r:.80} was not written by streamify.export_onnx (no metadata)")


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
        y = outputs[0].numpy()
        return torch.from_numpy(y) if as_torch else y
