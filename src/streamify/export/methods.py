"""Conversion of the methods an export ships, with their rates in audio samples.

A real-time host feeds every method at audio rate: nn~ hands a method ``n`` samples
per channel and sends it ``n / in_ratio`` frames, expecting ``n / out_ratio`` frames
back. :func:`convert_methods` converts each method with :func:`streamify.convert` and
derives those two integer ratios from the method's own ratio (model input frames per
output frame) and the rate of what it takes in.
"""

from __future__ import annotations

import copy
import keyword
from dataclasses import dataclass
from fractions import Fraction
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from streamify.export.progress import stage
from streamify.layers.base import StreamingError
from streamify.runtime.model import StreamingModel

#: an example for one method: a tensor, or a tensor and its in_ratio (audio samples per frame)
MethodExample = Union[Tensor, Tuple[Tensor, int]]


@dataclass
class ConvertedMethod:
    """One method of an export: its streaming model and its rates in audio samples per frame."""

    name: str
    stream: StreamingModel
    example: Tensor
    in_ratio: int
    out_ratio: int

    @property
    def in_channels(self) -> int:
        return int(self.stream.in_channels)

    @property
    def out_channels(self) -> int:
        return int(self.stream.out_channels)

    @property
    def delay_frames(self) -> int:
        """Output frames by which the streamed output lags the offline output."""
        return int(self.stream.delay)

    @property
    def delay_samples(self) -> int:
        """The same lag in audio samples (output frames times ``out_ratio``)."""
        return int(self.stream.delay) * self.out_ratio

    @property
    def multiple_samples(self) -> int:
        """Accepted host buffer sizes are multiples of this many audio samples."""
        return int(self.stream.buffer_multiple) * self.in_ratio


def check_float32(model: nn.Module, where: str) -> None:
    """Refuse a model whose floating-point weights are not float32 (real-time hosts compute in float32)."""
    for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
        if tensor.is_floating_point() and tensor.dtype != torch.float32:
            raise StreamingError(
                f"streamify: {where}: the model's {name!r} is {tensor.dtype}; real-time hosts (nn~, ONNX Runtime "
                "audio plugins) compute in float32: export model.float() instead"
            )


def check_method_name(name: str, reserved: Sequence[str], where: str) -> None:
    if not name.isidentifier() or keyword.iskeyword(name):
        raise StreamingError(f"streamify: {where}: method name {name!r} is not a Python identifier")
    if name in reserved or name.startswith("_") or name.endswith("_params"):
        raise StreamingError(
            f"streamify: {where}: method name {name!r} clashes with a name the exported file reserves "
            f"({', '.join(sorted(reserved))}, names starting with '_' or ending with '_params')"
        )


def _ratio_int(value: Fraction, what: str, method: str, where: str) -> int:
    if value.denominator != 1 or value <= 0:
        raise StreamingError(
            f"streamify: {where}: method {method!r}: its {what} is {value} audio samples per frame, not a whole "
            "number; a real-time host exchanges whole frames per sample count (nn~'s METHOD_params are integers)"
        )
    return int(value)


def _accepts(model: nn.Module, method: str, x: Tensor) -> Optional[Tensor]:
    """The method's output on ``x`` in eval mode, or None if it refuses ``x`` (wrong channels, too short...).

    The model's train/eval flags are restored afterwards (batch norms in training mode must
    not learn from the probe).
    """
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            y = getattr(model, method)(x)
    except Exception:
        return None
    finally:
        for module, training in modes:
            module.training = training
    return y if isinstance(y, Tensor) and y.dim() == 3 else None


