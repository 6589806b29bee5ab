"""One interface over the model kinds a host can run: converted PyTorch models, nn~ TorchScript files, ONNX files.

A :class:`HostModel` takes audio-rate buffers ``[batch, in_channels, n]`` float32 (NumPy) and returns
audio-rate buffers ``[batch, out_channels, n]`` float32, ``n`` a multiple of :attr:`HostModel.multiple`,
the way nn~ runs a method: for a method whose input has ``in_ratio`` > 1 it keeps the last sample of
each group of ``in_ratio``; each output frame of a method with ``out_ratio`` > 1 is repeated
``out_ratio`` times. The stream state is kept between calls; :meth:`HostModel.reset` starts afresh.
"""

from __future__ import annotations

import math
import re
import warnings
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Union

import numpy as np
import torch
from torch import nn

from streamify.layers.base import StreamingError, StreamingModule

if TYPE_CHECKING:
    from streamify.loading import Resolved


class HostError(StreamingError):
    """A model, file or device the host cannot use; the message says what and what to do."""


class HostModel:
    """A streaming model as a host sees it (see the module docstring for the buffer contract).

    Attributes:
        name: what the user named (a path or a factory).
        kind: ``"torch"``, ``"torchscript"`` or ``"onnx"``.
        in_channels, out_channels: channels of the method's input and output.
        in_ratio, out_ratio: audio samples per input / output frame.
        multiple: the model's buffer multiple, audio samples; where :attr:`any_length`, other buffers are taken
            at :meth:`extra_latency` more delay, else buffers must be multiples of it.
        delay: the output's lag behind the offline output for buffers that are multiples of :attr:`multiple`,
            audio samples (``None``: unknown; :meth:`delay_at` for any buffer).
        sample_rate: the model's rate in Hz (``None``: unknown, the host's rate is used).
    """

    kind = "?"

    def __init__(
        self,
        name: str,
        in_channels: int,
        out_channels: int,
        in_ratio: int,
        out_ratio: int,
        multiple: int,
        delay: Optional[int],
        sample_rate: Optional[int],
    ) -> None:
        self.name = name
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.in_ratio = int(in_ratio)
        self.out_ratio = int(out_ratio)
        self.multiple = int(multiple)
        self.delay = None if delay is None else int(delay)
        self.sample_rate = int(sample_rate) if sample_rate else None

    # ------------------------------------------------------------------ the buffer contract
    #: whether buffers that are not multiples of :attr:`multiple` are taken (at :meth:`extra_latency` more delay)
    any_length = False

    @property
    def frame(self) -> int:
        """Every buffer is a whole number of input and output frames: a multiple of this many samples."""
        return self.in_ratio * self.out_ratio // math.gcd(self.in_ratio, self.out_ratio)

    def check_buffer(self, n: int) -> None:
        """Raise :class:`HostError` unless ``n`` audio samples make a buffer this model accepts."""
        if self.any_length:
            if n <= 0 or n % self.frame != 0:
                raise HostError(
                    f"streamify: {self.name}: a buffer of {n} samples is not a whole number of the model's frames "
                    f"({self.frame} samples); pick --buffer as a multiple of {self.frame}"
                )
            return
        if n <= 0 or n % self.multiple != 0:
            raise HostError(
                f"streamify: {self.name}: a buffer of {n} samples is not a positive multiple of the model's "
                f"buffer multiple, {self.multiple} samples; pick --buffer as a multiple of {self.multiple}"
            )

    def extra_latency(self, n: int) -> int:
        """Samples of latency buffers of ``n`` samples add to :attr:`delay`: ``M - gcd(n, M)``, ``M`` =
        :attr:`multiple` (0 for multiples of ``M``)."""
        return self.multiple - math.gcd(int(n), self.multiple)

    def delay_at(self, n: int) -> Optional[int]:
        """The output's lag behind the offline output for a stream of buffers of ``n`` samples (``None``: unknown)."""
        return None if self.delay is None else self.delay + self.extra_latency(n)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """``[batch, in_channels, n]`` float32 → ``[batch, out_channels, n]`` float32 (audio rate)."""
        if x.ndim != 3 or x.shape[1] != self.in_channels:
            raise HostError(
                f"streamify: {self.name}: expected a buffer [batch, {self.in_channels}, n], got {tuple(x.shape)}"
            )
        n = x.shape[2]
        self.check_buffer(n)
        frames = x[..., self.in_ratio - 1 :: self.in_ratio] if self.in_ratio > 1 else x
        try:
            y = self._run(np.ascontiguousarray(frames, dtype=np.float32))
        except StreamingError:
            raise
        except Exception as error:  # the model's own failure: its real cause first, briefly
            raise HostError(f"streamify: {error_cause(error)} (raised by the model {self.name})") from error
        if self.out_ratio > 1:
            y = np.repeat(y, self.out_ratio, axis=-1)
        if y.shape != (x.shape[0], self.out_channels, n):
            raise HostError(
                f"streamify: {self.name}: the model returned {tuple(y.shape)} for a buffer {tuple(x.shape)}; "
                f"expected {(x.shape[0], self.out_channels, n)}"
            )
        return y

    def _run(self, frames: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def reset(self) -> None:
        """Back to a fresh stream (the next call may use another batch size)."""
        raise NotImplementedError

    def warm_up(self, batch: int, n: int, calls: int = 3) -> None:
        """Run ``calls`` buffers of zeros (first-call costs: allocation, TorchScript optimisation), then reset."""
        x = np.zeros((batch, self.in_channels, n), dtype=np.float32)
        for _ in range(calls):
            self(x)
        self.reset()

    def describe(self) -> str:
        """One line: kind, channels, rates, delay, multiple."""
        delay = "unknown" if self.delay is None else f"{self.delay} samples"
        buffers = (
            f"any buffer of whole frames, multiples of {self.multiple} samples add no latency"
            if self.any_length
            else f"buffers of multiples of {self.multiple} samples"
        )
        rate = f"{self.sample_rate} Hz" if self.sample_rate else "rate not recorded"
        ratios = "" if self.in_ratio == self.out_ratio == 1 else f", ratios in {self.in_ratio} / out {self.out_ratio}"
        return (
            f"{self.name} ({self.kind}, {self.in_channels} -> {self.out_channels} channels{ratios}, {rate}, "
            f"delay {delay}, {buffers})"
        )


_CAUSE = re.compile(r"^(?:builtins\.)?([A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Exit)):\s*(.*)$")


def error_cause(error: BaseException, limit: int = 200) -> str:
    """The real cause of a model's ``error`` in one short line: ``"RuntimeError: boom"``.

    A TorchScript error's text starts with "The following operation failed in the TorchScript interpreter."
    and ends with the user's exception (``builtins.RuntimeError: boom``): that last line is the cause.
    Other errors give their type and first line. At most ``limit`` characters.
    """
    text = str(error).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    cause = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
    if len(lines) > 1 and ("TorchScript" in lines[0] or "Traceback" in text):
        for line in reversed(lines):
            found = _CAUSE.match(line)
            if found:
                kind = found.group(1).rsplit(".", 1)[-1]
                cause = f"{kind}: {found.group(2)}" if found.group(2) else kind
                break
        else:
            cause = f"{type(error).__name__}: {lines[-1]}"
    return cause if len(cause) <= limit else cause[: limit - 3] + "..."


def _ratios(ratio: Fraction, name: str) -> tuple:
    """``(in_ratio, out_ratio)`` from a stream's ratio (input samples per output frame)."""
    ratio = Fraction(ratio)
    if ratio >= 1 and ratio.denominator == 1:
        return 1, int(ratio)
    if ratio < 1 and ratio.numerator == 1:
        return int(ratio.denominator), 1
    raise HostError(f"streamify: {name}: the model's rate ratio {ratio} is not a whole number of samples per frame")


class TorchModel(HostModel):
    """A streamify :class:`StreamingModule` (a converted model or one built from streamify layers)."""

    kind = "torch"

    def __init__(self, stream: StreamingModule, name: str, sample_rate: Optional[int] = None) -> None:
        in_ratio, out_ratio = _ratios(stream.ratio, name)
        in_channels = getattr(stream, "in_channels", None)
        out_channels = getattr(stream, "out_channels", None)
        if in_channels is None or out_channels is None:
            raise HostError(f"streamify: {name}: the streaming model does not record its channel counts")
        super().__init__(
            name,
            in_channels,
            out_channels,
            in_ratio,
            out_ratio,
            int(stream.buffer_multiple) * in_ratio,
            int(stream.delay) * out_ratio,
            sample_rate,
        )
        self.stream = stream.float().eval()
        self.receptive_field = int(getattr(stream, "receptive_field", -1)) * in_ratio
        self.any_length = True
        self._any: Optional[nn.Module] = None  # an AnyLengthStream over ``stream``, made on first need
        self._runner: Optional[nn.Module] = None  # what this stream runs, chosen by its first buffer

    def _run(self, frames: np.ndarray) -> np.ndarray:
        if self._runner is None:
            if (frames.shape[-1] * self.in_ratio) % self.multiple == 0:
                self._runner = self.stream
            else:  # any other length: accumulated to multiples, at extra_latency(n) more delay
                if self._any is None:
                    from streamify.runtime.buffering import AnyLengthStream

                    self._any = AnyLengthStream(self.stream, self.name).eval()
                self._runner = self._any
        with torch.inference_mode():
            return self._runner(torch.from_numpy(frames)).numpy()

    def reset(self) -> None:
        if self._any is not None:
            self._any.reset()
        self.stream.reset()
        self._runner = None

    def get_state(self) -> dict:
        """A snapshot of this stream (copies): the model's :func:`streamify.state.get_state`, and the
        any-length wrapper's held-back input and queued output when buffers are not multiples of :attr:`multiple`.

        Tensors and integers only, keyed by name; :meth:`set_state` restores it on this model or an identical one.
        """
        from streamify.runtime.state import get_state

        state = {f"stream.{key}": value for key, value in get_state(self.stream).items()}
        if self._runner is not None and self._runner is self._any:
            any_stream = self._any
            if any_stream.queued:
                raise HostError(f"streamify: {self.name}: a snapshot cannot hold a pending per-item reset")
            state["any.pending"] = any_stream.pending.clone()
            state["any.ready"] = any_stream.ready.clone()
            state["any.stream_batch"] = torch.tensor(any_stream.stream_batch)
            state["any.extra"] = torch.tensor(any_stream.extra)
        return state

    def set_state(self, state: dict) -> None:
        """Restore a :meth:`get_state` snapshot (checked by :func:`streamify.state.set_state`; a snapshot of another
        model or buffer kind raises :class:`StreamingError` and leaves the stream fresh)."""
        from streamify.runtime.buffering import AnyLengthStream
        from streamify.runtime.state import set_state

        any_keys = {"any.pending", "any.ready", "any.stream_batch", "any.extra"}
        prefix = "stream."
        unknown = sorted(key for key in state if not key.startswith(prefix) and key not in any_keys)
        given = any_keys & set(state)
        if unknown or given not in (set(), any_keys):
            raise HostError(
                f"streamify: {self.name}: the snapshot does not fit this model (unknown {unknown[:5]}, "
                f"any-length entries {sorted(given)}); restore a snapshot taken with get_state() on this model"
            )
        self.reset()
        set_state(self.stream, {key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)})
        if "any.pending" in state:
            if self._any is None:
                self._any = AnyLengthStream(self.stream, self.name).eval()
            any_stream = self._any
            any_stream.stream_batch = int(state["any.stream_batch"])
            any_stream.extra = int(state["any.extra"])
            any_stream.pending = state["any.pending"].detach().clone().float()
            any_stream.ready = state["any.ready"].detach().clone().float()
            self._runner = any_stream
        else:
            self._runner = None  # the next buffer picks it (its length is the snapshot's)


