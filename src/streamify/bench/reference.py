"""The benchmark's reference model: a RAVE-v2-sized autoencoder in plain PyTorch, and its cached_conv twin.

Shapes follow RAVE v2 (``configs/v2.gin``: ``EncoderV2`` / ``GeneratorV2``): 48 kHz audio,
a 16-band filterbank (a strided conv filterbank with a cosine-modulated prototype, stride 16:
the shapes of RAVE's PQMF, not its exact coefficients), an encoder of residual dilated units
(LeakyReLU, dilated kernel-3 conv, LeakyReLU, 1x1 conv) and strided downsampling convs
(kernel ``2 r``, stride ``r``, channels doubled), a 2 x 128 channel latent of which the mean
half is decoded, a decoder of transposed convs (kernel ``2 r``, stride ``r``, padding
``r // 2``) and residual units, amplitude modulation, ``tanh`` and the synthesis filterbank.
All convs are weight-normed (``torch.nn.utils.parametrizations.weight_norm``), as trained;
:func:`folded_copy` gives the deployed form (weight norms folded into plain weights).

* :data:`RAVE_V2`: capacity 96, ratios 4, 4, 4, 2 (total ratio 2048), latent 128:
  about 31.5 M parameters and 3.5 G multiply-accumulates per second of audio.
* :data:`RAVE_V2_SMALL`: capacity 48, ratios 4, 4, 2 (total ratio 512).

:func:`build_cached_conv` builds the same architecture with ``cached_conv``'s own layers
(``cc.use_cached_conv(True)`` before construction, ``cumulative_delay`` threaded by hand,
``AlignBranches`` for the residuals) and :func:`load_same_weights` copies a plain model's
folded weights into it, so that both compute the same math.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm


@dataclass(frozen=True)
class RaveConfig:
    """Hyper-parameters of a RAVE-v2-style autoencoder."""

    name: str
    sample_rate: int = 48000
    n_band: int = 16
    capacity: int = 96
    ratios: Tuple[int, ...] = (4, 4, 4, 2)
    latent: int = 128
    kernel: int = 3
    dilations: Tuple[Tuple[int, ...], ...] = ((1, 3, 9), (1, 3, 9), (1, 3, 9), (1, 3))
    filter_taps: int = 256  # length of each band's analysis / synthesis filter (16 taps per polyphase branch)
    seed: int = 0

    @property
    def total_ratio(self) -> int:
        """Audio samples per latent frame (the buffer multiple of a streaming model)."""
        return self.n_band * math.prod(self.ratios)

    def scaled(self, **changes) -> RaveConfig:
        return replace(self, **changes)


RAVE_V2 = RaveConfig("rave-v2")
RAVE_V2_SMALL = RaveConfig("rave-v2-small", capacity=48, ratios=(4, 4, 2), dilations=((1, 3, 9), (1, 3, 9), (1, 3)))
#: a tiny model of the same architecture, for tests and smoke runs (ratio 64)
RAVE_TINY = RaveConfig(
    "rave-tiny", capacity=4, ratios=(2, 2), latent=8, dilations=((1, 3), (1,)), n_band=16, filter_taps=64
)

CONFIGS: Dict[str, RaveConfig] = {c.name: c for c in (RAVE_V2, RAVE_V2_SMALL, RAVE_TINY)}


def centered_padding(kernel: int, dilation: int = 1) -> Tuple[int, int]:
    """``(left, right)`` padding of a centred conv, as ``cached_conv.get_padding(kernel, dilation=d)``."""
    if kernel == 1:
        return (0, 0)
    span = (kernel - 1) * dilation + 1
    return ((span - 1) // 2, span // 2)


# ---------------------------------------------------------------------------------------------- plain model


class PaddedConv1d(nn.Module):
    """A conv with ``(left, right)`` zero padding (``F.pad`` then an unpadded ``nn.Conv1d``)."""

    def __init__(self, conv: nn.Conv1d, padding: Tuple[int, int]) -> None:
        super().__init__()
        self.conv = conv
        self.padding = (int(padding[0]), int(padding[1]))

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, self.padding))


def _conv(cin: int, cout: int, kernel: int, stride: int = 1, dilation: int = 1, norm: bool = True) -> nn.Module:
    """A centred conv, weight-normed unless ``norm`` is False (the padding is asymmetric for even spans)."""
    left, right = centered_padding(kernel, dilation)
    if left == right:
        conv = nn.Conv1d(cin, cout, kernel, stride=stride, dilation=dilation, padding=left)
        return weight_norm(conv) if norm else conv
    conv = nn.Conv1d(cin, cout, kernel, stride=stride, dilation=dilation)
    return PaddedConv1d(weight_norm(conv) if norm else conv, (left, right))


class DilatedUnit(nn.Module):
    """``x + conv1x1(lrelu(conv_k_dilated(lrelu(x))))`` (RAVE's ``Residual(DilatedUnit(...))``)."""

    def __init__(self, dim: int, kernel: int, dilation: int, norm: bool = True) -> None:
        super().__init__()
        self.conv = _conv(dim, dim, kernel, dilation=dilation, norm=norm)
        self.out = _conv(dim, dim, 1, norm=norm)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.out(F.leaky_relu(self.conv(F.leaky_relu(x, 0.2)), 0.2))


class Downsample(nn.Module):
    """LeakyReLU then a strided conv of kernel ``2 r`` (channels doubled)."""

    def __init__(self, cin: int, cout: int, ratio: int, norm: bool = True) -> None:
        super().__init__()
        self.conv = _conv(cin, cout, 2 * ratio, stride=ratio, norm=norm)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.leaky_relu(x, 0.2))