def convert_methods(
    model: nn.Module,
    example: Tensor,
    methods: Sequence[str],
    examples: Optional[Mapping[str, MethodExample]] = None,
    where: str = "export",
    **convert_options: bool,
) -> List[ConvertedMethod]:
    """Convert each method of ``model`` for a real-time host.

    The example of a method is, in this order: ``examples[name]`` (a tensor, or
    ``(tensor, in_ratio)``); the audio ``example`` if the method accepts it; else the output
    of the first earlier method whose output it accepts (``in_ratio`` is that method's
    ``out_ratio``: ``decode`` takes ``encode``'s latents). Otherwise ``in_ratio`` is the
    smallest that makes ``out_ratio`` whole: 1 for a method whose ratio is whole (audio in),
    256 for a vocoder that makes 256 samples of each input frame.

    A model that is already a :class:`StreamingModel` is used as it is for the one method.
    ``convert_options`` go to :func:`streamify.convert` (``allow_random``, ``verify``).
    """
    methods = [methods] if isinstance(methods, str) else list(methods)
    examples = dict(examples or {})
    _check_request(model, example, methods, examples, where)
    example = example.detach().to(torch.float32)
    if isinstance(model, StreamingModel):
        return [_streaming_model_method(model, example, methods, examples, where)]
    done: List[Tuple[ConvertedMethod, Tensor]] = []
    for name in methods:
        method_example, given_ratio, output = _method_example(model, name, example, examples, done, where)
        stage(f"converting {name} (capture, streaming layers, verification)")
        stream = convert_model(model, method_example, name, **convert_options)
        if given_ratio is None:
            given_ratio = stream.ratio.denominator
        if given_ratio < 1:
            raise StreamingError(f"streamify: {where}: method {name!r}: in_ratio must be >= 1, got {given_ratio}")
        out_ratio = _ratio_int(given_ratio * stream.ratio, "output ratio", name, where)
        converted = ConvertedMethod(name, stream, method_example, given_ratio, out_ratio)
        done.append((converted, output.detach().to(torch.float32)))
    return [c for c, _ in done]


def convert_model(model: nn.Module, example: Tensor, method: str = "forward", **options: object) -> StreamingModel:
    """:func:`streamify.convert`, imported when a model is converted: the rest of the export runs without it."""
    from streamify.convert import convert

    return convert(model, example, method=method, **options)


def _check_request(
    model: nn.Module, example: Tensor, methods: List[str], examples: Mapping[str, MethodExample], where: str
) -> None:
    """Refuse an empty or repeated method list, examples for methods not exported, float64 weights and an
    example that is not ``[batch, channels, time]``."""
    if not methods:
        raise StreamingError(f"streamify: {where}: no method to export")
    if len(set(methods)) != len(methods):
        raise StreamingError(f"streamify: {where}: methods {methods} name a method twice")
    unknown = sorted(set(examples) - set(methods))
    if unknown:
        raise StreamingError(f"streamify: {where}: examples given for methods {unknown} that are not exported")
    check_float32(model, where)
    if example.dim() != 3:
        raise StreamingError(
            f"streamify: {where}: the example must be [batch, channels, time], got {tuple(example.shape)}"
        )


def _streaming_model_method(
    model: StreamingModel, example: Tensor, methods: List[str], examples: Mapping[str, MethodExample], where: str
) -> ConvertedMethod:
    """The one method of a model that streams already, used as it is (a copy)."""
    if len(methods) != 1:
        raise StreamingError(
            f"streamify: {where}: a StreamingModel streams one method; pass the original model to export {methods}"
        )
    model = copy.deepcopy(model)  # the export resets and runs it: the caller's stream stays as it is
    given = examples.get(methods[0])
    in_ratio = int(given[1]) if isinstance(given, tuple) else model.ratio.denominator
    out_ratio = _ratio_int(in_ratio * model.ratio, "output ratio", methods[0], where)
    return ConvertedMethod(methods[0], model, example, in_ratio, out_ratio)


