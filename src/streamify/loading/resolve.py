"""The one place a model spec becomes a model, for every command, :mod:`streamify.host` and :mod:`streamify.serve`.

A spec is, checked in this order:

* an ``nn.Module`` (Python callers): used as it is;
* a ``.ts`` (nn~ TorchScript), ``.onnx`` (streamify's explicit-state ONNX) or ``.nm`` (Neutone FX) file: an
  exported model, already streaming, not loaded here (a TorchScript file is a program; hosts load it);
* ``"demo"`` or ``"pretrained"``: the built-in models;
* an acids-rave run: its folder, or a ``.ckpt`` with ``config.gin`` beside it or up to two folders above
  (:mod:`streamify.models.rave_runs`);
* a checkpoint of ``streamify train`` (``.ckpt``) or RAVE weights (``.pt``, ``.pth``);
* ``package.module:factory`` (:mod:`streamify.loading.pytorch`).

:func:`resolve` gives a :class:`Resolved`; :func:`to_stream` turns a PyTorch one into its stream, the one
conversion every command shares: load -> channels -> example -> convert. Every refusal is a
:class:`StreamingError` of one line saying what and what to do.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Dict, Iterator, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from streamify.layers.base import StreamingError, StreamingModule
from streamify.loading.pytorch import BUILTIN, CHECKPOINT_SUFFIXES, load_model, load_weights

#: audio samples of the example a model is converted on, where a command does not say
EXAMPLE_LENGTH = 32768


class Kind(str, Enum):
    """What a spec names."""

    module = "module"
    builtin = "built-in"
    factory = "factory"
    checkpoint = "checkpoint"
    rave_run = "acids-rave run"
    torchscript = "TorchScript"
    onnx = "ONNX"
    neutone = "Neutone"

    @property
    def exported(self) -> bool:
        """Whether it is an exported file (streams as it is, run by a host, never converted)."""
        return self in (Kind.torchscript, Kind.onnx, Kind.neutone)


#: exported files, by suffix
FILE_KINDS: Dict[str, Kind] = {".ts": Kind.torchscript, ".onnx": Kind.onnx, ".nm": Kind.neutone}


@dataclass
class Resolved:
    """A resolved model spec.

    Attributes:
        spec: what was named (a name, a path, a factory; a module's class name).
        kind: what it is.
        module: the PyTorch model, in eval mode where it was loaded here (None for an exported file). For an
            acids-rave run: its :class:`~streamify.export.rave_methods.RaveMethods` (``encode``, ``decode``,
            ``forward`` as ``rave export`` computes them, random draws at their expected values).
        path: the file of an exported model, or the checkpoint of an acids-rave run (else None).
        channels: input channels: given, else the stream's own, else its first conv's (None for a file:
            recorded in it).
        channels_guessed: whether ``channels`` were guessed from the first conv.
        sample_rate: Hz: given, else the model's ``sample_rate`` (None when unknown).
        streaming: whether it streams as it is (a ``StreamingModule`` or an exported file): nothing to convert.
        delay: the stream's delay in output frames where known without converting (a ``StreamingModule``).
    """

    spec: str
    kind: Kind
    module: Optional[nn.Module] = None
    path: Optional[Path] = None
    channels: Optional[int] = None
    channels_guessed: bool = False
    sample_rate: Optional[int] = None
    streaming: bool = False
    delay: Optional[int] = None


def kind_of(spec: Union[str, Path, nn.Module]) -> Kind:
    """What ``spec`` names, from its form (an acids-rave run: from its ``config.gin``); nothing is loaded."""
    if isinstance(spec, nn.Module):
        return Kind.module
    text = str(spec)
    suffix = Path(text).suffix.lower()
    if suffix in FILE_KINDS:
        return FILE_KINDS[suffix]
    if text in BUILTIN:
        return Kind.builtin
    from streamify.models.rave_runs import is_rave_run

    if is_rave_run(text):
        return Kind.rave_run
    if text.endswith(CHECKPOINT_SUFFIXES) and ":" not in text:
        return Kind.checkpoint
    return Kind.factory


def resolve(
    spec: Union[str, Path, nn.Module, Resolved],
    weights: Optional[Union[str, Path]] = None,
    *,
    channels: Optional[int] = None,
    sample_rate: Optional[int] = None,
) -> Resolved:
    """Load the PyTorch model ``spec`` names (with ``weights``), or find the exported file it names.

    Args:
        spec: see the module docstring (a :class:`Resolved` is returned as it is).
        weights: a state dict for a PyTorch model (``torch.save``, read with ``weights_only``).
        channels: the model's input channels (default: its stream's, else its first conv's, else 1).
        sample_rate: the model's rate in Hz, where it does not record one.

    Raises:
        StreamingError: a missing file, options that do not apply to the kind, or a model that does not load.
    """
    if isinstance(spec, Resolved):
        return spec
    kind = kind_of(spec)
    if kind.exported:
        return _exported(str(spec), kind, weights, channels)
    if kind is Kind.rave_run:
        return _rave_run(str(spec), weights, channels, sample_rate)
    if isinstance(spec, nn.Module):
        module, name = spec, type(spec).__name__
        if weights is not None:
            load_weights(module, weights, name)
    else:
        module, name = _load(str(spec), weights), str(spec)
    streaming = isinstance(module, StreamingModule)
    own = getattr(module, "in_channels", None) if streaming else None
    guessed = channels is None and own is None
    channels = channels or own or guess_channels(module)
    if sample_rate is None:
        rate = getattr(module, "sample_rate", None)
        sample_rate = int(rate) if isinstance(rate, (int, float)) and rate > 0 else None
    delay = int(module.delay) if streaming else None
    return Resolved(name, kind, module, None, int(channels), guessed, sample_rate, streaming, delay)


def _load(spec: str, weights: Optional[Union[str, Path]]) -> nn.Module:
    try:
        return load_model(spec, weights)
    except StreamingError:
        raise
    except (OSError, RuntimeError, ValueError, KeyError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise StreamingError(f"streamify: cannot load model {spec!r}: {first}") from error


def _exported(spec: str, kind: Kind, weights: Optional[Union[str, Path]], channels: Optional[int]) -> Resolved:
    path = Path(spec)
    if not path.is_file():
        state = "is a folder, not a file" if path.exists() else "does not exist"
        raise StreamingError(f"streamify: model file {spec} {state}; give the path of an exported model file")
    given = [name for name, value in (("--weights", weights), ("--channels", channels)) if value is not None]
    if given:
        raise StreamingError(
            f"streamify: {', '.join(given)} do not apply to the exported {kind.value} file {spec}: it holds its "
            "weights and records its channels; leave them out"
        )
    return Resolved(spec, kind, None, path, streaming=True)


def check_run_options(spec: str, weights: object, channels: object, sample_rate: object) -> None:
    """Refuse options that an acids-rave run sets itself (its ``config.gin`` and checkpoint)."""
    options = (("--weights", weights), ("--channels", channels), ("--sample-rate", sample_rate))
    given = [name for name, value in options if value is not None]
    if given:
        raise StreamingError(
            f"streamify: {', '.join(given)} do not apply to an acids-rave run ({spec}): its config.gin and "
            "checkpoint give the weights, channels and sample rate; leave them out"
        )


def _rave_run(spec: str, weights: object, channels: object, sample_rate: object) -> Resolved:
    from streamify.export.rave_methods import RaveMethods
    from streamify.models.rave_runs import load_run

    check_run_options(spec, weights, channels, sample_rate)
    run = load_run(spec)
    module = RaveMethods(run.model).eval()
    return Resolved(spec, Kind.rave_run, module, run.checkpoint, run.channels, False, run.sample_rate)


def guess_channels(model: nn.Module) -> int:
    """The input channels a model takes, guessed as those of its first conv (module order); 1 without one."""
    from streamify.convert.trial_runs import first_conv

    found = first_conv(model)
    return int(found[1].in_channels) if found is not None else 1


def example(channels: int, length: int = EXAMPLE_LENGTH, dtype: torch.dtype = torch.float32) -> Tensor:
    """The seeded random example ``[1, channels, length]`` every command converts a model on (seed 0)."""
    generator = torch.Generator().manual_seed(0)
    return torch.randn(1, channels, length, generator=generator, dtype=dtype)


def to_stream(
    resolved: Resolved, method: str = "forward", length: int = EXAMPLE_LENGTH, dtype: torch.dtype = torch.float32
) -> StreamingModule:
    """The stream of a resolved PyTorch model's ``method``: itself if it streams, else its conversion on
    :func:`example` (an acids-rave run: with its draws at their expected values, as ``streamify export``).

    Raises:
        StreamingError: an exported file (it streams in a host), the converter's refusal, or the model's own
            failure on the example (a wrong channel count).
    """
    if resolved.module is None:
        raise StreamingError(
            f"streamify: {resolved.spec} is an exported {resolved.kind.value} file: it streams as it is in a host "
            "(streamify process / live / serve); convert its source model instead"
        )
    channels = int(resolved.channels or 1)
    if resolved.kind is Kind.rave_run:
        from streamify.export.rave import convert_with_draws

        x = example(channels, length, dtype)
        model = resolved.module.to(dtype)
        with inputs_checked(model, x, [method]):
            return convert_with_draws(model, x, [method])[0].stream
    return streaming_model(resolved.module, channels, length, method, dtype)


def streaming_model(
    model: nn.Module,
    channels: int,
    length: int = EXAMPLE_LENGTH,
    method: str = "forward",
    dtype: torch.dtype = torch.float32,
) -> StreamingModule:
    """``model`` itself if it already streams, else its conversion on :func:`example` ``[1, channels, length]``.

    Raises:
        StreamingError: the conversion's refusal, or the model's own failure on the example (a wrong channel count).
    """
    if isinstance(model, StreamingModule):
        return model.to(dtype)
    from streamify.convert import convert

    x = example(channels, length, dtype)
    model = model.to(dtype)
    with inputs_checked(model, x, [method]):
        return convert(model, x, method=method)


def input_refusal(model: nn.Module, x: Tensor, methods: Sequence[str]) -> Optional[StreamingError]:
    """Why ``model`` fails on ``x`` offline (a StreamingError for the command line), or None if it runs."""
    from streamify.cli_errors import one_line
    from streamify.convert.trial_runs import first_conv

    for method in methods:
        try:
            with torch.no_grad():
                getattr(model, method)(x)
        except Exception as error:
            found = first_conv(model)
            if found is not None and found[1].in_channels != x.size(1):
                takes = found[1].in_channels
                hint = f"its first conv ({found[0]}) takes {takes} channels: pass --channels {takes}"
            else:
                hint = "check --channels and --length"
            return StreamingError(
                f"streamify: the model's {method} fails on an input of shape {list(x.shape)} "
                f"(--channels {x.size(1)}, --length {x.size(-1)}): {type(error).__name__}: "
                f"{one_line(str(error), 300)}; {hint}"
            )
    return None


@contextlib.contextmanager
def inputs_checked(model: nn.Module, x: Tensor, methods: Sequence[str]) -> Iterator[None]:
    """Turn a failure inside the block into an :func:`input_refusal` where the model itself fails on ``x``
    (a wrong ``--channels``); other failures pass through unchanged."""
    try:
        yield
    except Exception as error:
        # the converter's own refusals stand, unless the model cannot even run on the example: then
        # the command line's options (--channels, --length) are the cause, and the refusal says so
        refusal = input_refusal(model, x, methods)
        if refusal is not None:
            raise refusal from error
        raise
