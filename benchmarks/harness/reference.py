"""The benchmark's reference models: streamify's own RAVE-v2-style model, and a cached_conv twin of it.

The models are :func:`streamify.models.rave` (``rave.py``, ``blocks.py``, ``pqmf.py``) with
deterministic random weights, weight-normed as trained (:func:`folded_copy` gives the deployed
form) and without the noise synthesizer (``use_noise = False``: every output is deterministic):

* :data:`RAVE_V2`: the ``v2`` preset (RAVE v2 as published, ``configs/v2.gin``): 48 kHz, 16 bands,
  capacity 96, ratios 4, 4, 4, 2 (total ratio 2048), latent 128; about 31.5 M parameters.
* :data:`RAVE_V2_SMALL`: the ``v2`` preset reduced to capacity 48 and ratios 4, 4, 2 (total ratio
  512, dilations ``(1, 3, 9), (1, 3, 9), (1, 3)``), still 48 kHz and latent 128.
* :data:`RAVE_TINY`: the same architecture, tiny (ratio 64), for tests and smoke runs.

:func:`build_cached_conv` builds the same architecture with ``cached_conv``'s own layers
(``cc.use_cached_conv(True)`` before construction, ``cumulative_delay`` threaded by hand,
``AlignBranches`` for the residuals, each conv padded as the package model pads it, amplitude
modulation ``tanh(wave) * sigmoid(amplitude)``) and :func:`load_same_weights` copies the package
model's folded weights into it, so that both compute the same math.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Tuple

import torch
from torch import Tensor, nn

from streamify.models import rave
from streamify.models.blocks import SLOPE, conv_padding
from streamify.models.presets import V2, RaveConfig
from streamify.models.rave import RAVE


@dataclass(frozen=True)
class ReferenceConfig:
    """A reference model of the benchmark: its name, the package preset it builds and the seed of its weights."""

    name: str
    preset: RaveConfig
    seed: int = 0

    @property
    def total_ratio(self) -> int:
        """Audio samples per latent frame (the buffer multiple of a streaming model)."""
        return self.preset.ratio

    @property
    def sample_rate(self) -> int:
        """Hz."""
        return self.preset.sample_rate


RAVE_V2 = ReferenceConfig("rave-v2", V2)
RAVE_V2_SMALL = ReferenceConfig(
    "rave-v2-small",
    V2.scaled(name="v2-small", capacity=48, ratios=(4, 4, 2), dilations=((1, 3, 9), (1, 3, 9), (1, 3))),
)
#: a tiny model of the same architecture, for tests and smoke runs (ratio 64)
RAVE_TINY = ReferenceConfig(
    "rave-tiny",
    V2.scaled(
        name="v2-tiny",
        capacity=4,
        ratios=(2, 2),
        dilations=((1, 3), (1,)),
        latent=8,
        pqmf_taps=64,
        noise_bands=2,
        noise_ratios=(2,),
    ),
)

CONFIGS: Dict[str, ReferenceConfig] = {c.name: c for c in (RAVE_V2, RAVE_V2_SMALL, RAVE_TINY)}


def _deterministic(model: RAVE) -> RAVE:
    model.use_noise = False
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model.eval()


def build_reference(config: ReferenceConfig = RAVE_V2, seed: Optional[int] = None) -> RAVE:
    """The package's RAVE model, weight-normed, with deterministic random weights, no noise, in eval mode.

    The global random state is left untouched. Biases are drawn small so that activations
    stay in a realistic range through the depth of the network.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed if seed is None else seed)
        model = rave(config.preset, weight_norm=True)
        with torch.no_grad():
            for module in model.modules():
                bias = getattr(module, "bias", None)
                if isinstance(bias, nn.Parameter):
                    bias.mul_(0.1)
    return _deterministic(model)


def folded_copy(model: RAVE) -> RAVE:
    """A copy of ``model`` with every weight norm folded into a plain weight (the deployed form).

    Built afresh without weight norm and loaded with the computed weights: removing the
    parametrizations of a deep copy would alter the class the copy shares with ``model``.
    """
    folded = rave(model.config, causal=model.causal, weight_norm=False)
    every = [m for m in model.modules() if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d))]
    _copy_weights([m for m in folded.modules() if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d))], every)
    folded.use_noise = model.use_noise
    for parameter in folded.parameters():
        parameter.requires_grad_(False)
    return folded.eval()


def time_convs(model: nn.Module) -> List[nn.Module]:
    """The ``Conv1d`` / ``ConvTranspose1d`` modules a forward pass calls, in forward (registration) order.

    A RAVE model without its noise synthesizer (``use_noise`` False) never calls the synthesizer's convs.
    """
    unused = set()
    noise = getattr(model, "noise", None)
    if isinstance(noise, nn.Module) and not getattr(model, "use_noise", True):
        unused = set(noise.modules())
    return [m for m in model.modules() if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d)) and m not in unused]


