"""The model inside a Neutone FX file: a ``WaveformToWaveformBase`` around a scripted streaming model.

neutone-sdk's ``SampleQueueWrapper`` (what the plugin runs) feeds this module buffers of one of its
native sizes at its native rate, ``[channels, n]``; the streaming model returns the next ``n``
samples of the offline output, ``delay`` samples late, which :meth:`calc_model_delay_samples`
reports. Importing this module needs neutone-sdk (``streamify.export.neutone`` imports it on demand);
loading a saved file needs neither neutone-sdk nor streamify, only torch.
"""

from dataclasses import dataclass, field
from typing import Dict, List, Union

import torch
from neutone_sdk import ContinuousNeutoneParameter, NeutoneParameter, WaveformToWaveformBase
from torch import Tensor, nn

from streamify.export.neutone import KNOB_DIMENSION, KNOB_OFFSET, KNOB_SCALE, OFFSET_MAX, SCALE_MAX


@dataclass
class NeutoneMetadata:
    """What the plugin and the Neutone website show of a model (neutone-sdk's limits in brackets)."""

    name: str  # [30 characters]
    authors: List[str]  # [5]
    short_description: str  # [150 characters]
    long_description: str  # [500 characters]
    technical_description: str  # [500 characters]
    tags: List[str] = field(default_factory=list)  # [7]
    version: str = "1.0.0"
    citation: str = ""  # [300 characters]


class StreamifyNeutone(WaveformToWaveformBase):
    """A streamify stream as a Neutone FX model.

    ``stream`` is a scripted :class:`streamify.StreamingModel` of ratio 1 (audio in, audio out),
    ``[1, in_channels, n] -> [1, out_channels, n]`` for ``n`` a multiple of its buffer multiple.
    With ``latent_channels > 0`` the stream computes ``decode(encode(x) * scale + offset)`` and
    ``latent_scale`` / ``latent_offset`` (``[1, latent_channels, 1]``) must be the very tensors the
    stream reads: the knobs write into them before each buffer.

    Shape:
        ``do_forward_pass``: ``[in_channels, n]`` -> ``[out_channels, n]``, ``n`` one of
        :meth:`get_native_buffer_sizes`, at :meth:`get_native_sample_rates` (Hz).
    """

    # TorchScript reads the types of attributes that may be empty from the class itself (not its bases)
    neutone_parameters_metadata: Dict[str, Dict[str, Union[int, float, str, bool, List[str], List[int]]]]
    remapped_params: Dict[str, Tensor]
    neutone_parameter_names: List[str]
    meta_authors: List[str]
    meta_tags: List[str]
    native_buffer_sizes: List[int]
    knob_names: List[str]

    def __init__(
        self,
        stream: nn.Module,
        meta: NeutoneMetadata,
        sample_rate: int,
        buffer_sizes: List[int],
        delay_samples: int,
        in_channels: int,
        out_channels: int,
        latent_scale: Tensor,
        latent_offset: Tensor,
    ) -> None:
        # read by the base constructor (metadata, parameters), so set before it
        self.meta_name = meta.name
        self.meta_authors = list(meta.authors)
        self.meta_short = meta.short_description
        self.meta_long = meta.long_description
        self.meta_technical = meta.technical_description
        self.meta_tags = list(meta.tags)
        self.meta_version = meta.version
        self.meta_citation = meta.citation
        self.latent_channels = int(latent_scale.shape[1]) if latent_scale.numel() > 0 else 0
        self.input_mono = in_channels == 1
        self.output_mono = out_channels == 1
        self.native_sample_rate = int(sample_rate)
        self.native_buffer_sizes = [int(n) for n in buffer_sizes]
        self.delay_samples = int(delay_samples)
        self.knob_names = [KNOB_SCALE, KNOB_OFFSET, KNOB_DIMENSION]
        self.scale_max = SCALE_MAX
        self.offset_max = OFFSET_MAX
        super().__init__(stream)
        # shared with the stream (the same tensors): the knobs edit the latents in place
        self.latent_scale = latent_scale
        self.latent_offset = latent_offset

    def get_model_name(self) -> str:
        return self.meta_name

    def get_model_authors(self) -> List[str]:
        return self.meta_authors

    def get_model_short_description(self) -> str:
        return self.meta_short

    def get_model_long_description(self) -> str:
        return self.meta_long

    def get_technical_description(self) -> str:
        return self.meta_technical

    def get_tags(self) -> List[str]:
        return self.meta_tags

    def get_model_version(self) -> str:
        return self.meta_version

    def get_citation(self) -> str:
        return self.meta_citation

    def is_experimental(self) -> bool:
        return False

    def get_neutone_parameters(self) -> List[NeutoneParameter]:
        if self.latent_channels == 0:
            # neutone-sdk's metadata schema needs one parameter; an unused one shows no knob
            return [ContinuousNeutoneParameter("none", "this model has no control", 0.0, used=False)]
        return [
            ContinuousNeutoneParameter(
                KNOB_SCALE, f"multiplies the latents by 0 to {SCALE_MAX:g} (middle: unchanged)", 0.5
            ),
            ContinuousNeutoneParameter(
                KNOB_OFFSET, f"adds -{OFFSET_MAX:g} to {OFFSET_MAX:g} to the latents (middle: unchanged)", 0.5
            ),
            ContinuousNeutoneParameter(
                KNOB_DIMENSION,
                f"which latent the edit acts on: 0 all, else one of the {self.latent_channels} (ordered)",
                0.0,
            ),
        ]

    @torch.jit.export
    def is_input_mono(self) -> bool:
        return self.input_mono

    @torch.jit.export
    def is_output_mono(self) -> bool:
        return self.output_mono

    @torch.jit.export
    def get_native_sample_rates(self) -> List[int]:
        return [self.native_sample_rate]

    @torch.jit.export
    def get_native_buffer_sizes(self) -> List[int]:
        return self.native_buffer_sizes

    @torch.jit.export
    def calc_model_delay_samples(self) -> int:
        """The stream's exact latency, in samples at the native rate."""
        return self.delay_samples

    def set_model_sample_rate_and_buffer_size(self, sample_rate: int, n_samples: int) -> bool:
        """Compile the stream for ``n_samples`` now (two runs on silence), off the audio thread: TorchScript
        optimises a function at its second call. The wrapper resets the stream right after."""
        for _ in range(2):
            self.model(torch.zeros(1, 1 if self.input_mono else 2, n_samples))
        return True

    def reset_model(self) -> bool:
        """A fresh stream: empty caches, the next buffer is the start of a new signal."""
        self.model.reset(None)
        return True

    def _edit_latents(self, params: Dict[str, Tensor]) -> None:
        scale = float(params[self.knob_names[0]].item()) * self.scale_max
        offset = (float(params[self.knob_names[1]].item()) - 0.5) * 2.0 * self.offset_max
        dimension = int(round(float(params[self.knob_names[2]].item()) * self.latent_channels))
        if dimension == 0:
            self.latent_scale.fill_(scale)
            self.latent_offset.fill_(offset)
        else:
            self.latent_scale.fill_(1.0)
            self.latent_offset.fill_(0.0)
            self.latent_scale[0, dimension - 1, 0] = scale
            self.latent_offset[0, dimension - 1, 0] = offset

    def do_forward_pass(self, x: Tensor, params: Dict[str, Tensor]) -> Tensor:
        if self.latent_channels > 0:
            self._edit_latents(params)
        return self.model(x.unsqueeze(0)).squeeze(0)
