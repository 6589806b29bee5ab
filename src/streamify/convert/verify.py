"""Verification of a conversion: the result streams exactly what the model computes, or an error.

:func:`verify` runs at the end of :func:`streamify.convert` (``verify=False`` skips it). On a
private copy of the streaming graph, in the model's dtype and in float64 where the model
allows it, it checks two things on a random probe signal:

1. **Fidelity.** The streaming graph run offline (every streaming layer's ``offline``)
   computes what the user's model computes on the probe.
2. **Streaming.** The graph streamed at several buffer schedules (all buffers of
   ``buffer_multiple`` frames; irregular multiples; one whole buffer) equals the graph run
   offline, shifted by the reported delay, from the first frame.

Paddings that read the signal (reflect, replicate, circular) only make the first frames of a
stream differ; in the copy they are switched to zero padding (both offline and streamed), so
that the comparison holds exactly from the first frame. Layers whose start differs otherwise
(linear upsampling, ``count_include_pad=False``) are compared after the output's receptive field.

Tolerances (docs/architecture.md): max abs error 1e-10 in float64 (relative to the peak where it
exceeds 1). A model in float32 (or another dtype) is checked twice: its float64 copy streams to
1e-10, which proves the structure (delays, caches, alignment); then in its own dtype the stream is
judged by the model's own rounding (:func:`streamify.exactness.rounding_bar`): a small multiple of
how far its offline output in that dtype is from its float64 offline output, plus 1e-5 of the peak.
An exact float32 stream of a deep model whose float32 output is itself 1e-3 off float64 is accepted;
an off-by-one frame is not (the float64 check sees it first). Where the graph does not run in
float64, the dtype is judged by the plain relative bar 1e-5.
On a failure, every streaming layer's output is compared the same way, and the error names the
first one in call order that differs, with its delay and the source line it was made from. Only a
failure of the float64 check (or of a float64 model) is reported as a misalignment of streamify's.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from streamify.exactness import ROUNDING_MULTIPLE, compare_streamed, rounding_bar
from streamify.layers.base import StreamingError, StreamingModule

#: max abs error in float64 (relative to the peak where the peak exceeds 1)
FLOAT64_TOL = 1e-10
#: max error relative to the peak in float32 and other dtypes, for a model whose own rounding is not known
RELATIVE_TOL = 1e-5


def tolerance(dtype: torch.dtype, scale: float, own_error: float = 0.0) -> float:
    """The largest error accepted for an output of peak ``scale`` in ``dtype``.

    ``own_error``: the model's own rounding in ``dtype`` (its offline output against float64), which widens
    the bar of dtypes other than float64 (:func:`streamify.exactness.rounding_bar`); 0 where unknown.
    """
    if dtype == torch.float64:
        return FLOAT64_TOL * max(1.0, scale)
    return rounding_bar(own_error, scale)


@dataclass
class _Float64:
    """The graph's float64 copy, the probe in float64 and the copy's offline output: the reference of rounding."""

    graph: nn.Module
    x: Tensor
    offline: Tensor


def schedules(total: int, multiple: int, small: int = 8) -> List[List[int]]:
    """Buffer schedules adding up to ``total`` frames: first ``small`` buffers of ``multiple`` frames then the
    rest at once; irregular multiples of ``multiple``."""
    units = total // multiple
    irregular: List[int] = []
    pattern = (3, 1, 2, 5, 1, 4)
    left, k = units, 0
    while left > 0:
        take = min(left, pattern[k % len(pattern)])
        irregular.append(take * multiple)
        left -= take
        k += 1
    first = min(units - 1, small)
    return [[multiple] * first + [(units - first) * multiple], irregular]


def probe_length(stream: StreamingModule, example_length: int, inexact_start: bool = False) -> int:
    """An input length (a multiple of ``buffer_multiple``): the delay, then half a receptive field or 8 buffers.

    Every layer's cache is then filled and replaced several times by streamed frames that are compared.
    """
    multiple = stream.buffer_multiple
    field = stream.receptive_field if stream.receptive_field > 0 else example_length
    frames = math.ceil(max(stream.delay, 0) * stream.ratio) + max(field // 2, 8 * multiple, 16)
    if inexact_start:  # compared only after the warm-up (a receptive field)
        frames += field
    return max(math.ceil(frames / multiple), 6) * multiple


def _start_inexact_to_exact(graph: nn.Module) -> Tuple[bool, bool]:
    """Switch paddings that read the signal to zero padding.

    Returns whether a padding was switched, and whether a layer with an inexact start remains.
    """
    remains = switched = False
    for module in graph.modules():
        if isinstance(module, StreamingModule):
            switched = module.pad_with_zeros() or switched
            remains = remains or not module.starts_exact()
    return switched, remains


def _set_streaming(graph: nn.Module, streaming: bool) -> None:
    for module in graph.modules():
        if isinstance(module, StreamingModule):
            module.streaming = streaming


def _reset(graph: nn.Module) -> None:
    for layer in graph.streams:
        layer.reset()


class _Recorder:
    """Forward hooks that keep every streaming layer's outputs (concatenated over calls)."""

    def __init__(self, layers: Sequence[nn.Module]) -> None:
        self.outputs: List[List[Tensor]] = [[] for _ in layers]
        self.handles = [layer.register_forward_hook(self._hook(i)) for i, layer in enumerate(layers)]

    def _hook(self, index: int):
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            if isinstance(output, Tensor):
                self.outputs[index].append(output.detach().clone())

        return hook

    def joined(self, index: int) -> Optional[Tensor]:
        parts = self.outputs[index]
        return torch.cat(parts, -1) if parts else None

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