class Upsample(nn.Module):
    """LeakyReLU then a transposed conv of kernel ``2 r``, stride ``r``, padding ``r // 2`` (channels halved)."""

    def __init__(self, cin: int, cout: int, ratio: int, norm: bool = True) -> None:
        super().__init__()
        conv = nn.ConvTranspose1d(cin, cout, 2 * ratio, stride=ratio, padding=ratio // 2)
        self.conv = weight_norm(conv) if norm else conv

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.leaky_relu(x, 0.2))


def cosine_filterbank(n_band: int, taps: int) -> Tensor:
    """``[n_band, taps]`` cosine-modulated band filters of a Kaiser-windowed low-pass prototype (cut-off pi / 2M)."""
    n = torch.arange(taps, dtype=torch.float64) - (taps - 1) / 2
    cutoff = math.pi / (2 * n_band)
    prototype = cutoff / math.pi * torch.sinc(cutoff * n / math.pi)
    prototype = prototype * torch.kaiser_window(taps, periodic=False, beta=9.0, dtype=torch.float64)
    k = torch.arange(n_band, dtype=torch.float64).unsqueeze(1)
    phase = (-1.0) ** k * math.pi / 4
    bank = 2 * prototype * torch.cos((2 * k + 1) * math.pi / (2 * n_band) * n + phase)
    return bank.to(torch.float32)