def _method_example(
    model: nn.Module,
    name: str,
    example: Tensor,
    examples: Mapping[str, MethodExample],
    done: List[Tuple[ConvertedMethod, Tensor]],
    where: str,
) -> Tuple[Tensor, Optional[int], Tensor]:
    """The example of method ``name`` (see :func:`convert_methods`), its ``in_ratio`` where the example fixes it
    (else None), and the method's output on it."""
    if not callable(getattr(model, name, None)):
        raise StreamingError(f"streamify: {where}: {type(model).__name__} has no method {name!r}")
    given_ratio: Optional[int] = None
    if name in examples:
        value = examples[name]
        if isinstance(value, tuple):
            method_example, given_ratio = value[0], int(value[1])
        else:
            method_example = value
        method_example = method_example.detach().to(torch.float32)
        output = _accepts(model, name, method_example)
        if output is None:
            raise StreamingError(
                f"streamify: {where}: method {name!r} fails on the example given for it, "
                f"shape {tuple(method_example.shape)}"
            )
        return method_example, given_ratio, output
    output = _accepts(model, name, example)
    if output is not None:
        return example, None, output
    for previous, previous_output in done:
        output = _accepts(model, name, previous_output)
        if output is not None:
            return previous_output, previous.out_ratio, output
    tried = ", ".join(["the audio example"] + [f"the output of {p.name!r}" for p, _ in done])
    raise StreamingError(
        f"streamify: {where}: method {name!r} accepts none of {tried}; pass "
        f"examples={{{name!r}: tensor}} (or (tensor, in_ratio))"
    )


def nn_tilde_sizes(method: ConvertedMethod, where: str, low: int = 256, high: int = 8192) -> List[int]:
    """The nn~ buffer sizes (powers of two from ``low`` to ``high``, audio samples) the method takes.

    Any size that is a whole number of input and output frames is taken: the exported method
    accumulates up to its buffer multiple (see :mod:`streamify.buffering`). Refused (a
    :class:`StreamingError`) when no power of two is, i.e. ``in_ratio`` or ``out_ratio`` is not
    a power of two up to ``high``.
    """
    sizes = [n for n in power_of_two_sizes(1, low, high) if n % method.in_ratio == 0 and n % method.out_ratio == 0]
    if not sizes:
        raise StreamingError(
            f"streamify: {where}: method {method.name!r} takes one input frame per {method.in_ratio} audio samples "
            f"and gives one output frame per {method.out_ratio} audio samples; nn~ buffer sizes are powers of two from {low} to "
            f"{high}, and none is a whole number of both frames: change the model's strides so that these ratios "
            "are each a power of two"
        )
    return sizes


def extra_latency_samples(method: ConvertedMethod, size: int) -> int:
    """Audio samples of latency that host buffers of ``size`` samples add to the method's delay (0 for multiples
    of its buffer multiple): ``M - gcd(n, M)`` input frames, ``M`` the buffer multiple and ``n = size / in_ratio``."""
    from streamify.runtime.buffering import extra_latency_frames

    return extra_latency_frames(size // method.in_ratio, int(method.stream.buffer_multiple)) * method.in_ratio


def power_of_two_sizes(unit: int, low: int = 256, high: int = 8192) -> List[int]:
    """nn~ buffer sizes from ``low`` to ``high`` (powers of two) that are multiples of ``unit``."""
    sizes = []
    n = low
    while n <= high:
        if n % unit == 0:
            sizes.append(n)
        n *= 2
    return sizes


def method_info(method: ConvertedMethod, sample_rate: Optional[int]) -> Dict[str, object]:
    """What an exported file records about one method (JSON-friendly)."""
    info: Dict[str, object] = {
        "in_channels": method.in_channels,
        "in_ratio": method.in_ratio,
        "out_channels": method.out_channels,
        "out_ratio": method.out_ratio,
        "delay_frames": method.delay_frames,
        "delay_samples": method.delay_samples,
        "buffer_multiple_samples": method.multiple_samples,
        "receptive_field_samples": int(method.stream.receptive_field) * method.in_ratio
        if method.stream.receptive_field >= 0
        else -1,
    }
    if sample_rate:
        info["delay_ms"] = round(1000.0 * method.delay_samples / sample_rate, 3)
    return info
