"""Process arrays and audio files buffer by buffer, exactly as a host would.

The signal is cut into consecutive buffers of ``buffer`` samples, the last one padded with zeros
(as nn~ does), each buffer goes through the model's stream, and the output is cut to as many
samples as the input. Without compensation the output lags the offline output by the model's
delay; ``compensate=True`` streams ``delay`` more samples (zeros) and drops the first ``delay``,
so that the output lines up with the input.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Tuple, Union

import numpy as np

from streamify.host.guards import check_not_input, non_finite, partial_path, remove_stale_partials
from streamify.host.models import HostError, HostModel
from streamify.host.report import RunReport


@dataclass(frozen=True)
class Layout:
    """How a signal's channels meet a model's: as the model's channels (batch 1) or as batch items (mc.nn~)."""

    channels: int
    batch: int
    in_channels: int
    out_channels: int

    @property
    def output_channels(self) -> int:
        """Channels of the result: ``batch * out_channels`` (batch item major)."""
        return self.batch * self.out_channels

    def to_model(self, x: np.ndarray) -> np.ndarray:
        """``[channels, n]`` → ``[batch, in_channels, n]`` (a view when possible)."""
        return x.reshape(self.batch, self.in_channels, x.shape[-1])

    def from_model(self, y: np.ndarray) -> np.ndarray:
        """``[batch, out_channels, n]`` → ``[batch * out_channels, n]``."""
        return y.reshape(self.output_channels, y.shape[-1])


def channel_layout(model: HostModel, channels: int, where: str = "the input") -> Layout:
    """The :class:`Layout` for ``channels`` signal channels; :class:`HostError` when they do not fit the model."""
    if channels == model.in_channels:
        return Layout(channels, 1, model.in_channels, model.out_channels)
    if model.in_channels == 1:
        return Layout(channels, channels, 1, model.out_channels)
    raise HostError(
        f"streamify: {where} has {channels} channel{'s' if channels != 1 else ''} but the model {model.name} takes "
        f"{model.in_channels}; give it {model.in_channels} channels (or use a 1-channel model, which takes each "
        "channel as a batch item)"
    )


