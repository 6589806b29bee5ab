"""Streaming equals offline, shifted by the reported delay (issue "Streaming core", "The bar: exactness").

float64, max abs error <= 1e-10, compared from the first offline frame for zero-padded
models (a fresh stream outputs ``delay`` zeros, then the offline output), after a warm-up
of about the receptive field where the start of a stream cannot match (reflect, replicate,
circular padding, linear upsampling, avg pools without the padding in the count).
Buffer sizes vary from call to call. See tests/helpers.py for what each assertion checks.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from helpers import (
    ABS_TOL,
    assert_heads_stream_exactly,
    assert_streams_exactly,
    irregular_sizes,
    make_signal,
    warmup_frames,
)
from streamify.exactness import compare_streamed, stream_signal
from streamify.layers import (
    GRU,
    LSTM,
    AvgPool1d,
    Branches,
    Conv1d,
    ConvTranspose1d,
    Crop,
    Delay,
    Heads,
    LinearUpsample,
    MaxPool1d,
    NearestUpsample,
    Pad,
    Pointwise,
    Residual,
    Sequential,
)
from streamify.runtime.state import reset


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ---------------------------------------------------------------------------- convolutions


def conv_paddings(span: int):
    """Zero, symmetric, causal, look-ahead-heavy asymmetric, 'same', and over-padded (more than span - 1)."""
    left = span // 2
    return [0, left, (span - 1, 0), (0, span - 1), (1, max(span - 2, 0)), "same", (span, 2)]


@pytest.mark.parametrize("dilation", [1, 2, 3])
@pytest.mark.parametrize("stride", [1, 2, 3, 4])
@pytest.mark.parametrize("kernel", range(1, 10))
def test_conv_grid(kernel, stride, dilation):
    span = dilation * (kernel - 1) + 1
    for i, padding in enumerate(conv_paddings(span)):
        conv = Conv1d(2, 3, kernel, stride=stride, padding=padding, dilation=dilation, bias=i % 2 == 0)
        assert_streams_exactly(conv, seed=i)


@pytest.mark.parametrize("groups, cin, cout", [(2, 4, 6), (3, 3, 3), (4, 4, 8)])
@pytest.mark.parametrize("kernel, stride, dilation, padding", [(3, 1, 1, 1), (5, 2, 2, (3, 2)), (4, 3, 1, "same")])
def test_conv_groups(groups, cin, cout, kernel, stride, dilation, padding):
    conv = Conv1d(cin, cout, kernel, stride=stride, padding=padding, dilation=dilation, groups=groups)
    assert_streams_exactly(conv)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("kernel, stride, dilation", [(3, 1, 1), (5, 2, 1), (7, 3, 2), (4, 4, 3), (9, 2, 1)])
def test_conv_padding_modes(mode, kernel, stride, dilation):
    span = dilation * (kernel - 1) + 1
    for padding in [span // 2, (span - 1, 0), (1, span - 2), "same"]:
        conv = Conv1d(2, 3, kernel, stride=stride, padding=padding, dilation=dilation, padding_mode=mode)
        assert_streams_exactly(conv, warmup=warmup_frames(conv))


def test_conv_padding_mode_differs_at_start_only():
    """Reflect padding: the start of a stream differs (real past replaces reflection), the rest matches."""
    conv = Conv1d(2, 3, 7, padding=3, padding_mode="reflect").double()
    x = make_signal(1, 2, 64)
    streamed = stream_signal(conv, x, [16] * 4)
    offline = conv.offline(x)
    assert compare_streamed(streamed, offline, conv.delay).max_abs_error > 1e-3
    assert compare_streamed(streamed, offline, conv.delay, warmup=3).max_abs_error <= ABS_TOL


def _pre(kind: str, amount: int):
    """A layer that hands the next one a delayed (or advanced) stream."""
    if kind == "delay":
        return Delay(amount)
    if kind == "crop":
        return Crop(amount)
    if kind == "pad":
        return Pad(amount, 1)
    if kind == "strided":  # a stride-2 conv looking ahead by ``amount`` frames
        return Conv1d(2, 2, 3, stride=2, padding=(0, amount))
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["delay", "crop", "pad", "strided"])
@pytest.mark.parametrize("amount", [1, 2, 3, 5])
@pytest.mark.parametrize(
    "kernel, stride, padding", [(3, 2, 1), (4, 2, (2, 1)), (5, 3, (0, 4)), (8, 4, (2, 2)), (1, 3, 0)]
)
def test_conv_after_delayed_stream(kind, amount, kernel, stride, padding):
    """The decimation phase of a strided conv follows the delay of the stream that feeds it."""
    model = Sequential(_pre(kind, amount), Conv1d(2, 3, kernel, stride=stride, padding=padding))
    assert_streams_exactly(model, seed=amount)


@pytest.mark.parametrize("first", [(3, 2, (1, 1)), (4, 3, (0, 3)), (5, 2, (4, 0)), (6, 4, (1, 3))])
@pytest.mark.parametrize("second", [(3, 2, 1), (5, 3, (2, 2)), (2, 2, 0), (7, 4, (1, 5))])
def test_strided_conv_stack(first, second):
    k1, s1, p1 = first
    k2, s2, p2 = second
    model = Sequential(
        Conv1d(2, 3, k1, stride=s1, padding=p1),
        nn.ELU(),
        Conv1d(3, 3, k2, stride=s2, padding=p2),
        nn.Tanh(),
        Conv1d(3, 2, 3, stride=2, padding=(2, 1), dilation=2),
    )
    assert_streams_exactly(model)


def test_torch_layers_in_sequential():
    """``torch.nn`` layers placed in a Sequential are converted and stream exactly."""
    model = Sequential(
        nn.Conv1d(2, 4, 5, padding=2),
        nn.LeakyReLU(0.1),
        nn.Conv1d(4, 4, 4, stride=2, padding=1),
        nn.ConvTranspose1d(4, 3, 4, stride=2, padding=1),
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.AvgPool1d(2),
        nn.MaxPool1d(3, 1, 1),
        nn.ConstantPad1d((2, 0), 0.0),
        nn.Conv1d(3, 2, 3, dilation=2),
        nn.GRU(2, 3),
    )
    assert_streams_exactly(model)


# ---------------------------------------------------------------------------- transposed convolutions

TRANSPOSED = [
    # kernel, stride, padding, output_padding, dilation
    (6, 2, 1, 0, 1),
    (5, 2, 1, 0, 1),
    (14, 7, 4, 1, 1),
    (4, 2, 0, 0, 1),
    (16, 8, 4, 0, 1),
    (4, 2, 1, 1, 1),
    (3, 1, 1, 0, 1),
    (1, 1, 0, 0, 1),
    (2, 3, 0, 0, 1),  # kernel shorter than stride: no tail
    (3, 1, 2, 0, 1),  # padding beyond (kernel - 1) / 2
    (7, 3, 2, 2, 1),
    (3, 2, 1, 0, 2),
    (5, 3, 2, 1, 3),
    (4, 4, 3, 2, 3),
]


@pytest.mark.parametrize("kernel, stride, padding, output_padding, dilation", TRANSPOSED)
def test_conv_transpose(kernel, stride, padding, output_padding, dilation):
    for groups, cin, cout in [(1, 2, 3), (2, 4, 6)]:
        conv = ConvTranspose1d(cin, cout, kernel, stride, padding, output_padding, groups, dilation=dilation)
        assert_streams_exactly(conv, seed=groups)


@pytest.mark.parametrize("kernel, stride, padding, output_padding, dilation", TRANSPOSED[:8])
@pytest.mark.parametrize("kind", ["delay", "strided", "pad"])
def test_conv_transpose_after_delayed_stream(kind, kernel, stride, padding, output_padding, dilation):
    """Frames before the offline start (e.g. a conv's bias during its delay) must not leak into the tail."""
    model = Sequential(
        _pre(kind, 3),
        nn.Tanh(),
        ConvTranspose1d(2, 3, kernel, stride, padding, output_padding, dilation=dilation),
        Conv1d(3, 2, 3, stride=2, padding=(0, 2)),
    )
    # after a Pad the stream runs ahead of offline and never holds the offline frames made of padding
    # alone (here the transposed conv's bias): only the start differs (see test_pad_then_bias_layer)
    warmup = 0 if kind != "pad" else warmup_frames(model, 3)
    assert_streams_exactly(model, warmup=warmup)


# ---------------------------------------------------------------------------- autoencoder, residuals, branches


def autoencoder(channels: int = 2) -> Sequential:
    """Strided downsampling by 2 * 4 * 3, then transposed and nearest upsampling back to the input rate."""
    return Sequential(
        Conv1d(channels, 4, 7, padding=3),
        nn.ELU(),
        Conv1d(4, 6, 4, stride=2, padding=1),
        residual_unit(6, 3),
        Conv1d(6, 8, 8, stride=4, padding=(3, 1)),
        nn.ELU(),
        Conv1d(8, 8, 5, stride=3, padding=2),
        nn.Tanh(),
        ConvTranspose1d(8, 8, 6, stride=3, padding=1, output_padding=1),
        nn.ELU(),
        ConvTranspose1d(8, 6, 14, stride=4, padding=5),
        residual_unit(6, 2),
        NearestUpsample(2),
        Conv1d(6, channels, 7, padding=(5, 1)),
    )


def residual_unit(channels: int, dilation: int, padding=None) -> Residual:
    if padding is None:
        padding = dilation
    return Residual(
        Sequential(
            nn.ELU(),
            Conv1d(channels, channels, 3, dilation=dilation, padding=padding),
            nn.ELU(),
            Conv1d(channels, channels, 1),
        )
    )


def test_autoencoder():
    model = autoencoder()
    assert model.ratio == 1
    assert model.buffer_multiple == 24
    assert_streams_exactly(model, min_compared=200)
    assert model.delay > 24


def test_autoencoder_float32():
    """float32: relative error <= 1e-5."""
    model = autoencoder()
    comparison = assert_streams_exactly(model, dtype=torch.float32, min_compared=200)
    assert comparison.max_rel_error <= 1e-5


def test_autoencoder_buffer_schedules():
    """Any schedule of valid buffer sizes: one multiple at a time, large ones, irregular ones."""
    model = autoencoder().double()
    m = model.buffer_multiple
    for sizes in ([m] * 20, [8 * m, 12 * m], [m, 7 * m, 2 * m, 5 * m, m, 4 * m], irregular_sizes(20 * m, m, 5, 9)):
        assert_streams_exactly(model, sizes=sizes, min_compared=100)


def test_autoencoder_scripted():
    """The TorchScript model streams the same exact output."""
    model = autoencoder().double()
    scripted = torch.jit.script(model)
    x = make_signal(2, 2, 24 * 16, seed=3)
    sizes = irregular_sizes(x.size(-1), 24, 3)
    eager = stream_signal(model, x, sizes)
    reset(model)
    streamed = stream_signal(scripted, x, sizes)
    assert torch.equal(eager, streamed)
    comparison = compare_streamed(streamed, model.offline(x), model.delay)
    assert comparison.compared_frames >= 200
    assert comparison.max_abs_error <= ABS_TOL


@pytest.mark.parametrize("dilation", [1, 3, 9])
@pytest.mark.parametrize("padding", ["centred", "causal", "lookahead"])
def test_residual_dilated(dilation, padding):
    def pad(d):
        return {"centred": d, "causal": (2 * d, 0), "lookahead": (0, 2 * d)}[padding]

    model = Sequential(
        Conv1d(2, 4, 4, stride=2, padding=(1, 1)),  # a delayed stream feeds the residual blocks
        residual_unit(4, dilation, pad(dilation)),
        residual_unit(4, 2 * dilation + 1, pad(2 * dilation + 1)),
        Residual(Conv1d(4, 4, 5, padding=2), shortcut=Conv1d(4, 4, 1)),
        Conv1d(4, 2, 3, padding=1),
    )
    assert_streams_exactly(model)


def four_branches():
    """Branches that all end at ratio 2 with different delays: strided, pooled, down-up, delayed."""
    return [
        Conv1d(2, 3, 4, stride=2, padding=(1, 1)),
        Sequential(Conv1d(2, 3, 5, padding=2), AvgPool1d(2)),
        Sequential(Conv1d(2, 3, 8, stride=4, padding=(2, 2)), ConvTranspose1d(3, 3, 4, 2, 1)),
        Sequential(Delay(5), Conv1d(2, 3, 3, stride=2, padding=(0, 1))),
    ]


@pytest.mark.parametrize("merge", ["sum", "mean", "prod", "cat"])
def test_branches(merge):
    branches = four_branches()
    delays = [Sequential(b).delay for b in branches]
    assert len(set(delays)) > 1
    model = Branches(*branches, merge=merge)
    assert model.delay == max(delays)
    assert model.ratio == 2
    assert_streams_exactly(model)


@pytest.mark.parametrize("merge", ["sum", "cat"])
def test_branches_nested_after_strided(merge):
    channels = 12 if merge == "cat" else 3
    model = Sequential(
        Conv1d(2, 2, 3, stride=3, padding=(0, 2)),
        Branches(*four_branches(), merge=merge),
        nn.ELU(),
        Branches(Conv1d(channels, 2, 1), Conv1d(channels, 2, 5, padding=(1, 3))),
        Residual(Pointwise(nn.Tanh()), Delay(2)),
    )
    assert_streams_exactly(model)


def test_branches_cat_of_channel_agnostic_paths():
    """Pools and pointwise paths follow their input's channel count: a cat of them multiplies it."""
    model = Sequential(
        Conv1d(2, 2, 3, padding=(2, 0)),
        Branches(AvgPool1d(2), MaxPool1d(3, 2, 1), Conv1d(2, 3, 2, stride=2), merge="cat"),
        Conv1d(7, 2, 3, padding=1),
    )
    assert model.in_channels == 2
    assert_streams_exactly(model)
    # nothing tells the count: it is unknown after the cat, and the next layer decides
    model = Sequential(
        Branches(AvgPool1d(2), Sequential(nn.Tanh(), MaxPool1d(2)), merge="cat"), Conv1d(4, 2, 3, padding=1)
    )
    assert model.in_channels == -1
    assert_streams_exactly(model, 2)


def test_heads():
    """Heads at different rates: each head lags its offline head by ``delays[i]`` of its own frames."""
    model = Heads(
        Conv1d(2, 3, 3, padding=(0, 2)),
        Sequential(Conv1d(2, 4, 4, stride=2, padding=1), nn.Tanh()),
        Sequential(Conv1d(2, 2, 8, stride=4, padding=(3, 3)), LSTM(2, 3)),
        Sequential(Conv1d(2, 2, 2, stride=2), ConvTranspose1d(2, 2, 6, 4, 1)),
    )
    assert_heads_stream_exactly(model, 2, frames=160)


def test_heads_after_delay():
    model = Sequential(Conv1d(2, 2, 5, padding=(1, 3)))
    heads = Heads(model, Sequential(Conv1d(2, 2, 4, stride=2, padding=(0, 2)), Conv1d(2, 2, 3, stride=2)))
    assert_heads_stream_exactly(heads, 2, frames=128)


# ---------------------------------------------------------------------------- pools, upsamplers, shifts


@pytest.mark.parametrize(
    "kernel, stride, padding, count_include_pad, ceil_mode",
    [
        (2, None, 0, True, False),
        (3, 1, 1, True, False),
        (4, 2, 2, True, False),
        (5, 3, 2, True, True),
        (3, 2, 1, False, False),
        (4, 4, 2, False, True),
        (1, 2, 0, True, False),
    ],
)
def test_avg_pool(kernel, stride, padding, count_include_pad, ceil_mode):
    pool = AvgPool1d(kernel, stride, padding, ceil_mode, count_include_pad)
    warmup = 0 if count_include_pad or padding == 0 else warmup_frames(pool)
    assert_streams_exactly(pool, 3, warmup=warmup)
    model = Sequential(Conv1d(2, 3, 5, stride=2, padding=(1, 3)), pool)
    assert_streams_exactly(model, warmup=0 if warmup == 0 else warmup_frames(model))


def test_avg_pool_asymmetric():
    pool = AvgPool1d(4, 2)
    pool_padded = Sequential(Pad(3, 0), pool)
    assert_streams_exactly(pool_padded, 2)


@pytest.mark.parametrize(
    "kernel, stride, padding, dilation, ceil_mode",
    [(2, None, 0, 1, False), (3, 1, 1, 1, False), (4, 2, 2, 1, True), (3, 2, 1, 2, False), (5, 3, (1, 3), 1, False)],
)
def test_max_pool(kernel, stride, padding, dilation, ceil_mode):
    pool = MaxPool1d(kernel, stride, padding, dilation, ceil_mode)
    assert_streams_exactly(pool, 3)
    model = Sequential(Conv1d(2, 3, 5, stride=2, padding=(1, 3)), pool, Conv1d(3, 2, 3, padding=1))
    assert_streams_exactly(model)


@pytest.mark.parametrize("scale", [1, 2, 3, 4])
def test_nearest_upsample(scale):
    assert_streams_exactly(NearestUpsample(scale), 2)
    model = Sequential(
        Conv1d(2, 3, 4, stride=2, padding=(0, 3)), NearestUpsample(scale), Conv1d(3, 2, 5, stride=3, padding=2)
    )
    assert_streams_exactly(model)


@pytest.mark.parametrize("scale", [1, 2, 3, 4, 5, 7, 8])
def test_linear_upsample(scale):
    upsampler = LinearUpsample(scale)
    assert_streams_exactly(upsampler, 2, warmup=warmup_frames(upsampler))
    model = Sequential(
        Conv1d(2, 3, 4, stride=2, padding=(0, 3)), LinearUpsample(scale), Conv1d(3, 2, 5, stride=3, padding=2)
    )
    assert_streams_exactly(model, warmup=warmup_frames(model))


def test_crop_and_pad():
    model = Sequential(
        Conv1d(2, 3, 3),
        Crop(2, 1),
        Conv1d(3, 3, 4, stride=2, padding=(1, 1)),
        Pad(3, 2),
        Conv1d(3, 3, 3, stride=2),
        Crop(1, 0),
        ConvTranspose1d(3, 2, 4, 2, 1),
    )
    # the right crop ends the offline signal early: its last frames read padding where the stream has
    # real frames (the right edge is left out of the comparison)
    assert_streams_exactly(model, edge=warmup_frames(model, 1))


@pytest.mark.parametrize("left, right", [(0, 2), (3, 0), (2, 5)])
def test_crop_and_pad_alone(left, right):
    """Pads shift the stream ahead of offline (negative delay): the stream never emits the first pad frames."""
    crop = Crop(left, right)
    assert crop.delay == left
    assert_streams_exactly(crop, 2)
    pad = Pad(left, right)
    assert pad.delay == -left
    assert_streams_exactly(pad, 2)


@pytest.mark.parametrize("pool", [lambda: MaxPool1d(3, 1), lambda: MaxPool1d(3, 2, 1), lambda: AvgPool1d(4, 2, 2)])
def test_pool_after_pad(pool):
    """After a zero Pad, a max pool's cache stands for padding zeros (not for its own -inf padding)."""
    model = Sequential(Pad(3, 1), pool())
    assert_streams_exactly(model, 2)
    assert_streams_exactly(Sequential(Conv1d(2, 2, 3, padding=(0, 2)), Pad(4), nn.Tanh(), pool()))


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular", "constant"])
def test_pad_modes(mode):
    model = Sequential(Conv1d(2, 3, 3, stride=2, padding=(0, 3)), Pad(3, 1, mode, 0.5), Conv1d(3, 2, 4, stride=2))
    assert_streams_exactly(model, warmup=warmup_frames(model, 3))


# ---------------------------------------------------------------------------- recurrent layers


@pytest.mark.parametrize(
    "layer",
    [
        lambda: LSTM(3, 4),
        lambda: LSTM(3, 4, num_layers=2),
        lambda: LSTM(3, 5, proj_size=2),
        lambda: LSTM(3, 4, batch_first=True),
        lambda: GRU(3, 4),
        lambda: GRU(3, 4, num_layers=2, batch_first=True),
        lambda: LSTM.from_torch(nn.LSTM(3, 4)),
        lambda: GRU.from_torch(nn.GRU(3, 4)),
    ],
)
def test_recurrent(layer):
    assert_streams_exactly(layer(), min_compared=48)
    # a delayed stream: the recurrence starts where the offline one does
    model = Sequential(Conv1d(2, 3, 5, stride=2, padding=(1, 3)), Crop(2), layer())
    assert model.delay > 0
    assert_streams_exactly(model, min_compared=48)


def test_recurrent_between_convs():
    model = Sequential(
        Conv1d(2, 4, 4, stride=2, padding=(0, 3)),
        GRU(4, 4),
        Conv1d(4, 4, 3, padding=(1, 1)),
        LSTM(4, 3, num_layers=2),
        ConvTranspose1d(3, 2, 4, 2, 1),
    )
    assert_streams_exactly(model, min_compared=64)


def test_recurrent_after_pad():
    """After a Pad the stream runs ahead of offline; Sequential guards the LSTM with a delay line
    so that the recurrence also sees the pad's frames, and the model is exact from the start."""
    assert_streams_exactly(Sequential(Pad(2), LSTM(2, 3)), 2)


def test_pad_then_bias_layer():
    """A window op after a Pad keeps a non-negative delay: the offline frames made of padding alone
    (here a bias) reach the next layer, and the model is exact from the start."""
    model = Sequential(Pad(3), Conv1d(2, 2, 1), Conv1d(2, 2, 3, padding=1))
    assert model.layers[1].delay >= 0
    assert_streams_exactly(model)


def test_pad_then_transposed_bias_layer():
    model = Sequential(Pad(3), ConvTranspose1d(2, 2, 4, 2, 1), Conv1d(2, 2, 3, padding=1))
    assert model.layers[1].frames == 3, "a guard delay line brings the stream back to delay 0"
    assert_streams_exactly(model)


def test_pad_then_pointwise_layer():
    """sigmoid(0) != 0: the pad's frames must go through the pointwise op too."""
    assert_streams_exactly(Sequential(Pad(2), nn.Sigmoid(), Conv1d(2, 2, 3, padding=1)))


# ---------------------------------------------------------------------------- pointwise


class Snake(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.rand(1, channels, 1) + 0.5)

    def forward(self, x):
        return x + torch.sin(self.alpha * x) ** 2 / self.alpha


class ChannelLayerNorm(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x):
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


def test_pointwise():
    norm = nn.BatchNorm1d(3)
    norm.running_mean.uniform_(-1, 1)
    norm.running_var.uniform_(0.5, 2)
    norm.eval()
    model = Sequential(
        Conv1d(2, 3, 3, stride=2, padding=(0, 2)),
        Snake(3),
        norm,
        ChannelLayerNorm(3),
        nn.Conv1d(3, 3, 1),
        Pointwise(nn.GELU()),
        Conv1d(3, 2, 3, padding=1),
    )
    assert_streams_exactly(model)


# ---------------------------------------------------------------------------- batch items and resets


def recurrent_codec() -> Sequential:
    return Sequential(
        Conv1d(2, 3, 5, stride=2, padding=(0, 4)),
        LSTM(3, 3),
        Residual(Conv1d(3, 3, 3, padding=(0, 2))),
        ConvTranspose1d(3, 2, 6, 2, 1),
        MaxPool1d(3, 1, 1),
    )


@pytest.mark.parametrize("factory", [autoencoder, recurrent_codec])
@pytest.mark.parametrize("split", [1, 10])
def test_batch_per_item_reset(factory, split):
    """Batch 3, item 1 reset mid-stream (early: while the others still warm up; late): it restarts
    as a fresh stream; items 0 and 2 do not notice."""
    model = factory().double()
    m = model.buffer_multiple
    total = 24 * 24
    x = make_signal(3, 2, total, seed=7)
    first = irregular_sizes(split * m, m, 1)
    second = irregular_sizes(total - split * m, m, 2)
    reset(model)
    head = stream_signal(model, x[..., : split * m], first)
    model.reset([1])
    tail = stream_signal(model, x[..., split * m :], second)
    with torch.no_grad():
        offline = model.offline(x)
        offline_restart = model.offline(x[1:2, :, split * m :])
    streamed = torch.cat([head, tail], -1)
    for item in (0, 2):
        comparison = compare_streamed(streamed[item : item + 1], offline[item : item + 1], model.delay)
        assert comparison.compared_frames >= 400
        assert comparison.max_abs_error <= ABS_TOL
    assert tail[1, :, : model.delay].abs().max().item() == 0.0
    comparison = compare_streamed(tail[1:2], offline_restart, model.delay)
    assert comparison.compared_frames >= 200
    assert comparison.max_abs_error <= ABS_TOL
    # without the reset, item 1 would have continued its old stream
    assert compare_streamed(streamed[1:2], offline[1:2], model.delay).max_abs_error > 1e-3
