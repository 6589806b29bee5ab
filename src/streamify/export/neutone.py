"""Neutone FX files (``.nm``): a streaming model for the Neutone FX plugin (VST3/AU) in a DAW.

:func:`export_neutone` converts ``forward`` (for an autoencoder: ``decode(edit(encode(x)))`` with
the latent-edit knobs) with :func:`streamify.convert`, wraps the scripted stream in a
``WaveformToWaveformBase`` (:mod:`streamify.export.neutone_model`) and writes it with neutone-sdk's
own ``save_neutone_model`` (its scripting, metadata validation, reload, plugin-method and offline
checks run). The file then is streamed here as the plugin drives it and refused unless it equals
the offline model delayed by the two delays it reports. See ``docs/daw.md``.

Needs the ``neutone`` extra: ``pip install --no-deps neutone-sdk==1.5.2`` plus an importable torchaudio
(``docs/daw.md``, "Installing neutone-sdk").
"""

from __future__ import annotations

import contextlib
import logging
import math
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from streamify._version import __version__
from streamify.exactness import compare_streamed
from streamify.export.files import write_atomically
from streamify.export.methods import check_float32, convert_model
from streamify.layers.base import StreamingError
from streamify.native import make_portable
from streamify.runtime.model import StreamingModel

#: DAW buffer sizes the native sizes are made for (each is rounded up to a multiple of the stream's)
COMMON_BUFFER_SIZES = (64, 128, 256, 512, 1024, 2048, 4096)
#: the knobs of an autoencoder (latent edit between encode and decode), in the plugin's order
KNOB_SCALE = "Latent scale"
KNOB_OFFSET = "Latent offset"
KNOB_DIMENSION = "Latent dimension"
#: knob 0..1 -> latent scale 0..SCALE_MAX (0.5 -> 1) and offset -OFFSET_MAX..OFFSET_MAX (0.5 -> 0)
SCALE_MAX = 2.0
OFFSET_MAX = 2.0
#: the rate neutone-sdk's schema allows at most for a real-time model (Hz)
MAX_NEUTONE_RATE = 96000
#: relative error allowed at the export's own check (of the offline peak; float32)
CHECK_TOLERANCE = 1e-4
INSTALL_HINT = (
    "install the neutone extra: pip install --no-deps neutone-sdk==1.5.2 and a torchaudio that imports "
    "(docs/daw.md, 'Installing neutone-sdk')"
)


