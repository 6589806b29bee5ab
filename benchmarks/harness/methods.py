"""The streaming methods the benchmark compares, behind one small interface.

Each :class:`Method` is a callable taking one buffer ``[batch, 1, n]`` and returning the
next ``n`` output samples, with ``reset()`` (a fresh stream) and ``delay`` (samples by which
its output lags the offline output). Methods:

* ``streamify``: :func:`streamify.convert` of the reference model (streamify's RAVE) (eager, TorchScript,
  frozen TorchScript, and ONNX Runtime through :func:`streamify.export.export_onnx` and
  :class:`~streamify.export.OnnxStream` when onnx and onnxruntime are installed);
* ``cached_conv``: the same architecture built from cached_conv layers, same weights
  (eager and TorchScript);
* ``overlap_add``: exact overlap-add of the offline model (:class:`OverlapAddStream`);
* the offline model itself is timed on a whole signal (see :mod:`harness.measure`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import torch
from torch import Tensor, nn

from harness.reference import (
    ReferenceConfig,
    build_cached_conv,
    build_reference,
    folded_copy,
    load_same_weights,
    model_facts,
    overlap_add_context,
    reset_cached_conv,
)
from streamify.models.rave import RAVE

STREAMIFY = "streamify"
CACHED_CONV = "cached_conv"
OVERLAP_ADD = "overlap_add"
METHODS = (STREAMIFY, CACHED_CONV, OVERLAP_ADD)
ENGINES = ("eager", "script", "frozen", "onnx")


@dataclass
class Method:
    """A streaming callable with its reset, delay (samples) and label."""

    method: str
    engine: str
    run: Callable[[Tensor], Tensor]
    reset: Callable[[], None]
    delay: int
    #: samples to stream before the calls are in their steady state (warm-up counters run out, full windows)
    prime: int = 0
    notes: List[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.method}/{self.engine}"

    def __call__(self, x: Tensor) -> Tensor:
        return self.run(x)


class OverlapAddStream:
    """Exact overlap-add of an offline model: each call runs the model on the buffer with the context it needs.

    A call that has received the input up to ``T`` runs ``model`` on
    ``x[T - n - right - left : T]`` (from 0 at the start of a stream) and keeps the ``n``
    outputs ``[T - n - right, T - right)``, which see all their inputs: the output lags the
    offline output by ``right`` samples, and a fresh stream starts with ``right`` zeros.
    ``left + right`` must be a multiple of ``period`` (the model's total stride), so that
    every window starts on the model's decimation grid. See
    :func:`harness.reference.overlap_add_context` for the smallest exact contexts.
    """

    def __init__(self, model: Callable[[Tensor], Tensor], left: int, right: int, period: int) -> None:
        if (left + right) % period:
            raise ValueError(f"left + right = {left + right} is not a multiple of the period {period}")
        self.model = model
        self.left = int(left)
        self.right = int(right)
        self.period = int(period)
        self.delay = self.right
        self.history: Optional[Tensor] = None
        self.received = 0

    def reset(self) -> None:
        self.history = None
        self.received = 0

    def __call__(self, x: Tensor) -> Tensor:
        n = x.size(-1)
        if n % self.period:
            raise ValueError(f"buffer of {n} samples is not a multiple of {self.period}")
        keep = self.left + self.right
        history = x if self.history is None else torch.cat([self.history, x], -1)
        self.received += n
        window = history[..., -(keep + n) :] if history.size(-1) > keep + n else history
        start = self.received - window.size(-1)  # signal index of the window's first sample
        first = self.received - n - self.right  # signal index of the first output of this call
        out = x.new_zeros(x.size(0), x.size(1), n) if first < 0 else None
        if first + n > 0:
            y = self.model(window)
            begin = max(first, 0)
            part = y[..., begin - start : first + n - start]
            out = part if out is None else torch.cat([out[..., : begin - first], part], -1)
        self.history = history[..., -keep:] if keep > 0 else history[..., :0]
        assert out is not None
        return out


@dataclass
class Prepared:
    """Everything built once for one reference configuration."""

    config: ReferenceConfig
    model: RAVE  # weight-normed, as trained
    folded: RAVE  # weight norms folded (the deployed offline model)
    stream: nn.Module  # streamify.convert(model)
    cached_conv: Optional[nn.Module]
    facts: object
    ola_left: int
    ola_right: int
    example: Tensor
    notes: List[str] = field(default_factory=list)
    scripted: Dict[str, object] = field(default_factory=dict)


def cached_conv_available() -> bool:
    try:
        import cached_conv  # noqa: F401
    except ImportError:
        return False
    return True


def prepare(config: ReferenceConfig, conversion_frames: int = 32) -> Prepared:
    """Build the reference model, its folded copy, its streamify conversion and its cached_conv twin."""
    import streamify

    model = build_reference(config)
    folded = folded_copy(model)
    example = torch.randn(1, 1, config.total_ratio * conversion_frames, generator=torch.Generator().manual_seed(1))
    stream = streamify.convert(model, example)
    notes: List[str] = []
    twin = None
    if cached_conv_available():
        twin = load_same_weights(build_cached_conv(config), folded)
    else:
        notes.append("cached_conv is not installed (pip install cached-conv --no-deps): its runs are skipped")
    left, right = overlap_add_context(folded, config.total_ratio)
    return Prepared(config, model, folded, stream, twin, model_facts(model, config.name), left, right, example, notes)


#: keys of :attr:`Prepared.scripted` holding the scripted and the frozen streamify models
_SCRIPTED_STREAM_KEYS = {False: "streamify-script", True: "streamify-frozen"}


def _script_streamify(prepared: Prepared, frozen: bool) -> nn.Module:
    key = _SCRIPTED_STREAM_KEYS[frozen]
    if key not in prepared.scripted:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scripted = torch.jit.script(prepared.stream)
            if frozen:
                scripted = torch.jit.freeze(scripted.eval(), preserved_attrs=["reset"])
        prepared.scripted[key] = scripted
    return prepared.scripted[key]


def forget_scripted_streams(prepared: Prepared) -> None:
    """Drop the scripted and frozen streamify models, compiled with the products chosen until now
    (call after :func:`streamify.tune` changes them; the next methods script the stream again)."""
    for key in _SCRIPTED_STREAM_KEYS.values():
        prepared.scripted.pop(key, None)


def _script_cached_conv(prepared: Prepared) -> nn.Module:
    if "cached_conv-script" not in prepared.scripted:
        twin = prepared.cached_conv
        assert twin is not None
        with torch.inference_mode():  # cached_conv creates its caches at the first call: TorchScript needs them
            twin(torch.zeros(1, 1, prepared.config.total_ratio))
        reset_cached_conv(twin)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prepared.scripted["cached_conv-script"] = torch.jit.script(twin)
    return prepared.scripted["cached_conv-script"]


def onnx_support() -> Optional[str]:
    """None if streamify's ONNX export and onnxruntime are importable, else why not."""
    try:
        from streamify.export import OnnxStream, export_onnx  # noqa: F401
    except ImportError as error:
        return f"streamify.export.export_onnx / OnnxStream not available ({error})"
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return "onnxruntime is not installed"
    return None


def make_method(
    prepared: Prepared, method: str, engine: str, threads: int = 1, workdir: Optional[str] = None
) -> Method:
    """A :class:`Method` for ``method`` run by ``engine``; raises ``NotImplementedError`` for combinations skipped."""
    if method == STREAMIFY:
        delay = int(prepared.stream.delay)
        if engine == "eager":
            model = prepared.stream
            return Method(method, engine, model, model.reset, delay, prime=delay)
        if engine in ("script", "frozen"):
            scripted = _script_streamify(prepared, engine == "frozen")
            return Method(method, engine, scripted, scripted.reset, delay, prime=delay)
        if engine == "onnx":
            return _onnx_method(prepared, threads, workdir)
    elif method == CACHED_CONV:
        twin = prepared.cached_conv
        if twin is None:
            raise NotImplementedError("cached_conv is not installed")
        delay = int(twin.cumulative_delay)
        if engine == "eager":
            return Method(method, engine, twin, lambda: reset_cached_conv(twin), delay)
        if engine == "script":
            scripted = _script_cached_conv(prepared)
            return Method(method, engine, scripted, lambda: reset_cached_conv(scripted), delay)
    elif method == OVERLAP_ADD and engine == "eager":
        ola = OverlapAddStream(prepared.folded, prepared.ola_left, prepared.ola_right, prepared.config.total_ratio)
        return Method(method, engine, ola, ola.reset, ola.delay, prime=ola.left + ola.right)
    raise NotImplementedError(f"{method} has no {engine} run")


def _onnx_method(prepared: Prepared, threads: int, workdir: Optional[str]) -> Method:
    """streamify's own ONNX export (explicit state) run by ONNX Runtime through :class:`OnnxStream`."""
    reason = onnx_support()
    if reason is not None:
        raise NotImplementedError(reason)
    import os
    import tempfile

    from streamify.export import OnnxStream, export_onnx

    key = "onnx-path"
    if key not in prepared.scripted:
        folder = workdir or tempfile.mkdtemp(prefix="streamify-bench-")
        path = os.path.join(folder, f"{prepared.config.name}.onnx")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export_onnx(prepared.stream, path, prepared.example, sample_rate=prepared.config.sample_rate)
        prepared.scripted[key] = path
    runner = OnnxStream(str(prepared.scripted[key]), threads=threads)
    delay = int(prepared.stream.delay)
    return Method(STREAMIFY, "onnx", runner, runner.reset, delay, prime=delay)