def _probe(example: Tensor, length: int, dtype: torch.dtype) -> Tensor:
    """A random signal ``[batch, channels, length]`` with the example's per-channel mean and spread."""
    generator = torch.Generator().manual_seed(1234)
    x = example.detach().to(torch.float64)
    mean = x.mean(dim=(0, 2), keepdim=True)
    std = x.std(dim=(0, 2), keepdim=True).clamp_min(1e-3) if x.size(-1) > 1 else torch.ones_like(mean)
    noise = torch.randn(example.size(0), example.size(1), length, generator=generator, dtype=torch.float64)
    return (mean + std * noise).to(dtype)


def verify(stream: Any, example: Tensor, sources: Sequence[str]) -> None:
    """Check ``stream`` (a :class:`StreamingModel` just built) against its model; raise if not exact.

    Args:
        stream: the converted model (its ``graph`` and ``original`` are copied, never modified).
        example: the conversion example ``[batch, channels, time]`` (its dtype is the model's).
        sources: the user's source line of each streaming layer of ``stream.graph.streams``.

    Raises:
        StreamingError: naming the first layer (call order) whose streamed output differs from
            its offline output, its delay and source line; or saying that the captured graph does
            not compute what the model computes.
    """
    graph = copy.deepcopy(stream.graph)
    inexact = any(isinstance(m, StreamingModule) and not m.starts_exact() for m in graph.modules())
    dtype = example.dtype
    x = _probe(example, probe_length(stream, example.size(-1), inexact), dtype)
    with torch.no_grad():
        want = stream.original(x)
    if not torch.isfinite(want).all():  # a model that needs signals like its example (e.g. positive)
        x = _tile(example, x.size(-1)).to(dtype)
        with torch.no_grad():
            want = stream.original(x)
    reference = _float64(stream, x) if dtype.is_floating_point and dtype != torch.float64 else None
    offline = _run_offline(graph, x, None)[0]
    # the model's own rounding in its dtype: the graph's offline output against its float64 copy's
    own_error = 0.0
    if reference is not None and offline.shape == reference.offline.shape and offline.numel():
        own_error = (offline.to(torch.float64) - reference.offline).abs().max().item()
    # 1. the graph run offline computes what the model computes (at the model's precision)
    _check_fidelity(offline, x, want, dtype, stream, own_error)
    # 2. streamed, it equals its own offline output shifted by the delay: first in float64, where rounding
    # cannot hide a wrong frame (the structure), then in the model's dtype, judged by the model's own rounding
    if reference is not None:
        _check_streaming(reference.graph, reference.x, reference.offline, torch.float64, stream, sources)
    _check_streaming(graph, x, offline, dtype, stream, sources, own_error, reference)


def _float64(stream: Any, x: Tensor) -> Optional[_Float64]:
    """The graph's float64 copy and its offline output on ``x``; None where the graph does not run in float64."""
    try:
        graph64 = copy.deepcopy(stream.graph).to(torch.float64)
        x64 = x.to(torch.float64)
        offline64 = _run_offline(graph64, x64, None)[0]
    except Exception:
        return None  # e.g. a fixed-dtype helper: the model's dtype is then judged by the plain bar
    if not bool(torch.isfinite(offline64).all()):
        return None
    return _Float64(graph64, x64, offline64)


def _tile(example: Tensor, length: int) -> Tensor:
    parts, total = [], 0
    flip = False
    while total < length:
        parts.append(example.flip(-1) if flip else example)
        total += example.size(-1)
        flip = not flip
    return torch.cat(parts, -1)[..., :length].contiguous()