# ---------------------------------------------------------------------------------------------- counts


def _deployed_sizes(model: RAVE) -> List[Tuple[int, int]]:
    """``(elements, bytes)`` of the deployed weights of each conv a forward pass calls (weight plus bias)."""
    sizes = []
    for conv in time_convs(folded_copy(model)):
        parameters = list(conv.parameters(recurse=False))
        sizes.append((sum(p.numel() for p in parameters), sum(p.numel() * p.element_size() for p in parameters)))
    return sizes


def count_parameters(model: RAVE) -> int:
    """Parameters of the deployed model (a weight norm's ``g`` and ``v`` count as the one weight they make)."""
    return sum(elements for elements, _ in _deployed_sizes(model))


def weight_bytes(model: RAVE) -> int:
    """Bytes of the deployed weights (read once per streaming call)."""
    return sum(nbytes for _, nbytes in _deployed_sizes(model))


def weight_tensor_bytes(model: RAVE) -> List[int]:
    """Bytes of the deployed weights per conv (its weight plus its bias), in forward order.

    One entry per conv a forward pass calls: a call's conv reads its bias in the same op as its weight.
    The entries sum to :func:`weight_bytes`.
    """
    return [nbytes for _, nbytes in _deployed_sizes(model)]


def count_macs(model: nn.Module, length: int, channels: int = 1) -> Dict[str, int]:
    """Multiply-accumulates of the convs of one forward pass over ``length`` samples, per conv (forward order)."""
    counts: Dict[str, int] = {}
    names = {m: n for n, m in model.named_modules()}
    handles = []

    def hook(module: nn.Module, inputs, output: Tensor) -> None:
        x = inputs[0]
        k = module.kernel_size[0]
        if isinstance(module, nn.ConvTranspose1d):
            macs = x.size(0) * x.size(-1) * module.in_channels * (module.out_channels // module.groups) * k
        else:
            macs = output.size(0) * output.size(-1) * module.out_channels * (module.in_channels // module.groups) * k
        counts[names[module]] = counts.get(names[module], 0) + int(macs)

    for module in time_convs(model):
        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(torch.zeros(1, channels, length))
    finally:
        for handle in handles:
            handle.remove()
    return counts


def _second(model: RAVE) -> int:
    """About one second of audio, in a whole number of latent frames (samples)."""
    return model.ratio * max(1, math.ceil(model.sample_rate / model.ratio))


def macs_per_second(model: RAVE) -> float:
    """Multiply-accumulates per second of audio (counted on a whole number of latent frames)."""
    length = _second(model)
    return sum(count_macs(model, length).values()) * model.sample_rate / length


# ---------------------------------------------------------------------------------------------- exact context


def _conv_geometry(model: nn.Module) -> Iterator[Tuple[str, int, int, int]]:
    """``(kind, span, stride, left_pad)`` of every conv a forward pass calls, in forward order.

    The left padding of a conv is its own plus that of its wrapper: the package's ``Conv`` and
    ``PQMFAnalysis`` hold the conv as ``.conv`` and pad with ``F.pad(x, self.padding)`` first.
    Residual skips and pointwise ops never widen a window. Non-causal models only (a causal
    model crops its transposed convs' outputs).
    """
    if getattr(model, "causal", False):
        raise ValueError("the geometry walk covers non-causal models only (causal ones crop their outputs)")
    wrapper_pad: Dict[nn.Module, int] = {}
    for module in model.modules():
        inner, padding = getattr(module, "conv", None), getattr(module, "padding", None)
        if isinstance(inner, nn.Conv1d) and isinstance(padding, tuple) and len(padding) == 2:
            wrapper_pad[inner] = int(padding[0])
    for conv in time_convs(model):
        span = (conv.kernel_size[0] - 1) * conv.dilation[0] + 1
        if isinstance(conv, nn.ConvTranspose1d):
            yield ("convT", span, conv.stride[0], conv.padding[0])
        else:
            yield ("conv", span, conv.stride[0], conv.padding[0] + wrapper_pad.get(conv, 0))


def phase_reach(model: nn.Module, period: int) -> Tuple[List[int], List[int]]:
    """Per output phase ``t mod period``: how many input samples before and after ``t`` output ``t`` depends on.

    Walks each output sample of one period back through the convs (interval arithmetic),
    so it is exact for the model's strides; residual skips and pointwise ops never widen
    the interval. (Checked against autograd supports in the tests.)
    """
    geometry = list(_conv_geometry(model))
    before: List[int] = []
    after: List[int] = []
    origin = period << 40  # far from the signal's edges, phase 0
    for phase in range(period):
        t = origin + phase
        lo, hi = t, t
        for kind, span, stride, pad in reversed(geometry):
            if kind == "conv":
                lo, hi = lo * stride - pad, hi * stride - pad + span - 1
            else:  # output o = i * stride + k - pad, 0 <= k < span
                lo = -((-(lo + pad - span + 1)) // stride)
                hi = (hi + pad) // stride
        before.append(t - lo)
        after.append(hi - t)
    return before, after


def exact_context(model: nn.Module, period: int) -> Tuple[int, int]:
    """``(left, right)``: the most input samples before and after any output sample that it depends on."""
    before, after = phase_reach(model, period)
    return max(before), max(after)


def overlap_add_context(model: nn.Module, period: int) -> Tuple[int, int]:
    """The smallest ``(left, right)`` contexts of an exact overlap-add with buffers that are multiples of ``period``.

    A call that has received input up to ``T`` (a multiple of ``period``) runs the offline
    model on ``x[T - n - right - left : T]`` and keeps the ``n`` outputs ``[T - n - right, T - right)``:
    each of them must find all its inputs inside the window, and the window must start on the
    model's decimation grid (``left + right`` a multiple of ``period``). The output lags the
    offline output by ``right`` samples.
    """
    return context_from_reach(*phase_reach(model, period), period)


def context_from_reach(before: List[int], after: List[int], period: int) -> Tuple[int, int]:
    """:func:`overlap_add_context` from the reach of each output phase (``before``, ``after``: input samples
    before and after output ``t`` that it depends on, indexed by ``t mod period``)."""
    right = 0
    while any(after[(-right - 1 - m) % period] > right + m for m in range(period)):
        right += 1
    left = (-right) % period
    while any(before[(m - right) % period] > m + left for m in range(period)):
        left += period
    return left, right


# ---------------------------------------------------------------------------------------------- cached_conv twin


class _CCResidual(nn.Module):
    def __init__(self, unit: nn.Module, unit_delay: int) -> None:
        super().__init__()
        import cached_conv as cc

        self.aligned = cc.AlignBranches(unit, nn.Identity(), delays=[unit_delay, 0])

    def forward(self, x: Tensor) -> Tensor:
        branches = self.aligned(x)
        return branches[0] + branches[1]


class CachedConvAutoencoder(nn.Module):
    """The package's RAVE (noise off) built from cached_conv layers (streaming; delay in ``cumulative_delay``).

    Conv for conv the package model's architecture and padding (:func:`streamify.models.blocks.conv_padding`,
    the PQMF's ``(taps - M) / 2`` on each side), registered in forward order so that
    :func:`load_same_weights` pairs the convs one to one.
    """

    def __init__(self, config: ReferenceConfig, thread_delay: bool = True) -> None:
        super().__init__()
        import cached_conv as cc

        state = cc.USE_BUFFER_CONV
        cc.use_cached_conv(True)
        try:
            self._build(config.preset, thread_delay)
        finally:
            cc.use_cached_conv(state)

    def _build(self, p: RaveConfig, thread: bool) -> None:
        import cached_conv as cc

        self.latent = p.latent
        lrelu = lambda: nn.LeakyReLU(SLOPE)  # noqa: E731

        def conv(cin: int, cout: int, kernel: int, cd: int, stride: int = 1, dilation: int = 1, bias: bool = True):
            # RAVE's EncoderV2 passes no cumulative_delay to its strided convs ("as published"):
            # thread_delay=False reproduces that (its stream is then not the offline output)
            layer = cc.Conv1d(
                cin,
                cout,
                kernel,
                stride=stride,
                dilation=dilation,
                bias=bias,
                padding=conv_padding(kernel, stride, dilation),
                cumulative_delay=cd if (thread or stride == 1) else 0,
            )
            return layer, int(layer.cumulative_delay)

        def unit(dim: int, dilation: int, cd: int):
            inner_conv, inner_delay = conv(dim, dim, p.kernel, 0, dilation=dilation)
            out_conv, _ = conv(dim, dim, 1, 0)
            body = cc.CachedSequential(lrelu(), inner_conv, lrelu(), out_conv)
            return _CCResidual(body, inner_delay), cd + inner_delay

        taps, bands = p.pqmf_taps, p.bands
        cd = 0
        self.analysis = cc.Conv1d(
            1, bands, taps, stride=bands, bias=False, padding=((taps - bands) // 2, (taps - bands) // 2)
        )
        cd = int(self.analysis.cumulative_delay)
        layer, cd = conv(bands, p.capacity, 2 * p.kernel + 1, cd)
        enc: List[nn.Module] = [layer]
        channels = p.capacity
        for ratio, dilations in zip(p.ratios, p.dilations):
            for d in dilations:
                layer, cd = unit(channels, d, cd)
                enc.append(layer)
            layer, cd = conv(channels, 2 * channels, 2 * ratio, cd, stride=ratio)
            enc += [lrelu(), layer]
            channels *= 2
        layer, cd = conv(channels, 2 * p.latent, p.kernel, cd)
        enc += [lrelu(), layer]
        self.encoder = nn.Sequential(*enc)
        self.latent_delay = cd

        layer, cd = conv(p.latent, channels, p.kernel, cd)
        dec: List[nn.Module] = [layer]
        for ratio, dilations in zip(reversed(p.ratios), reversed(p.dilations)):
            up = cc.ConvTranspose1d(
                channels, channels // 2, 2 * ratio, stride=ratio, padding=ratio // 2, cumulative_delay=cd
            )
            cd = int(up.cumulative_delay)
            dec += [lrelu(), up]
            channels //= 2
            for d in dilations:
                layer, cd = unit(channels, d, cd)
                dec.append(layer)
        self.decoder = nn.Sequential(*dec)
        layer, cd = conv(channels, 2 * bands, 2 * p.kernel + 1, cd)
        self.to_bands = nn.Sequential(lrelu(), layer)
        self.synthesis = cc.ConvTranspose1d(
            bands, 1, taps, stride=bands, padding=(taps - bands) // 2, bias=False, cumulative_delay=cd
        )
        self.cumulative_delay = int(self.synthesis.cumulative_delay)

    def forward(self, x: Tensor) -> Tensor:
        z = self.encoder(self.analysis(x))[:, : self.latent]
        wave, amplitude = self.to_bands(self.decoder(z)).chunk(2, 1)
        return self.synthesis(torch.tanh(wave) * torch.sigmoid(amplitude))


def build_cached_conv(config: ReferenceConfig = RAVE_V2, thread_delay: bool = True) -> CachedConvAutoencoder:
    """The cached_conv twin of :func:`build_reference` (weights not loaded: see :func:`load_same_weights`)."""
    model = CachedConvAutoencoder(config, thread_delay=thread_delay)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model.eval()


def _copy_weights(target_convs: List[nn.Module], source_convs: List[nn.Module]) -> None:
    if len(source_convs) != len(target_convs):
        raise ValueError(f"{len(source_convs)} convs in the source, {len(target_convs)} in the target")
    with torch.no_grad():
        for a, b in zip(source_convs, target_convs):
            if isinstance(a, nn.ConvTranspose1d) != isinstance(b, nn.ConvTranspose1d):
                raise ValueError(f"conv kinds differ: {type(a).__name__} / {type(b).__name__}")
            if a.weight.shape != b.weight.shape or a.stride != b.stride or a.dilation != b.dilation:
                raise ValueError(f"conv shapes differ: {tuple(a.weight.shape)} / {tuple(b.weight.shape)}")
            b.weight.copy_(a.weight)
            if (a.bias is None) != (b.bias is None):
                raise ValueError("one conv has a bias, the other not")
            if a.bias is not None:
                b.bias.copy_(a.bias)


def load_same_weights(target: nn.Module, source: nn.Module) -> nn.Module:
    """Copy the (computed, i.e. folded) weights of the convs ``source`` calls into those of ``target``, in order."""
    _copy_weights(time_convs(target), time_convs(source))
    return target


def reset_cached_conv(model: nn.Module) -> None:
    """Zero every cached_conv cache (cached_conv has no reset of its own): a fresh stream, same batch capacity.

    Runs in inference mode: caches created by a first call in inference mode can only be updated there.
    """
    with torch.inference_mode():
        for name, buffer in model.named_buffers():
            if name.endswith("pad") or name.endswith("cache"):
                buffer.zero_()


@dataclass
class ModelFacts:
    """Counted facts of a reference model."""

    name: str
    parameters: int
    weight_bytes: int
    macs_per_second: float
    total_ratio: int
    sample_rate: int
    context_left: int
    context_right: int


def model_facts(model: RAVE, name: str) -> ModelFacts:
    """Parameters, weight bytes, multiply-accumulates per second and exact context of a reference model."""
    left, right = exact_context(model, model.ratio)
    return ModelFacts(
        name=name,
        parameters=count_parameters(model),
        weight_bytes=weight_bytes(model),
        macs_per_second=macs_per_second(model),
        total_ratio=model.ratio,
        sample_rate=model.sample_rate,
        context_left=left,
        context_right=right,
    )
