"""``streamify export RUN``: an acids-rave training run to an nn~ file that streams ``rave export``'s methods.

The run's model is built by acids-rave's own classes (:mod:`streamify.models.rave_runs`), its three
methods computed offline as ``rave export`` does (:class:`~streamify.export.rave_methods.RaveMethods`),
each converted by :func:`streamify.convert` and checked the way nn~ runs it (:func:`export_nn_tilde`).
The file's module (:class:`RaveNnTilde`) adds what the RAVE VST and the Max/Pd patches built around
``rave export``'s files use: the attributes ``learn_target``, ``reset_target``, ``learn_source``,
``reset_source``, the method ``set_stereo_mode``, and RAVE's inlet and outlet labels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from streamify.export.chaining import starts_at_signal
from streamify.export.methods import ConvertedMethod, convert_methods
from streamify.export.nn_tilde import TYPE_BOOL, NnTildeModule, export_nn_tilde
from streamify.export.rave_methods import (
    DEFAULT_FIDELITY,
    NOISE_MARK,
    RaveMethods,
    noise_gain_names,
    set_noise_gain,
)
from streamify.layers.base import StreamingError, StreamingModule
from streamify.runtime.model import StreamingModel

#: the attributes of ``rave export``'s files (booleans; they act on AdaIN layers, which this export refuses)
RAVE_ATTRIBUTES = ("learn_target", "reset_target", "learn_source", "reset_source")
METHODS = ("encode", "decode", "forward")


class RaveNnTilde(NnTildeModule):
    """The file's module for a RAVE run: nn~'s contract (:class:`NnTildeModule`) and ``rave export``'s extras.

    * ``get_attributes()`` lists ``learn_target``, ``reset_target``, ``learn_source``, ``reset_source``
      (bool, with ``get_A``/``set_A``/``A_params``), then ``reset`` and ``reset_item``;
    * ``set_stereo_mode(stereo)`` (a tensor, as ``rave export``'s signature takes it), for the RAVE VST:
      ``encode`` and ``forward`` of a mono model take the first channel of a ``[B, 2, n]`` buffer; ``decode``
      returns the two halves of its batch as two channels (``[2 B, L, m]`` -> ``[B, 2, n]``); ``forward``
      returns its mono output on both channels.
    """

    learn_target: bool
    reset_target: bool
    learn_source: bool
    reset_source: bool
    stereo_mode: bool
    audio_channels: int
    encode_index: int
    decode_index: int
    forward_index: int

    def __init__(
        self, streams: Sequence[StreamingModule], names: Sequence[str], sample_rate: int, info: Dict[str, str]
    ) -> None:
        super().__init__(streams, names, sample_rate, info)
        self._attributes = list(RAVE_ATTRIBUTES) + ["reset", "reset_item"]
        for name in RAVE_ATTRIBUTES:
            self.register_buffer(f"{name}_params", torch.tensor([TYPE_BOOL], dtype=torch.long))
        self.learn_target = False
        self.reset_target = False
        self.learn_source = False
        self.reset_source = False
        self.stereo_mode = False
        names = list(names)
        self.encode_index = names.index("encode") if "encode" in names else -1
        self.decode_index = names.index("decode") if "decode" in names else -1
        self.forward_index = names.index("forward") if "forward" in names else -1
        audio = [s for s, n in zip(streams, names) if n in ("encode", "forward")]
        self.audio_channels = int(audio[0].in_channels) if audio else int(streams[0].out_channels)

    @torch.jit.export
    def set_stereo_mode(self, stereo: Tensor) -> None:
        """The RAVE VST's stereo mode (see the class docstring)."""
        self.stereo_mode = bool(stereo)

    @torch.jit.export
    def get_learn_target(self) -> bool:
        return self.learn_target

    @torch.jit.export
    def set_learn_target(self, value: bool) -> int:
        self.learn_target = value
        return 0

    @torch.jit.export
    def get_reset_target(self) -> bool:
        return self.reset_target

    @torch.jit.export
    def set_reset_target(self, value: bool) -> int:
        self.reset_target = value
        return 0

    @torch.jit.export
    def get_learn_source(self) -> bool:
        return self.learn_source

    @torch.jit.export
    def set_learn_source(self, value: bool) -> int:
        self.learn_source = value
        return 0

    @torch.jit.export
    def get_reset_source(self) -> bool:
        return self.reset_source

    @torch.jit.export
    def set_reset_source(self, value: bool) -> int:
        self.reset_source = value
        return 0

    def before_call(self, index: int, x: Tensor) -> Tensor:
        takes_audio = index == self.encode_index or index == self.forward_index
        if self.stereo_mode and takes_audio and self.audio_channels == 1 and x.size(1) == 2:
            return x[:, :1]
        return x

    def after_call(self, index: int, y: Tensor) -> Tensor:
        if not self.stereo_mode:
            return y
        if index == self.decode_index:
            half = y.size(0) // 2
            if half > 0:
                return torch.cat([y[:half], y[half : 2 * half]], 1)
        elif index == self.forward_index and self.audio_channels == 1:
            return torch.cat([y, y], 1)
        return y


def rave_labels(methods: RaveMethods) -> Dict[str, Tuple[List[str], List[str]]]:
    """Inlet and outlet labels as ``rave export`` writes them."""
    audio = [f"(signal) Channel {i}" for i in range(1, methods.channels + 1)]
    latents = [f"(signal) Latent dimension {i}" for i in range(1, methods.latent_size + 1)]
    return {"encode": (audio, latents), "decode": (latents, audio), "forward": (audio, audio)}


def convert_with_draws(model: RaveMethods, example: Tensor, methods: Sequence[str]) -> List[ConvertedMethod]:
    """Convert each method with its random draws kept (drawn per buffer, :func:`streamify.convert` with
    ``allow_random``), then switch them to their expected values (``noise_gain`` 0) in the stream and in its
    offline model: deterministic streams. Each stream records the names of its gains (``noise_gain_names``)."""
    where = "export RAVE run"
    set_noise_gain(model, NOISE_MARK)
    try:
        converted = convert_methods(model, example, methods, where=where, allow_random=True, verify=False)
    finally:
        set_noise_gain(model, 0.0)
    for method in converted:
        draws_off(method.stream, f"{where}: method {method.name!r}")
    return converted


def draws_off(stream: StreamingModel, where: str = "export RAVE run") -> List[str]:
    """Find the noise gains of a stream converted from :class:`RaveMethods` with its gains at
    :data:`NOISE_MARK`, record their names (``stream.noise_gain_names``) and set them to 0, in the stream and
    in its offline model (the converter's copy): a deterministic stream. Returns the names."""
    names = noise_gain_names(stream)
    if not names:
        raise StreamingError(f"streamify: {where}: internal error: the noise gains are not in the converted stream")
    object.__setattr__(stream, "noise_gain_names", names)
    # the tensors themselves: the nn~ export wraps layers and streams (export/dispatch.py, chaining.py), which
    # moves the buffers' paths in the scripted file, not the tensors (scripting shares them)
    object.__setattr__(stream, "noise_gain_tensors", [stream.get_buffer(name) for name in names])
    set_noise_gain(stream, 0.0, names)
    set_noise_gain(stream.original, 0.0)  # the converter's copy of the model: the offline reference
    stream.reset()
    return names


def convert_checked(model: RaveMethods, example: Tensor, methods: Sequence[str]) -> List[ConvertedMethod]:
    """:func:`convert_with_draws`, each stream then checked exactly against its offline method."""
    from streamify.convert.verify import verify  # the converter's check, only where a model is converted

    converted = convert_with_draws(model, example, methods)
    for method in converted:
        verify(method.stream, method.example, method.stream.layer_sources)
        method.stream.reset()
    return converted


def _switch_draws(converted: Sequence[ConvertedMethod], gain: float):
    """The ``before_save`` hook: the noise gains of each method's stream in the scripted file set to ``gain``."""

    def switch(scripted: torch.jit.ScriptModule) -> None:
        for index, method in enumerate(converted):
            wanted = {tensor.data_ptr() for tensor in method.stream.noise_gain_tensors}
            found = {
                name: buffer
                for name, buffer in scripted.named_buffers()
                if name.startswith(f"stream_{index}.") and buffer.data_ptr() in wanted
            }
            if {buffer.data_ptr() for buffer in found.values()} != wanted:
                raise StreamingError(f"streamify: export RAVE run: internal error: {method.name!r} lost its gains")
            with torch.no_grad():
                for buffer in found.values():
                    buffer.fill_(gain)

    return switch


def export_rave_run(
    run: Union[str, Path],
    path: Union[str, Path],
    fidelity: float = DEFAULT_FIDELITY,
    methods: Sequence[str] = METHODS,
    noise: bool = True,
    length: int = 2**15,
    tune_buffers: Optional[Sequence[int]] = None,
    tune_batches: Sequence[int] = (1,),
) -> Dict[str, object]:
    """Write the nn~ file of an acids-rave run folder or checkpoint (see the module docstring).

    Args:
        run: the run folder (it holds ``config.gin``) or a checkpoint in it.
        path: the ``.ts`` file to write.
        fidelity: kept share of the latent variance, as ``rave export --fidelity`` (latent size).
        methods: the methods to export.
        noise: draw the posterior sample and the noise of the cut dimensions as ``rave export`` does; False:
            their expected values (posterior mean, zeros), a deterministic file. The checks run without them.
        length: audio samples of the conversion example.

    Returns:
        The metadata written into the file.

    Raises:
        StreamingError: the run cannot be found, built or loaded, or a method does not stream exactly.
    """
    from streamify.models.rave_runs import load_run

    loaded = load_run(run)
    model = RaveMethods(loaded.model, fidelity)
    example = torch.randn(1, model.channels, length, generator=torch.Generator().manual_seed(0))
    extra = {
        "rave": {
            "run": loaded.name,
            "config": loaded.config.name,
            "checkpoint": loaded.checkpoint.name,
            "fidelity": fidelity,
            "latent_size": model.latent_size,
            "full_latent_size": model.full_latent_size,
            "posterior": "sample" if noise else "mean",
            "cut_dimensions": "N(0, 1) noise" if noise else "zeros",
            "checked_with": "posterior mean and zeros in the cut dimensions (noise_gain 0)",
        }
    }
    converted = convert_checked(model, example, methods)
    extra["rave"]["noise_gain_buffers"] = {  # type: ignore[index]
        # where they are in the scripted file: a latent-fed method's stream is wrapped (export/chaining.py)
        m.name: [
            f"stream_{i}.stream.{'model.' if starts_at_signal(m) else ''}{name}" for name in m.stream.noise_gain_names
        ]
        for i, m in enumerate(converted)
    }
    return export_nn_tilde(
        model,
        path,
        example,
        methods=list(methods),
        converted=converted,
        before_save=_switch_draws(converted, 1.0 if noise else 0.0),
        sample_rate=model.sample_rate,
        tune_buffers=tune_buffers,
        tune_batches=tune_batches,
        wrapper_base=RaveNnTilde,
        labels=rave_labels(model),
        extra_info=extra,
    )


__all__ = [
    "METHODS",
    "RAVE_ATTRIBUTES",
    "RaveNnTilde",
    "convert_checked",
    "convert_with_draws",
    "draws_off",
    "export_rave_run",
    "rave_labels",
]