class LatentEdit(nn.Module):
    """``decode(encode(x) * latent_scale + latent_offset)``: an autoencoder with its latents editable.

    Shape:
        ``[batch, channels, time]`` -> ``[batch, channels, time]``; ``latent_scale`` and
        ``latent_offset`` are ``[1, latent_channels, 1]`` (1 and 0: the model's own forward).
    """

    def __init__(self, model: nn.Module, latent_channels: int) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("latent_scale", torch.ones(1, latent_channels, 1))
        self.register_buffer("latent_offset", torch.zeros(1, latent_channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.model.decode(self.model.encode(x) * self.latent_scale + self.latent_offset)


def _latent_channels(model: nn.Module, example: Tensor) -> int:
    """The latent channels of an autoencoder whose ``forward`` is ``decode(encode(x))``, else 0."""
    if isinstance(model, StreamingModel) or not all(callable(getattr(model, m, None)) for m in ("encode", "decode")):
        return 0
    try:
        with torch.no_grad():
            z = model.encode(example)
            same = torch.allclose(model.decode(z), model(example), rtol=1e-5, atol=1e-6)
    except Exception:
        return 0
    return int(z.shape[1]) if same and z.dim() == 3 else 0


def native_buffer_sizes(multiple: int) -> List[int]:
    """The buffer sizes (samples) offered to the plugin: each common DAW size rounded up to a multiple of
    the stream's ``multiple``, so that a DAW buffer of a common size divides one of them when it can."""
    return sorted({math.lcm(int(multiple), size) for size in COMMON_BUFFER_SIZES})


def _marked_tensor(stream: StreamingModel, mark: Tensor, where: str) -> Tensor:
    """The one tensor of ``stream`` that holds ``mark``'s values (a knob after conversion)."""
    found = {
        tensor.data_ptr(): tensor
        for tensor in list(stream.buffers()) + list(stream.parameters())
        if tensor.numel() == mark.numel() and torch.equal(tensor.detach().flatten().to(mark.dtype), mark)
    }
    if len(found) != 1:
        raise StreamingError(
            f"streamify: {where}: internal error: the latent knobs are not one tensor each in the stream"
        )
    return next(iter(found.values()))


def _stream_for(model: nn.Module, example: Tensor, where: str) -> Tuple[StreamingModel, Tensor, Tensor]:
    """The stream of ``forward`` (with the latent edit of an autoencoder) and its knob tensors."""
    latent = _latent_channels(model, example)
    if latent:
        edit = LatentEdit(model, latent).eval()
        # converted with marks in the knobs (any values stream alike: the product and sum are pointwise), so
        # that the stream's copies are found whatever the converter names them; then set to 1 and 0
        marks = (1.0 + torch.arange(1, latent + 1) / 1024.0, torch.arange(1, latent + 1) / 4096.0)
        with torch.no_grad():
            edit.latent_scale.copy_(marks[0].view(1, -1, 1))
            edit.latent_offset.copy_(marks[1].view(1, -1, 1))
        stream = convert_model(edit, example)
        scale, offset = (_marked_tensor(stream, mark, where) for mark in marks)
        with torch.no_grad():
            for knobs in (edit, getattr(stream.original, "model", stream.original)):  # the offline reference too
                knobs.latent_scale.fill_(1.0)
                knobs.latent_offset.fill_(0.0)
            scale.fill_(1.0)
            offset.fill_(0.0)
        stream.reset()
        return stream, scale, offset
    stream = model if isinstance(model, StreamingModel) else convert_model(model, example)
    if stream.ratio != 1:
        raise StreamingError(
            f"streamify: {where}: the model's forward returns one frame per {stream.ratio} input samples; Neutone FX "
            "runs audio-to-audio models (as many samples out as in): export an autoencoder or effect, or nn~ (.ts) "
            "for other methods"
        )
    return stream, torch.zeros(1, 0, 1), torch.zeros(1, 0, 1)


def _check_stream(stream: StreamingModel, sample_rate: int, where: str) -> None:
    for side, channels in (("input", stream.in_channels), ("output", stream.out_channels)):
        if int(channels) not in (1, 2):
            raise StreamingError(
                f"streamify: {where}: the model's {side} has {channels} channels; Neutone FX models are mono or "
                "stereo (1 or 2 channels)"
            )
    if int(stream.delay) < 0:
        raise StreamingError(
            f"streamify: {where}: the stream is {-int(stream.delay)} samples early (it pads more than it looks ahead); "
            "a DAW compensates only late plugins: pad less on the right in the model"
        )
    if not 0 < sample_rate <= MAX_NEUTONE_RATE:
        raise StreamingError(
            f"streamify: {where}: sample rate {sample_rate} Hz is outside what Neutone FX takes (1 to "
            f"{MAX_NEUTONE_RATE} Hz); pass the model's rate with --sample-rate"
        )


@contextlib.contextmanager
def _quiet_neutone() -> Iterator[None]:
    """neutone-sdk logs each step at INFO; keep its warnings and errors only, for the export's duration. TorchScript
    (deprecated upstream) is what the plugin loads: its deprecation notices are not the user's concern here."""
    loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict) if name.startswith("neutone")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*torch\.jit\..* is deprecated", category=DeprecationWarning)
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def import_neutone(where: str = "export_neutone"):
    """``neutone_sdk.utils`` (``save_neutone_model``, ``load_neutone_model``), or a StreamingError saying how to
    install it."""
    try:
        from neutone_sdk import utils
    except ImportError as error:
        raise StreamingError(f"streamify: {where}: neutone-sdk does not import ({error}); {INSTALL_HINT}") from error
    except OSError as error:  # PyPI's torchaudio is a CUDA build: its library does not load beside a CPU torch
        raise StreamingError(
            f"streamify: {where}: neutone-sdk imports torchaudio, which fails to load ({error}); {INSTALL_HINT}"
        ) from error
    return utils


def _metadata(
    stream: StreamingModel,
    sample_rate: int,
    name: Optional[str],
    authors: Sequence[str],
    description: Optional[str],
    tags: Sequence[str],
    version: str,
    latent: int,
):
    """The plugin's texts: the given ones, else made from the model; the technical one gives the delays."""
    from streamify.export.neutone_model import NeutoneMetadata

    model_name = stream.layer_name.split(".")[0]
    delay = int(stream.delay)
    technical = (
        f"Exported by streamify {__version__} (torch {torch.__version__}): an exact stream of the offline model "
        f"(cached padding). Latency {delay} samples ({1000.0 * delay / sample_rate:.1f} ms) at {sample_rate} Hz, "
        f"reported to the DAW; buffer multiple {int(stream.buffer_multiple)} samples; receptive field "
        f"{int(stream.receptive_field)} samples."
    )
    knobs = (
        f" Knobs: latent scale (0 to 2) and offset (-2 to 2), on all {latent} latents or one (latent dimension)."
        if latent
        else ""
    )
    short = description or f"{model_name}, streamed exactly by streamify ({1000.0 * delay / sample_rate:.0f} ms)"
    return NeutoneMetadata(
        name=name or model_name,
        authors=list(authors),
        short_description=short,
        long_description=(short + "." + knobs).strip(),
        technical_description=technical,
        tags=list(tags) or ["streamify"],
        version=version,
    )


def _check_texts(name: Optional[str], authors: Sequence[str], description: Optional[str], tags: Sequence[str]) -> None:
    """neutone-sdk's limits on the texts, checked before the (long) conversion."""
    problems = []
    if name is not None and not 0 < len(name) <= 30:
        problems.append(f"--name must have 1 to 30 characters ({len(name)} given)")
    if len(authors) > 5 or len(set(authors)) != len(authors):
        problems.append(f"at most 5 distinct --author ({len(authors)} given)")
    if description is not None and len(description) > 150:
        problems.append(f"--description must have at most 150 characters ({len(description)} given)")
    if len(tags) > 7 or len(set(tags)) != len(tags):
        problems.append(f"at most 7 distinct --tag ({len(tags)} given)")
    if problems:
        raise StreamingError("streamify: export_neutone: " + "; ".join(problems) + " (Neutone's metadata limits)")


def play_like_plugin(module, x: Tensor, daw_rate: int, buffer_size: int) -> Tensor:
    """Run a loaded ``.nm`` module as the Neutone FX plugin does: rate and buffer size set, reset, then
    ``forward`` per DAW buffer (each output copied out: the module returns a view of its own buffer).

    Shape:
        ``x``: ``[channels, time]`` at ``daw_rate`` (Hz), float32; returns ``[channels', buffers * buffer_size]``
        for the whole buffers of ``x`` (``channels'`` 1 for a mono model fed mono, else 2).
    """
    module.set_daw_sample_rate_and_buffer_size(int(daw_rate), int(buffer_size))
    module.reset()
    outputs = []
    with torch.no_grad():
        for start in range(0, x.shape[-1] - buffer_size + 1, buffer_size):
            outputs.append(module.forward(x[:, start : start + buffer_size].contiguous()).clone())
    return torch.cat(outputs, dim=-1)


def reported_delay(module) -> int:
    """The delay the plugin reports to the DAW for its current rate and buffer size (samples at the DAW rate)."""
    return int(module.calc_buffering_delay_samples()) + int(module.calc_model_delay_samples())


def _verify(path: Path, stream: StreamingModel, sample_rate: int, sizes: Sequence[int], where: str) -> float:
    """Stream the saved file as the plugin does at the native rate; refuse it unless it equals the offline model
    delayed by the delays it reports. Returns the largest relative error."""
    utils = import_neutone(where)
    with _quiet_neutone():
        module, _ = utils.load_neutone_model(str(path))
    # one signal for every size (a whole number of buffers of each), long enough to pass the delay and the
    # receptive field by a few buffers at the largest size
    unit = math.lcm(*sizes)
    needed = int(stream.delay) + int(stream.receptive_field) + 4 * max(max(sizes), int(stream.buffer_multiple))
    length = unit * -(-needed // unit)
    x = 0.5 * torch.randn(int(stream.in_channels), length, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        offline = stream.offline(x.unsqueeze(0))
    worst = 0.0
    for n in sizes:
        y = play_like_plugin(module, x, sample_rate, n)
        delay = reported_delay(module)
        result = compare_streamed(y.unsqueeze(0), offline, delay)
        error = result.max_rel_error
        if not error <= CHECK_TOLERANCE or result.compared_frames == 0:
            raise StreamingError(
                f"streamify: {where}: the saved file, streamed as Neutone FX does at {sample_rate} Hz with buffers of "
                f"{n}, differs from the offline model delayed by its reported {delay} samples (relative error "
                f"{error:.2g}); nothing was written"
            )
        worst = max(worst, error)
    return worst


def _wrapper(stream: StreamingModel, scale: Tensor, offset: Tensor, meta, sample_rate: int, sizes: List[int]):
    """The scripted stream inside neutone-sdk's ``WaveformToWaveformBase`` (:class:`StreamifyNeutone`)."""
    from streamify.export.dispatch import call_layers_through_interface
    from streamify.export.neutone_model import StreamifyNeutone

    with _quiet_neutone():
        call_layers_through_interface(stream)  # each layer type compiled once (docs/benchmarks.md)
        scripted = torch.jit.script(stream)
    if scale.shape[1] > 0:
        # the knobs write into the stream's own latent scale and offset: hand the scripted stream's tensors over
        # (scripting shares the tensors: found by their storage)
        shared = {tensor.data_ptr(): tensor for tensor in scripted.buffers()}
        scale, offset = shared[scale.data_ptr()], shared[offset.data_ptr()]
    channels = (int(stream.in_channels), int(stream.out_channels))
    return StreamifyNeutone(scripted, meta, sample_rate, sizes, int(stream.delay), *channels, scale, offset)


def export_neutone(
    model: nn.Module,
    path: Union[str, Path],
    example: Tensor,
    sample_rate: int,
    name: Optional[str] = None,
    authors: Sequence[str] = (),
    description: Optional[str] = None,
    tags: Sequence[str] = (),
    version: str = "1.0.0",
) -> Dict[str, object]:
    """Write a Neutone FX model file (``.nm``) that streams ``model.forward`` exactly, its delay reported.

    Args:
        model: a float32 audio-to-audio model in plain ``torch.nn`` (1 or 2 channels in and out), or a
            :class:`streamify.StreamingModel` of ratio 1. An autoencoder whose ``forward`` is
            ``decode(encode(x))`` gets three knobs (latent scale, offset, dimension; ``docs/daw.md``).
        path: the ``.nm`` file to write (written whole or not at all).
        example: an audio input ``[1, channels, time]`` for the conversion.
        sample_rate: the model's rate (Hz), its only native rate: the plugin resamples other DAW rates.
        name, authors, description, tags, version: what the plugin shows (Neutone's limits: 30 characters,
            5 authors, 150 characters, 7 tags); made from the model where not given.

    Returns:
        The file's metadata (neutone-sdk's ``metadata.json``) with ``"streamify"``: delay, buffer multiple,
        native buffer sizes and the largest relative error of the check.

    Raises:
        StreamingError: the model does not stream, is not audio to audio, has other than 1 or 2 channels, the
            texts break Neutone's limits, neutone-sdk is missing, or the saved file does not stream exactly.
    """
    where = "export_neutone"
    _check_texts(name, list(authors), description, list(tags))
    utils = import_neutone(where)
    sample_rate = int(sample_rate)
    check_float32(model, where)
    stream, scale, offset = _stream_for(model, example.detach().to(torch.float32), where)
    _check_stream(stream, sample_rate, where)
    make_portable(stream)  # the plugin's libtorch cannot load streamify's compiled kernel
    stream.reset()
    sizes = native_buffer_sizes(int(stream.buffer_multiple))
    latent = int(scale.shape[1])
    meta = _metadata(stream, sample_rate, name, authors, description, tags, version, latent)
    wrapper = _wrapper(stream, scale, offset, meta, sample_rate, sizes)
    with tempfile.TemporaryDirectory(prefix="streamify-neutone-") as folder, _quiet_neutone():
        try:
            utils.save_neutone_model(wrapper, Path(folder), dump_samples=False, submission=False, speed_benchmark=False)
        except Exception as error:
            raise StreamingError(
                f"streamify: {where}: neutone-sdk's save_neutone_model refused the model: {error}"
            ) from error
        saved = Path(folder) / "model.nm"
        check_sizes = [sizes[0]] + ([sizes[-1]] if len(sizes) > 1 else [])
        error = _verify(saved, stream, sample_rate, check_sizes, where)
        data = saved.read_bytes()
    write_atomically(path, data, where)
    info = read_neutone_info(path)
    info["streamify"] = {
        "version": __version__,
        "delay_samples": int(stream.delay),
        "buffer_multiple_samples": int(stream.buffer_multiple),
        "native_buffer_sizes": sizes,
        "checked_buffer_sizes": check_sizes,
        "max_rel_error": float(f"{error:.3g}"),
    }
    return info


def read_neutone_info(path: Union[str, Path]) -> Dict[str, object]:
    """The metadata (``metadata.json``) of a ``.nm`` file, read from its zip archive without loading it
    (a TorchScript file is a program); the audio samples it may embed are left out.

    Raises:
        StreamingError: the file is missing, not a TorchScript archive, or holds no Neutone metadata.
    """
    import json

    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.count("/") == 2 and n.endswith("/extra/metadata.json")]
            if not names:
                raise StreamingError(f"streamify: {path} is not a Neutone model (no extra/metadata.json inside)")
            info = json.loads(archive.read(names[0]).decode("utf-8"))
    except FileNotFoundError as error:
        raise StreamingError(f"streamify: {path}: no such file") from error
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError, ValueError) as error:
        raise StreamingError(f"streamify: {path} is not a readable Neutone model ({error}); export it again") from error
    info.pop("sample_sound_files", None)
    return info


def describe_neutone(path: Union[str, Path]):
    """A table of a ``.nm`` file's metadata (for ``streamify info model.nm`` and the export command)."""
    from rich.table import Table

    info = read_neutone_info(path)
    table = Table(
        title=f"{Path(path).name}: Neutone FX model (neutone-sdk {info.get('sdk_version')})", show_header=False
    )
    table.add_row("name", str(info.get("model_name")))
    table.add_row("channels", str(info.get("model_type")))
    table.add_row("native sample rates", ", ".join(f"{r} Hz" for r in info.get("native_sample_rates", [])))
    table.add_row("native buffer sizes", ", ".join(str(n) for n in info.get("native_buffer_sizes", [])))
    knobs = [p for p in info.get("neutone_parameters", {}).values() if p.get("used")]
    table.add_row("knobs", "; ".join(f"{p['name']}: {p['description']}" for p in knobs) or "none")
    table.add_row("details", str(info.get("technical_description")))
    table.caption = "The plugin reports buffering delay + model delay to the DAW, which compensates them (docs/daw.md)."
    return table