class Analysis(nn.Module):
    """The band split: ``[batch, 1, n]`` -> ``[batch, n_band, n / n_band]`` (strided conv, fixed filters)."""

    def __init__(self, n_band: int, taps: int) -> None:
        super().__init__()
        conv = nn.Conv1d(1, n_band, taps, stride=n_band, bias=False)
        with torch.no_grad():
            conv.weight.copy_(cosine_filterbank(n_band, taps).unsqueeze(1))
        conv.weight.requires_grad_(False)
        self.conv = PaddedConv1d(conv, centered_padding(taps))

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class Synthesis(nn.Module):
    """The band merge: ``[batch, n_band, m]`` -> ``[batch, 1, m n_band]`` (transposed conv, fixed filters)."""

    def __init__(self, n_band: int, taps: int) -> None:
        super().__init__()
        if (taps - n_band) % 2:
            raise ValueError("filter_taps - n_band must be even")
        self.conv = nn.ConvTranspose1d(n_band, 1, taps, stride=n_band, padding=(taps - n_band) // 2, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(n_band * cosine_filterbank(n_band, taps).flip(-1).unsqueeze(1))
        self.conv.weight.requires_grad_(False)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


def _normalized_dilations(config: RaveConfig) -> List[Tuple[int, ...]]:
    if len(config.dilations) != len(config.ratios):
        raise ValueError(f"{config.name}: one tuple of dilations per ratio")
    return list(config.dilations)


class Encoder(nn.Module):
    """RAVE's ``EncoderV2``: conv 7, per ratio (residual dilated units, downsampling), conv 3 to 2 x latent."""

    def __init__(self, config: RaveConfig, norm: bool = True) -> None:
        super().__init__()
        layers: List[nn.Module] = [_conv(config.n_band, config.capacity, 2 * config.kernel + 1, norm=norm)]
        channels = config.capacity
        for ratio, dilations in zip(config.ratios, _normalized_dilations(config)):
            layers += [DilatedUnit(channels, config.kernel, d, norm) for d in dilations]
            layers.append(Downsample(channels, 2 * channels, ratio, norm))
            channels *= 2
        layers += [nn.LeakyReLU(0.2), _conv(channels, 2 * config.latent, config.kernel, norm=norm)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class Decoder(nn.Module):
    """RAVE's ``GeneratorV2``: conv 3, per ratio (upsampling, residual units), conv 7 with amplitude modulation."""

    def __init__(self, config: RaveConfig, norm: bool = True) -> None:
        super().__init__()
        channels = config.capacity * 2 ** len(config.ratios)
        layers: List[nn.Module] = [_conv(config.latent, channels, config.kernel, norm=norm)]
        for ratio, dilations in zip(reversed(config.ratios), reversed(_normalized_dilations(config))):
            layers.append(Upsample(channels, channels // 2, ratio, norm))
            channels //= 2
            layers += [DilatedUnit(channels, config.kernel, d, norm) for d in dilations]
        layers.append(nn.LeakyReLU(0.2))
        layers.append(_conv(channels, 2 * config.n_band, 2 * config.kernel + 1, norm=norm))
        self.net = nn.Sequential(*layers)
        self.n_band = config.n_band

    def forward(self, z: Tensor) -> Tensor:
        x = self.net(z)
        x, amplitude = x.split(self.n_band, 1)
        return torch.tanh(x * torch.sigmoid(amplitude))


class RaveAutoencoder(nn.Module):
    """Audio ``[batch, 1, n]`` -> bands -> latent mean -> bands -> audio ``[batch, 1, n]``.

    ``n`` must be a multiple of ``config.total_ratio``. ``encode`` and ``decode`` are the halves.
    """

    def __init__(self, config: RaveConfig, norm: bool = True) -> None:
        super().__init__()
        self.config = config
        self.latent = config.latent
        self.analysis = Analysis(config.n_band, config.filter_taps)
        self.encoder = Encoder(config, norm)
        self.decoder = Decoder(config, norm)
        self.synthesis = Synthesis(config.n_band, config.filter_taps)

    def encode(self, x: Tensor) -> Tensor:
        z = self.encoder(self.analysis(x))
        return z[:, : self.latent]  # the mean of the posterior (the deterministic path)

    def decode(self, z: Tensor) -> Tensor:
        return self.synthesis(self.decoder(z))

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))


def build_reference(config: RaveConfig = RAVE_V2, seed: Optional[int] = None) -> RaveAutoencoder:
    """The plain-PyTorch reference model, weight-normed, with deterministic random weights, in eval mode.

    The global random state is left untouched. Biases are drawn small so that activations
    stay in a realistic range through the depth of the network.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed if seed is None else seed)
        model = RaveAutoencoder(config)
        with torch.no_grad():
            for module in model.modules():
                bias = getattr(module, "bias", None)
                if isinstance(bias, nn.Parameter):
                    bias.mul_(0.1)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model.eval()


def folded_copy(model: RaveAutoencoder) -> RaveAutoencoder:
    """A copy of ``model`` with every weight norm folded into a plain weight (the deployed form).

    Built afresh without weight norm and loaded with the computed weights: removing the
    parametrizations of a deep copy would alter the class the copy shares with ``model``.
    """
    folded = RaveAutoencoder(model.config, norm=False)
    load_same_weights(folded, model)
    for parameter in folded.parameters():
        parameter.requires_grad_(False)
    return folded.eval()


def time_convs(model: nn.Module) -> List[nn.Module]:
    """The model's ``Conv1d`` / ``ConvTranspose1d`` modules in forward order (registration order)."""
    return [m for m in model.modules() if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d))]