def _check_fidelity(
    got: Tensor, x: Tensor, want: Tensor, dtype: torch.dtype, stream: Any, own_error: float = 0.0
) -> None:
    """Check the graph's offline output ``got`` on ``x`` against the model's output ``want``.

    ``own_error``: the model's own rounding in ``dtype`` (see :func:`tolerance`)."""
    if got.shape != want.shape or not _close(got, want, dtype, own_error):
        detail = (
            f"shape {tuple(got.shape)} instead of {tuple(want.shape)}"
            if got.shape != want.shape
            else f"max error {(got - want).abs().max().item():.3e}"
        )
        raise StreamingError(
            f"streamify: convert: verification failed: the converted graph of {stream.layer_name}, run offline on a "
            f"{dtype} probe of {x.size(-1)} frames, does not compute what the model computes ({detail}); a layer "
            "was taken for another it resembles. Report the model, or teach the converter the layer with "
            "streamify.register"
        )


def _close(got: Tensor, want: Tensor, dtype: torch.dtype, own_error: float = 0.0) -> bool:
    if got.numel() == 0:
        return True
    error = (got - want).abs().max().item()
    return error <= tolerance(dtype, want.abs().max().item(), own_error)


def _check_streaming(
    graph: nn.Module,
    x: Tensor,
    offline: Tensor,
    dtype: torch.dtype,
    stream: Any,
    sources: Sequence[str],
    own_error: float = 0.0,
    reference: Optional[_Float64] = None,
) -> None:
    """Stream ``x`` through ``graph`` at the schedules of ``dtype`` and compare with ``offline``; raise on a failure.

    ``own_error`` and ``reference`` (a model in a dtype other than float64 whose float64 check passed): the
    model's own rounding, which sets the bar (:func:`tolerance`) and names the layer that exceeds its own.
    """
    switched, inexact_start = _start_inexact_to_exact(graph)
    layers = list(graph.streams)
    want = _run_offline(graph, x, None)[0] if switched else offline
    warmup = 0
    if inexact_start:
        field = stream.receptive_field if stream.receptive_field > 0 else x.size(-1) // 2
        warmup = math.ceil(field / stream.ratio) + 1
    plans = schedules(x.size(-1), stream.buffer_multiple)
    if dtype != stream_dtype(stream):
        plans = plans[1:]  # a float32 model: small buffers in its dtype, irregular ones in the float64 pass
    elif dtype != torch.float64 and dtype.is_floating_point:
        plans = plans[:1]
    for sizes in plans:
        got = _stream(graph, x, sizes)
        comparison = compare_streamed(_finite(got), _finite(want), stream.delay, warmup=warmup)
        bar = tolerance(dtype, comparison.offline_scale, own_error)
        if comparison.compared_frames > 0 and comparison.max_abs_error <= bar:
            continue
        recorder = _Recorder(layers)  # again, keeping every layer's output, to name the culprit
        try:
            _stream(graph, x, sizes)
        finally:
            recorder.close()
        offline_recorder = _run_offline(graph, x, layers)[1]
        failure = _Failure(dtype, sizes, warmup, comparison.max_abs_error, own_error)
        if reference is not None:
            failure.layer_rounding = _layer_rounding(offline_recorder, reference, len(layers))
        raise StreamingError(_diagnose(layers, recorder, offline_recorder, stream, sources, failure))
    _reset(graph)


@dataclass
class _Failure:
    """What failed: the dtype and buffer schedule, the warm-up left out, the error and the model's own rounding."""

    dtype: torch.dtype
    sizes: List[int]
    warmup: int
    error: float
    own_error: float
    layer_rounding: Optional[List[float]] = None  # each layer's offline output against its float64 twin's

    @property
    def rounding_judged(self) -> bool:
        """Whether the float64 check passed before this failure in another dtype (the structure is right)."""
        return self.layer_rounding is not None


def _layer_rounding(offline: _Recorder, reference: _Float64, count: int) -> List[float]:
    """Each streaming layer's own rounding: its offline output in the model's dtype against the float64 copy's."""
    layers64 = list(reference.graph.streams)
    _start_inexact_to_exact(reference.graph)  # as the dtype graph now is: both run with the same paddings
    recorder64 = _run_offline(reference.graph, reference.x, layers64)[1]
    result = []
    for index in range(count):
        got, want = offline.joined(index), recorder64.joined(index)
        same = got is not None and want is not None and got.shape == want.shape and got.numel() > 0
        result.append((got.to(torch.float64) - want).abs().max().item() if same else 0.0)
    return result


def _finite(x: Tensor) -> Tensor:
    """NaN as 0 and infinities as the dtype's extremes, so that frames non-finite in both outputs compare equal."""
    return x if bool(torch.isfinite(x).all()) else torch.nan_to_num(x)


def _run_offline(graph: nn.Module, x: Tensor, layers: Optional[List[nn.Module]]) -> Tuple[Tensor, Any]:
    """The graph's offline output, and with ``layers`` a recorder of their offline outputs."""
    _set_streaming(graph, False)
    recorder = _Recorder(layers) if layers is not None else None
    try:
        with torch.no_grad():
            return graph(x), recorder
    finally:
        if recorder is not None:
            recorder.close()
        _set_streaming(graph, True)