def process_array(
    model: HostModel,
    audio: np.ndarray,
    buffer: int,
    sample_rate: Optional[int] = None,
    compensate: bool = False,
    on_buffer: Optional[Callable[[int, int], None]] = None,
) -> Tuple[np.ndarray, RunReport]:
    """Stream ``audio`` ``[channels, time]`` through ``model`` from a fresh stream, buffer by buffer.

    Args:
        model: the model (reset before and after).
        audio: ``[channels, time]``, any float type (computed in float32).
        buffer: samples per model call: a multiple of ``model.multiple``, or any whole number of frames where
            ``model.any_length`` (at ``model.extra_latency(buffer)`` more delay, reported and compensated).
        sample_rate: the rate of ``audio`` in Hz (for the report; default: the model's, else 48000).
        compensate: drop the model's delay at this buffer (``model.delay_at(buffer)``): the output lines up
            with the input.
        on_buffer: called with ``(done, total)`` after each buffer (progress).

    Returns:
        ``[layout.output_channels, time]`` float32, and the run's :class:`RunReport`.
    """
    if audio.ndim != 2:
        raise HostError(f"streamify: expected audio [channels, time], got shape {tuple(audio.shape)}")
    model.check_buffer(buffer)
    layout = channel_layout(model, audio.shape[0])
    if compensate and model.delay is None:
        raise HostError(f"streamify: {model.name} does not record its delay: --compensate cannot remove it")
    rate = sample_rate or model.sample_rate or 48000
    length = audio.shape[1]
    delay = model.delay_at(buffer)
    extra = model.extra_latency(buffer)
    shift = delay if compensate else 0
    calls = max(1, -(-(length + shift) // buffer))
    padded = np.zeros((audio.shape[0], calls * buffer), dtype=np.float32)
    padded[:, :length] = audio
    output = np.empty((layout.output_channels, calls * buffer), dtype=np.float32)
    seconds = np.empty(calls)
    # as nn~ and live do: first-call costs (allocation, TorchScript's compile) before the first timed buffer
    model.warm_up(layout.batch, buffer)
    try:
        for i in range(calls):
            chunk = layout.to_model(padded[:, i * buffer : (i + 1) * buffer])
            began = time.perf_counter()
            y = model(chunk)
            seconds[i] = time.perf_counter() - began
            output[:, i * buffer : (i + 1) * buffer] = layout.from_model(y)
            if on_buffer is not None:
                on_buffer(i + 1, calls)
    finally:
        model.reset()
    notes = []
    if extra:
        notes.append(
            f"buffers of {buffer} samples add {extra} samples of latency to the model's {model.delay} "
            f"({model.multiple} - gcd({buffer}, {model.multiple}); none for multiples of {model.multiple})"
        )
    if compensate:
        notes.append(f"compensated: the model's delay of {shift} samples removed, the output lines up with the input")
    report = RunReport(rate, buffer, delay, buffer, seconds, calls * buffer / rate, notes=notes)
    return output[:, shift : shift + length], report


def _format_of(path: Path) -> str:
    import soundfile as sf

    fmt = path.suffix.lstrip(".").upper()
    fmt = {"OGA": "OGG", "AIF": "AIFF", "OPUS": "OGG"}.get(fmt, fmt)
    if fmt not in sf.available_formats():
        raise HostError(
            f"streamify: cannot write {path}: unknown audio format {path.suffix!r} "
            f"(use one of .wav, .flac, .ogg, .aiff, ...)"
        )
    return fmt


def _subtype_for(fmt: str, path: Path, subtype: Optional[str]) -> str:
    import soundfile as sf

    if subtype is not None:
        if not sf.check_format(fmt, subtype):
            raise HostError(f"streamify: {path}: format {fmt} does not take subtype {subtype}")
        return subtype
    if path.suffix.lower() == ".opus":
        return "OPUS"
    # float keeps the model's output exactly where the format allows it
    return "FLOAT" if sf.check_format(fmt, "FLOAT") else sf.default_subtype(fmt)


def read_audio(path: Union[str, Path]) -> Tuple[np.ndarray, int]:
    """``([channels, time] float32, sample_rate)``; :class:`HostError` for a missing or unreadable file."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise HostError(f"streamify: input file {path} does not exist")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as error:
        raise HostError(f"streamify: cannot read {path} as audio: {str(error).splitlines()[0]}") from error
    return np.ascontiguousarray(data.T), int(rate)


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """``[channels, time]`` resampled by soxr (very high quality); the same array when the rates agree."""
    if from_rate == to_rate:
        return audio
    import soxr

    return np.ascontiguousarray(soxr.resample(audio.T, from_rate, to_rate, quality="VHQ").T.astype(np.float32))


#: subtypes that keep samples beyond full scale (|x| > 1); every other one clips them
UNCLIPPED_SUBTYPES = ("FLOAT", "DOUBLE")


@dataclass(frozen=True)
class Clipping:
    """What writing ``[channels, time]`` in a subtype does to samples beyond full scale.

    Attributes:
        peak: the largest ``|sample|`` of the audio (1.0 is full scale).
        clipped: samples with ``|x| > 1`` the subtype cannot hold (0 for FLOAT / DOUBLE).
        subtype: the subtype written.
    """

    peak: float
    clipped: int
    subtype: str

    def warning(self, path: Union[str, Path]) -> Optional[str]:
        """One line saying how many samples were clipped and how to avoid it; ``None`` when none were."""
        if not self.clipped:
            return None
        db = 20 * np.log10(self.peak)
        return (
            f"{path}: {self.clipped} samples clipped at full scale (peak {self.peak:.3g}, {db:+.1f} dBFS) by the "
            f"{self.subtype} subtype; write a .wav with --subtype FLOAT to keep them, or lower the level with "
            f"--gain {-np.ceil(db * 10) / 10:g}"
        )


def clipping(audio: np.ndarray, subtype: str) -> Clipping:
    """The :class:`Clipping` of writing ``audio`` ``[channels, time]`` in ``subtype``."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    clipped = 0 if subtype in UNCLIPPED_SUBTYPES else int(np.count_nonzero(np.abs(audio) > 1.0))
    return Clipping(peak, clipped, subtype)


def check_destination(path: Union[str, Path], subtype: Optional[str] = None) -> str:
    """Refuse (:class:`HostError`) an output path that cannot be written, before any work: an unknown format,
    a subtype the format lacks, a missing or read-only folder, an existing folder. Returns the subtype."""
    path = Path(path)
    fmt = _format_of(path)
    chosen = _subtype_for(fmt, path, subtype)
    folder = path.parent
    if not folder.is_dir():
        raise HostError(f"streamify: cannot write {path}: folder {folder} does not exist; create it or pick another")
    if path.is_dir():
        raise HostError(f"streamify: cannot write {path}: it is a folder; give a file name")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise HostError(f"streamify: cannot write {path}: folder {folder} is not writable; pick another")
    return chosen


def write_audio(path: Union[str, Path], audio: np.ndarray, rate: int, subtype: Optional[str] = None) -> str:
    """Write ``[channels, time]`` to ``path`` through a temporary file renamed at the end (no partial file).

    Samples beyond full scale in a subtype that clips them give a :class:`UserWarning` with their count
    (see :func:`clipping`). Returns the subtype written (``FLOAT`` where the format allows it, else the
    format's default).
    """
    chosen = check_destination(path, subtype)
    said = clipping(audio, chosen).warning(path)
    if said:
        warnings.warn(said, stacklevel=2)
    _write(Path(path), audio, rate, chosen)
    return chosen


def _write(path: Path, audio: np.ndarray, rate: int, chosen: str) -> None:
    import soundfile as sf

    temporary = partial_path(path)
    try:
        sf.write(str(temporary), audio.T, rate, format=_format_of(path), subtype=chosen)
        os.replace(temporary, path)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError) as error:
        raise HostError(write_failure(path, error, audio.nbytes)) from error
    finally:
        if temporary.exists():
            temporary.unlink()


def output_subtype(path: Path, requested: Optional[str], input_subtype: Optional[str], audio: np.ndarray) -> str:
    """The subtype to write ``audio`` ``[channels, time]`` to ``path`` in.

    ``requested`` when given. Otherwise the input's subtype where the output's format takes it and it holds
    the output (a float subtype, or no sample beyond full scale); else ``FLOAT`` where the format has it;
    else the format's default (which may clip: said by :func:`clipping`).
    """
    import soundfile as sf

    fmt = _format_of(path)
    if requested is not None:
        return _subtype_for(fmt, path, requested)
    takes = bool(input_subtype) and sf.check_format(fmt, input_subtype)
    if takes and (input_subtype in UNCLIPPED_SUBTYPES or not clipping(audio, input_subtype).clipped):
        return input_subtype
    return _subtype_for(fmt, path, None)


def write_failure(path: Path, error: BaseException, size: int = 0) -> str:
    """Why writing ``path`` failed, as a message: the system's own cause where libsndfile says only "System
    error." (its errno, read through soundfile's C interface), a full disk named as such. ``size``: bytes the
    file needed, about (a folder with less space left than that is full)."""
    import errno
    import shutil

    import soundfile as sf

    code = getattr(error, "errno", None)
    if code is None and isinstance(error, sf.LibsndfileError):
        code = getattr(getattr(sf, "_ffi", None), "errno", None)  # the C call's errno, right after it failed
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        free = None
    if code in (errno.ENOSPC, errno.EDQUOT) or (free is not None and size and free < size):
        space = f"{free} bytes left" if free is not None else "no space left"
        why = "your disk quota is used up" if code == errno.EDQUOT else "the disk is full"
        return (
            f"streamify: cannot write {path}: {why} ({space} on the disk holding {path.parent}, the output needs "
            f"about {size} bytes); free some space or write the output to another disk"
        )
    detail = str(error).splitlines()[0].strip() if str(error).strip() else type(error).__name__
    if code and "System error" in detail:
        detail = f"{os.strerror(code)} (errno {code})"
    return f"streamify: cannot write {path}: {detail}"


@dataclass
class FileResult:
    """What :func:`process_file` did: the report, the rates, the output's channels and subtype, and its clipping."""

    report: RunReport
    input_rate: int
    output_rate: int
    channels: int
    subtype: str
    clipping: Optional[Clipping] = None

    @property
    def clipped(self) -> int:
        """Samples clipped at full scale in the file written (0: none; see :class:`Clipping`)."""
        return self.clipping.clipped if self.clipping is not None else 0


def process_file(
    source: Union[str, Path],
    destination: Union[str, Path],
    model: HostModel,
    buffer: int = 2048,
    compensate: bool = False,
    resample_back: bool = True,
    subtype: Optional[str] = None,
    on_buffer: Optional[Callable[[int, int], None]] = None,
    gain_db: float = 0.0,
    nan: str = "refuse",
    overwrite_input: bool = False,
) -> FileResult:
    """Read ``source``, resample it to the model's rate (soxr), stream it through ``model``, write ``destination``.

    ``resample_back`` (default) writes the output at the input's rate; ``False``: at the model's. ``subtype``:
    see :func:`output_subtype` (default: the input's where it holds the output). ``gain_db`` scales the output
    (dB). ``nan``: ``"refuse"`` an input holding NaN or infinite samples (default), or ``"zero"`` them.
    ``destination`` is checked before the work (never the input itself, unless ``overwrite_input``) and written
    only when everything succeeded (temporary file, renamed); partial files of killed runs in its folder are
    removed first. Samples beyond full scale that the subtype clips are written clipped, counted in
    :attr:`FileResult.clipping` and said in a report note (as sox does). Errors are :class:`HostError`.
    """
    destination = check_not_input(source, destination, overwrite_input)
    check_destination(destination, subtype)  # refuse a path that cannot be written before the work
    remove_stale_partials(destination.parent)
    audio, rate = read_audio(source)
    if audio.shape[1] == 0:
        raise HostError(f"streamify: input file {source} holds no samples")
    repaired = non_finite(audio, rate, f"input file {source}", nan)
    model_rate = model.sample_rate or rate
    audio = resample(audio, rate, model_rate)
    output, report = process_array(model, audio, buffer, model_rate, compensate, on_buffer)
    if repaired:
        report.notes.append(repaired)
    out_rate = model_rate
    if model_rate != rate:
        report.notes.append(f"resampled {rate} Hz -> {model_rate} Hz (soxr, very high quality)")
        if resample_back:
            output = resample(output, model_rate, rate)
            out_rate = rate
            report.notes.append(f"resampled back {model_rate} Hz -> {rate} Hz")
    if gain_db:
        output = output * np.float32(10 ** (gain_db / 20))
        report.notes.append(f"gain {gain_db:+g} dB")
    input_subtype = _subtype_of(source)
    chosen = output_subtype(destination, subtype, input_subtype, output)
    if subtype is None and input_subtype and chosen != input_subtype:
        report.notes.append(f"written as {chosen}: the input's {input_subtype} does not fit this output (--subtype)")
    clipped = clipping(output, chosen)
    said = clipped.warning(destination)
    if said:
        report.notes.append(said)
    _write(destination, output, out_rate, chosen)
    return FileResult(report, rate, out_rate, output.shape[0], chosen, clipped)


def _subtype_of(path: Union[str, Path]) -> Optional[str]:
    import soundfile as sf

    try:
        return sf.info(str(path)).subtype
    except (sf.LibsndfileError, RuntimeError, TypeError):
        return None