# ---------------------------------------------------------------------------------------------- counts


def count_parameters(model: RaveAutoencoder) -> int:
    """Parameters of the deployed model (a weight norm's ``g`` and ``v`` count as the one weight they make)."""
    return sum(p.numel() for p in folded_copy(model).parameters())


def weight_bytes(model: RaveAutoencoder) -> int:
    """Bytes of the deployed weights (read once per streaming call)."""
    return sum(p.numel() * p.element_size() for p in folded_copy(model).parameters())


def weight_tensor_bytes(model: RaveAutoencoder) -> List[int]:
    """Bytes of the deployed weights per conv (its weight plus its bias), in forward (registration) order.

    One entry per module that holds parameters (the convs): a call's conv reads its bias in the same op
    as its weight. The entries sum to :func:`weight_bytes`.
    """
    sizes = []
    for module in folded_copy(model).modules():
        nbytes = sum(p.numel() * p.element_size() for p in module.parameters(recurse=False))
        if nbytes:
            sizes.append(nbytes)
    return sizes


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


def macs_per_second(model: RaveAutoencoder) -> float:
    """Multiply-accumulates per second of audio (counted on a whole number of latent frames)."""
    config = model.config
    length = config.total_ratio * max(1, math.ceil(config.sample_rate / config.total_ratio))
    return sum(count_macs(model, length).values()) * config.sample_rate / length


# ---------------------------------------------------------------------------------------------- exact context


def _conv_geometry(model: nn.Module) -> Iterator[Tuple[str, int, int, int]]:
    """``(kind, span, stride, left_pad)`` of every conv in forward order (residual skips never widen a window)."""
    for module in model.modules():
        if isinstance(module, PaddedConv1d):
            conv = module.conv
            yield ("conv", (conv.kernel_size[0] - 1) * conv.dilation[0] + 1, conv.stride[0], module.padding[0])
        elif isinstance(module, nn.ConvTranspose1d):
            span = (module.kernel_size[0] - 1) * module.dilation[0] + 1
            yield ("convT", span, module.stride[0], module.padding[0])
        elif isinstance(module, nn.Conv1d) and not _inside_padded(model, module):
            yield ("conv", (module.kernel_size[0] - 1) * module.dilation[0] + 1, module.stride[0], module.padding[0])