def stream_dtype(stream: Any) -> torch.dtype:
    return stream.dtype_marker.dtype


def _stream(graph: nn.Module, x: Tensor, sizes: Sequence[int]) -> Tensor:
    _reset(graph)
    outputs = []
    start = 0
    with torch.no_grad():
        for size in sizes:
            outputs.append(graph(x[..., start : start + size]))
            start += size
    return torch.cat(outputs, -1)


def _diagnose(
    layers: List[nn.Module],
    streamed: _Recorder,
    offline: _Recorder,
    stream: Any,
    sources: Sequence[str],
    failure: _Failure,
) -> str:
    sizes, dtype = failure.sizes, failure.dtype
    schedule = f"buffers of {sizes[0]} frames" if len(set(sizes)) == 1 else f"buffers of {sizes[:6]}... frames"
    head = (
        f"streamify: convert: verification failed: {stream.layer_name} streamed in {schedule} ({dtype}) differs "
        f"from the model's offline output shifted by its delay {stream.delay} (max error {failure.error:.3e})"
    )
    if failure.rounding_judged:
        return head + _rounding_diagnosis(layers, streamed, offline, stream, sources, failure)
    first = _first_wrong_layer(layers, streamed, offline, failure, stream)
    if first is None:
        if dtype != torch.float64:  # the model does not run in float64: rounding cannot be told from misalignment
            return (
                f"{head}; no single streaming layer differs beyond the {dtype} bar (1e-5 of the peak), and the model "
                "does not run in float64, where a misalignment could be told from rounding. Convert the model in "
                "float64 to check its structure, or pass verify=False at your own risk"
            )
        return (
            f"{head}; no single streaming layer is wrong, so delay lines between branches do not align. This is "
            "a bug of streamify: please report the model"
        )
    return f"{head}. {_layer_sentence(layers, sources, *first)}" + (
        " Its streaming rule is wrong (a registered handler reporting the wrong delay, or a layer whose offline and "
        "streaming computations disagree): fix the handler or the layer, or pass verify=False at your own risk"
    )


def _layer_sentence(layers: List[nn.Module], sources: Sequence[str], index: int, comparison: Any) -> str:
    layer = layers[index]
    source = sources[index] if index < len(sources) else "unknown source"
    error = "no frames to compare" if comparison is None else f"max error {comparison.max_abs_error:.3e}"
    return (
        f"The first layer that differs (call order) is {layer.layer_name} (delay {layer.delay}, input delay "
        f"{layer.input_delay}) made from {source}: its streamed output shifted by {layer.delay} differs from its "
        f"offline output ({error})."
    )


def _rounding_diagnosis(
    layers: List[nn.Module],
    streamed: _Recorder,
    offline: _Recorder,
    stream: Any,
    sources: Sequence[str],
    failure: _Failure,
) -> str:
    """A failure in the model's dtype after its float64 copy streamed exactly: precision, not structure."""
    dtype = failure.dtype
    text = (
        f". Its float64 copy streams exactly (the delays and caches are right), but in {dtype} the stream is further "
        f"from the offline output than {ROUNDING_MULTIPLE:g} x the model's own {dtype} rounding "
        f"({failure.own_error:.3e}: its offline output against float64) plus 1e-5 of the peak, so a layer loses "
        f"precision when it streams in {dtype}."
    )
    first = _first_wrong_layer(layers, streamed, offline, failure, stream)
    if first is not None:
        text += " " + _layer_sentence(layers, sources, *first).replace("that differs", "beyond its own rounding")
    return text + " Stream the model in float64 (convert model.double()), or pass verify=False at your own risk"


def _first_wrong_layer(
    layers: List[nn.Module], streamed: _Recorder, offline: _Recorder, failure: _Failure, stream: Any
) -> Optional[Tuple[int, Any]]:
    for index, layer in enumerate(layers):
        got, want = streamed.joined(index), offline.joined(index)
        if got is None or want is None:
            continue
        layer_warmup = 0
        if failure.warmup:
            ratio = max(layer.ratio * _input_ratio(stream, index), 1e-9)
            layer_warmup = math.ceil(failure.warmup * stream.ratio / ratio)
        comparison = compare_streamed(got, want, layer.delay, warmup=layer_warmup)
        if comparison.compared_frames == 0:
            continue
        own = failure.layer_rounding[index] if failure.layer_rounding is not None else 0.0
        if comparison.max_abs_error > tolerance(failure.dtype, comparison.offline_scale, own):
            return index, comparison
    return None


def _input_ratio(stream: Any, index: int) -> Any:
    ratios: Dict[int, Any] = dict(enumerate(getattr(stream, "input_ratios", [])))
    return ratios.get(index, 1)
