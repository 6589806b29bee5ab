"""Where a streaming call's time goes: per layer (hook timer), per op (torch.profiler), and the convs'
products alone in call order (what the call would cost if everything but the products were free).
"""

from __future__ import annotations

import statistics
import time
from typing import Callable, Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.measure import noise_signal


def streaming_layers(model: nn.Module) -> List[nn.Module]:
    """The leaf streaming layers of a streamify model, in execution order."""
    graph = getattr(model, "graph", None)
    streams = getattr(graph, "streams", None)
    if streams is not None:
        return list(streams)
    from streamify.layers import StreamingModule

    return [
        m
        for m in model.modules()
        if isinstance(m, StreamingModule) and not any(isinstance(c, StreamingModule) for c in m.children())
    ]


def _prime(model: nn.Module, batch: int, buffer: int) -> None:
    """Stream past the model's warm-up (its delay, in input samples), so that profiled calls are steady-state."""
    samples = int(getattr(model, "delay", 0) * getattr(model, "ratio", 1))
    with torch.inference_mode():
        for i in range(-(-samples // buffer)):
            model(noise_signal(batch, buffer, seed=20 + i))


def _layer_macs(layer: nn.Module, frames_in: int, batch: int) -> Dict[str, int]:
    """Multiply-accumulates a call computes, and those it keeps (a conv may compute frames it then drops)."""
    weight = getattr(layer, "weight", None)
    if weight is None:
        return {"computed": 0, "kept": 0}
    kind = type(layer).__name__
    if kind == "ConvTranspose1d":
        per_frame = weight.size(0) * weight.size(1) * weight.size(2)  # in x (out / groups) x kernel
        return {"computed": batch * frames_in * per_frame, "kept": batch * frames_in * per_frame}
    per_frame = weight.size(0) * weight.size(1) * weight.size(2)  # out x (in / groups) x kernel
    stride = int(getattr(layer, "stride", 1))
    span = int(getattr(layer, "span", weight.size(2)))
    cache = int(getattr(layer, "cache_len", 0))
    computed = max((cache + frames_in - span) // stride + 1, 0)
    kept = frames_in // stride
    return {"computed": batch * computed * per_frame, "kept": batch * kept * per_frame}


def layer_profile(
    model: nn.Module,
    buffer: int,
    batch: int = 1,
    calls: int = 30,
    warmup: int = 5,
    floor: Optional[Dict[str, float]] = None,
) -> Dict[str, object]:
    """Per-layer time of a streamify model's calls (forward hooks with ``perf_counter``).

    Returns the layers (time per call, frames in, multiply-accumulates, weight bytes, floor),
    the call's total time with and without hooks, and the glue: the time spent outside the
    streaming layers (the graph's pointwise ops, adds, splits, validation, output masking).
    """
    layers = streaming_layers(model)
    names = {id(layer): getattr(layer, "layer_name", type(layer).__name__) for layer in layers}
    spent: Dict[int, float] = {id(layer): 0.0 for layer in layers}
    frames: Dict[int, int] = {}
    started: Dict[int, float] = {}
    recording = [False]

    def before(module: nn.Module, inputs) -> None:
        if recording[0]:
            frames[id(module)] = int(inputs[0].size(-1))
            started[id(module)] = time.perf_counter()

    def after(module: nn.Module, inputs, output) -> None:
        if recording[0]:
            spent[id(module)] += time.perf_counter() - started[id(module)]

    signal = noise_signal(batch, buffer * 8, seed=7)
    chunks = [signal[..., i * buffer : (i + 1) * buffer].contiguous() for i in range(8)]
    plain = _timed_calls(model, chunks, warmup, calls)  # plain calls first: the reference total
    handles = []
    for layer in layers:
        handles.append(layer.register_forward_pre_hook(before))
        handles.append(layer.register_forward_hook(after))
    try:
        hooked = _timed_calls(model, chunks, warmup, calls, recording)
    finally:
        recording[0] = False
        for handle in handles:
            handle.remove()
        model.reset()
    rows = [
        _layer_row(layer, names[id(layer)], frames.get(id(layer), 0), spent[id(layer)] / max(calls, 1), batch, floor)
        for layer in layers
    ]
    layer_total = sum(r["ms"] for r in rows)
    hooked_ms = 1e3 * statistics.median(hooked)
    return {
        "buffer": buffer,
        "batch": batch,
        "calls": calls,
        "call_ms": 1e3 * statistics.median(plain),
        "call_ms_with_hooks": hooked_ms,
        "layers_ms": layer_total,
        "glue_ms": max(hooked_ms - layer_total, 0.0),
        "layers": rows,
    }


def _timed_calls(
    model: nn.Module, chunks: List[Tensor], warmup: int, calls: int, recording: Optional[List[bool]] = None
) -> List[float]:
    """Seconds of each of ``calls`` calls of a fresh, primed stream after ``warmup`` untimed ones (chunks cycled);
    ``recording[0]`` is True during the timed calls."""
    times: List[float] = []
    model.reset()
    _prime(model, chunks[0].size(0), chunks[0].size(-1))
    with torch.inference_mode():
        for i in range(warmup + calls):
            if recording is not None:
                recording[0] = i >= warmup
            began = time.perf_counter()
            model(chunks[i % len(chunks)])
            if i >= warmup:
                times.append(time.perf_counter() - began)
    return times


def _layer_row(
    layer: nn.Module, name: str, frames_in: int, seconds: float, batch: int, floor: Optional[Dict[str, float]]
) -> Dict[str, object]:
    """One layer's profile row: time per call, frames in, weight bytes, multiply-accumulates, floor."""
    weight = getattr(layer, "weight", None)
    nbytes = 0 if weight is None else weight.numel() * weight.element_size()
    bias = getattr(layer, "bias", None)
    if isinstance(bias, Tensor):
        nbytes += bias.numel() * bias.element_size()
    macs = _layer_macs(layer, frames_in, batch)
    row = {
        "layer": name,
        "kind": type(layer).__name__,
        "frames_in": frames_in,
        "ms": 1e3 * seconds,
        "weight_bytes": nbytes,
        "macs": macs["kept"],
        "macs_computed": macs["computed"],
    }
    if floor is not None:
        row["floor_ms"] = 1e3 * max(nbytes / floor["bandwidth"], macs["kept"] / floor["macs"])
    return row


def op_profile(
    model: nn.Module, buffer: int, batch: int = 1, calls: int = 10, warmup: int = 5, top: int = 15
) -> Dict[str, object]:
    """torch.profiler's view of a call: aten ops by self CPU time, op count, and the time outside any kernel."""
    from torch.profiler import ProfilerActivity, profile

    signal = noise_signal(batch, buffer * 4, seed=9)
    chunks = [signal[..., i * buffer : (i + 1) * buffer].contiguous() for i in range(4)]
    model.reset()
    _prime(model, batch, buffer)
    with torch.inference_mode():
        for i in range(warmup):
            model(chunks[i % 4])
        began = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for i in range(calls):
                model(chunks[i % 4])
        wall = (time.perf_counter() - began) / calls
    model.reset()
    events = [e for e in prof.key_averages() if e.key.startswith("aten::")]
    # self time of the innermost ops: the sum over all aten ops' self times is the time inside aten
    self_total = sum(e.self_cpu_time_total for e in events) / calls / 1e3
    op_count = sum(e.count for e in events) / calls
    rows = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    return {
        "buffer": buffer,
        "batch": batch,
        "wall_ms_profiled": 1e3 * wall,
        "aten_self_ms": self_total,
        "aten_ops_per_call": op_count,
        "outside_aten_ms": max(1e3 * wall - self_total, 0.0),
        "top_ops": [
            {"op": e.key, "calls_per_call": e.count / calls, "self_ms": e.self_cpu_time_total / calls / 1e3}
            for e in rows
        ],
    }


# ---------------------------------------------------------------------------------------------- the convs' products


def _median_time(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def _layer_inputs(model: nn.Module, layers: List[nn.Module], buffer: int, batch: int) -> Dict[int, Tensor]:
    """The input of each of ``layers`` (by ``id``) in the first call of a fresh stream; the stream is reset after."""
    inputs_of: Dict[int, Tensor] = {}

    def record(module: nn.Module, inputs) -> None:
        inputs_of[id(module)] = inputs[0]

    handles = [layer.register_forward_pre_hook(record) for layer in layers]
    try:
        model.reset()
        with torch.inference_mode():
            model(noise_signal(batch, buffer))
    finally:
        for handle in handles:
            handle.remove()
        model.reset()
    return inputs_of


def _product_steps(layers: List[nn.Module], shapes: Dict[int, Tensor]) -> List[Callable[[], Tensor]]:
    """One closure per conv: its product as the layer would choose it for the rows of its input in ``shapes``
    (or the generic kernel), over the layer's own weights and random inputs of the same shapes."""
    from streamify.layers import Conv1d
    from streamify.layers.conv_kernels import ConvKernel, choose_kernel

    steps = []
    for layer in layers:
        x = shapes.get(id(layer))
        if x is None:
            continue
        if isinstance(layer, Conv1d):
            frames = x.size(-1) // layer.stride
            rows = x.size(0) * frames
            weight = layer.weight.reshape(layer.out_channels, -1)
            z = torch.randn(x.size(0), x.size(1), (frames - 1) * layer.stride + layer.span)  # the windows it uses
        else:
            rows = x.size(0) * x.size(-1)
            weight = layer.weight.reshape(layer.in_channels, -1).t()
            z = torch.randn_like(x)
        choice = choose_kernel(layer.kernel_table, rows, layer.fast_path_rows)
        if choice == ConvKernel.GENERIC.value or layer.groups != 1:
            if isinstance(layer, Conv1d):
                steps.append(
                    lambda z=z, layer=layer: F.conv1d(
                        z, layer.weight, layer.bias, layer.stride, 0, layer.dilation, layer.groups
                    )
                )
            else:
                steps.append(
                    lambda z=z, layer=layer: F.conv_transpose1d(
                        z, layer.weight, None, layer.stride, 0, 0, layer.groups, layer.dilation
                    )
                )
            continue
        cols = torch.randn(rows, weight.size(1))
        bias = layer.bias if isinstance(layer, Conv1d) else None  # transposed convs add theirs after the overlap-add
        steps.append(
            lambda cols=cols, weight=weight, bias=bias, p=choice, layer=layer: layer.matmul.forward(
                cols, weight, bias, p, layer.rows_per_block
            )
        )

    return steps


def products_in_sequence(
    model: nn.Module,
    buffer: int,
    batch: int = 1,
    reps: int = 30,
    compare: Optional[Callable[[Tensor], Tensor]] = None,
) -> Dict[str, float]:
    """The model's conv arithmetic alone: each conv's product, as the layer would choose it, in call order.

    Records the rows each conv computes in one call of ``buffer`` samples, then times the
    sequence of bare products over the layers' own weights (random inputs of the same
    shapes; no caches, no window gathering, no graph, no activations). The weights are read
    in the same order as in a call, so the caches see what they see in the model: this is
    what the call would cost if everything but the BLAS calls were free. With ``compare``
    (e.g. the frozen model), its calls are timed in alternation with the products
    (``call_ms``), so that both figures see the same machine load.
    """
    from streamify.layers import Conv1d, ConvTranspose1d

    layers = [m for m in streaming_layers(model) if isinstance(m, (Conv1d, ConvTranspose1d))]
    steps = _product_steps(layers, _layer_inputs(model, layers, buffer, batch))

    def run() -> None:
        for step in steps:
            step()

    result = {"buffer": buffer, "batch": batch, "layers": len(steps)}
    with torch.inference_mode():
        for _ in range(3):
            run()
        if compare is None:
            result["ms"] = 1e3 * _median_time(run, reps)
            return result
        x = noise_signal(batch, buffer, seed=11)
        model_reset = getattr(compare, "reset", None)
        if model_reset is not None:
            model_reset()
        for _ in range(3):
            compare(x)
        alone: List[float] = []
        calls: List[float] = []
        for _ in range(reps):
            alone.append(_median_time(run, 1))
            calls.append(_median_time(lambda: compare(x), 1))
        if model_reset is not None:
            model_reset()
    result["ms"] = 1e3 * statistics.median(alone)
    result["call_ms"] = 1e3 * statistics.median(calls)
    return result