def _inside_padded(model: nn.Module, conv: nn.Module) -> bool:
    return any(isinstance(m, PaddedConv1d) and m.conv is conv for m in model.modules())


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
    """The reference architecture built from cached_conv layers (streaming; delay in ``cumulative_delay``)."""

    def __init__(self, config: RaveConfig, thread_delay: bool = True) -> None:
        super().__init__()
        import cached_conv as cc

        state = cc.USE_BUFFER_CONV
        cc.use_cached_conv(True)
        try:
            self._build(config, thread_delay)
        finally:
            cc.use_cached_conv(state)

    def _build(self, config: RaveConfig, thread: bool) -> None:
        import cached_conv as cc

        self.latent = config.latent
        self.n_band = config.n_band
        lrelu = lambda: nn.LeakyReLU(0.2)  # noqa: E731

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
                padding=cc.get_padding(kernel, stride, dilation),
                cumulative_delay=cd if (thread or stride == 1) else 0,
            )
            return layer, int(layer.cumulative_delay)

        def unit(dim: int, dilation: int, cd: int):
            inner_conv, inner_delay = conv(dim, dim, config.kernel, 0, dilation=dilation)
            out_conv, _ = conv(dim, dim, 1, 0)
            body = cc.CachedSequential(lrelu(), inner_conv, lrelu(), out_conv)
            return _CCResidual(body, inner_delay), cd + inner_delay

        cd = 0
        self.analysis, cd = conv(1, config.n_band, config.filter_taps, cd, stride=config.n_band, bias=False)
        enc: List[nn.Module] = []
        layer, cd = conv(config.n_band, config.capacity, 2 * config.kernel + 1, cd)
        enc.append(layer)
        channels = config.capacity
        for ratio, dilations in zip(config.ratios, _normalized_dilations(config)):
            for d in dilations:
                layer, cd = unit(channels, d, cd)
                enc.append(layer)
            enc.append(lrelu())
            layer, cd = conv(channels, 2 * channels, 2 * ratio, cd, stride=ratio)
            enc.append(layer)
            channels *= 2
        enc.append(lrelu())
        layer, cd = conv(channels, 2 * config.latent, config.kernel, cd)
        enc.append(layer)
        self.encoder = nn.Sequential(*enc)
        self.latent_delay = cd

        dec: List[nn.Module] = []
        channels = config.capacity * 2 ** len(config.ratios)
        layer, cd = conv(config.latent, channels, config.kernel, cd)
        dec.append(layer)
        for ratio, dilations in zip(reversed(config.ratios), reversed(_normalized_dilations(config))):
            dec.append(lrelu())
            up = cc.ConvTranspose1d(
                channels, channels // 2, 2 * ratio, stride=ratio, padding=ratio // 2, cumulative_delay=cd
            )
            cd = int(up.cumulative_delay)
            dec.append(up)
            channels //= 2
            for d in dilations:
                layer, cd = unit(channels, d, cd)
                dec.append(layer)
        dec.append(lrelu())
        layer, cd = conv(channels, 2 * config.n_band, 2 * config.kernel + 1, cd)
        dec.append(layer)
        self.decoder = nn.Sequential(*dec)
        taps = config.filter_taps
        self.synthesis = cc.ConvTranspose1d(
            config.n_band,
            1,
            taps,
            stride=config.n_band,
            padding=(taps - config.n_band) // 2,
            bias=False,
            cumulative_delay=cd,
        )
        self.cumulative_delay = int(self.synthesis.cumulative_delay)

    def forward(self, x: Tensor) -> Tensor:
        z = self.encoder(self.analysis(x))
        z = z[:, : self.latent]
        y = self.decoder(z)
        y, amplitude = y.split(self.n_band, 1)
        return self.synthesis(torch.tanh(y * torch.sigmoid(amplitude)))


def build_cached_conv(config: RaveConfig = RAVE_V2, thread_delay: bool = True) -> CachedConvAutoencoder:
    """The cached_conv twin of :func:`build_reference` (weights not loaded: see :func:`load_same_weights`)."""
    model = CachedConvAutoencoder(config, thread_delay=thread_delay)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model.eval()


def load_same_weights(target: nn.Module, source: nn.Module) -> nn.Module:
    """Copy the (computed, i.e. folded) conv weights of ``source`` into ``target``, conv by conv in order."""
    source_convs = time_convs(source)
    target_convs = time_convs(target)
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
    per_layer_macs: Dict[str, float] = field(default_factory=dict)


def model_facts(model: RaveAutoencoder) -> ModelFacts:
    """Parameters, weight bytes, multiply-accumulates per second and exact context of a reference model."""
    config = model.config
    length = config.total_ratio * max(1, math.ceil(config.sample_rate / config.total_ratio))
    per_layer = count_macs(model, length)
    scale = config.sample_rate / length
    left, right = exact_context(model, config.total_ratio)
    return ModelFacts(
        name=config.name,
        parameters=count_parameters(model),
        weight_bytes=weight_bytes(model),
        macs_per_second=sum(per_layer.values()) * scale,
        total_ratio=config.total_ratio,
        sample_rate=config.sample_rate,
        context_left=left,
        context_right=right,
        per_layer_macs={k: v * scale for k, v in per_layer.items()},
    )


def describe(sequence: Sequence[int]) -> str:
    return ", ".join(str(s) for s in sequence)