class ScriptModel(HostModel):
    """A TorchScript file following the nn~ contract (``METHOD_params`` = [in_ch, in_ratio, out_ch, out_ratio])."""

    kind = "torchscript"

    def __init__(self, path: Union[str, Path], method: str = "forward", sample_rate: Optional[int] = None) -> None:
        name = str(path)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            try:
                module = torch.jit.load(name, map_location="cpu")
            except Exception as error:  # torch raises RuntimeError/ValueError with long C++ traces
                first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                raise HostError(f"streamify: cannot load {name} as TorchScript: {first}") from error
        if hasattr(module, "get_methods"):
            module.get_methods()  # what nn~ calls at load: a streamify file compiles (warms) itself there
        params = getattr(module, f"{method}_params", None)
        if params is None or not hasattr(module, method):
            methods = [m for m in _script_methods(module)]
            raise HostError(
                f"streamify: {name} has no nn~ method {method!r} (it has {methods}); pick one with --method"
            )
        in_channels, in_ratio, out_channels, out_ratio = (int(v) for v in params.tolist())
        delay: Optional[int] = None
        multiple = max(in_ratio, out_ratio)
        self.recorded_extra: dict = {}
        any_length = False
        try:
            from streamify.export.nn_tilde import read_info

            fields = read_info(name)["methods"][method]  # type: ignore[index]
            delay = int(fields["delay_samples"])
            multiple = int(fields["buffer_multiple_samples"])
            recorded = fields.get("buffering_latency_samples")
            if isinstance(recorded, dict):  # the file wraps its streams to take any host buffer size
                any_length = True
                self.recorded_extra = {int(k): int(v) for k, v in recorded.items()}
        except (StreamingError, KeyError, TypeError, ValueError):
            pass  # not a streamify file: the delay is unknown
        if sample_rate is None and hasattr(module, "get_sample_rate"):
            sample_rate = int(module.get_sample_rate()) or None
        super().__init__(name, in_channels, out_channels, in_ratio, out_ratio, multiple, delay, sample_rate)
        self.any_length = any_length
        self.module = module
        self.method = getattr(module, method)
        self._fresh_bytes: Optional[bytes] = None if hasattr(module, "reset_streams") else Path(name).read_bytes()

    def extra_latency(self, n: int) -> int:
        """The file's own record for ``n`` where it has one, else ``M - gcd(n, M)`` (what the file's streams add)."""
        if not self.any_length:
            return 0
        return self.recorded_extra.get(int(n), super().extra_latency(n))

    def _run(self, frames: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.method(torch.from_numpy(frames)).numpy()

    def warm_up(self, batch: int, n: int, calls: int = 3) -> None:
        """Warm a file whose streams reset in place; a file reset by reloading it would lose what warming compiles."""
        if self._fresh_bytes is None:
            super().warm_up(batch, n, calls)

    def reset(self) -> None:
        if self._fresh_bytes is None:
            self.module.reset_streams()
            return
        import io

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            self.module = torch.jit.load(io.BytesIO(self._fresh_bytes), map_location="cpu")
        self.method = getattr(self.module, self.method.name)


def _script_methods(module) -> list:
    if hasattr(module, "get_methods"):
        return list(module.get_methods())
    return sorted(name[: -len("_params")] for name, _ in module.named_buffers() if name.endswith("_params"))


class OnnxModel(HostModel):
    """An ONNX file with explicit state written by :func:`streamify.export.export_onnx` (run by ONNX Runtime)."""

    kind = "onnx"

    def __init__(self, path: Union[str, Path], sample_rate: Optional[int] = None, threads: int = 1) -> None:
        from streamify.export.onnx_export import OnnxStream

        try:
            stream = OnnxStream(str(path), threads=threads)
        except StreamingError:
            raise
        except Exception as error:  # onnxruntime raises its own exception types
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise HostError(f"streamify: cannot load {path} as an ONNX model: {first}") from error
        info = stream.info
        in_ratio, out_ratio = int(info.get("in_ratio", 1)), int(info.get("out_ratio", 1))
        super().__init__(
            str(path),
            stream.in_channels,
            stream.out_channels,
            in_ratio,
            out_ratio,
            stream.buffer_multiple * in_ratio,
            stream.delay * out_ratio,
            sample_rate or info.get("sample_rate"),
        )
        self.stream = stream

    def _run(self, frames: np.ndarray) -> np.ndarray:
        return self.stream(frames)

    def reset(self) -> None:
        self.stream.reset()


def load_host_model(
    spec: Union[str, Path, nn.Module, HostModel, Resolved],
    weights: Optional[Union[str, Path]] = None,
    method: str = "forward",
    channels: Optional[int] = None,
    sample_rate: Optional[int] = None,
    threads: int = 1,
) -> HostModel:
    """The model a host runs, whatever its kind (resolved by :func:`streamify.loading.resolve`).

    Args:
        spec: a :class:`~streamify.loading.Resolved`; an ``nn.Module`` (converted unless it already streams); a
            ``.ts`` file (nn~ TorchScript);
            an ``.onnx`` file (streamify's explicit-state export); else what :func:`streamify.loading.resolve`
            accepts (``demo``, ``package.module:factory``, a checkpoint, an acids-rave run, ...).
        weights: state dict for a factory.
        method: the method to run (``forward``, ``encode``, ``decode``).
        channels: input channels for converting a PyTorch model (default: the first conv's input channels).
        sample_rate: the model's rate in Hz when the model does not record it.
        threads: ONNX Runtime intra-op threads (PyTorch's are set by the caller, see :func:`set_torch_threads`).
    """
    from streamify.loading import Kind, resolve, to_stream

    if isinstance(spec, HostModel):
        return spec
    resolved = resolve(spec, weights, channels=channels, sample_rate=sample_rate)
    name = resolved.spec
    if resolved.kind is Kind.torchscript:
        return ScriptModel(name, method, sample_rate)
    if resolved.kind is Kind.onnx:
        if method != "forward":
            raise HostError(f"streamify: {name}: an ONNX file holds one method; drop --method {method}")
        return OnnxModel(name, sample_rate, threads)
    if resolved.kind is Kind.neutone:
        raise HostError(
            f"streamify: {name} is a Neutone FX model: it runs in the Neutone plugin of a DAW; to run the model "
            "here, give its source model or export it as .ts (streamify export -o model.ts)"
        )
    return TorchModel(to_stream(resolved, method), name, resolved.sample_rate)


def set_torch_threads(threads: int) -> str:
    """Set PyTorch's intra-op thread count (process-wide) and say so, in one phrase."""
    torch.set_num_threads(int(threads))
    return f"{torch.get_num_threads()} intra-op thread{'s' if torch.get_num_threads() != 1 else ''}"
