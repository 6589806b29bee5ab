"""Reported timing of layers and containers, and what the containers accept, convert and refuse.

Issue "Streaming core", sections 1 (containers, no delay passed by hand) and 2 (reporting).
Expected values are worked out by hand from the streaming rules (shared/FIELD-NOTES.md):
a window op of span ``s_pan``, stride ``s`` and left pad ``l`` fed a stream delayed by ``d`` keeps
``c = max(0, span - s) + ((l - d - max(0, span - s)) mod s)`` input frames and lags ``(c + d - l) / s``
output frames; a transposed conv lags ``d * s + padding``; receptive fields add up as
``1 + sum((field_i - 1) * ratio_before_i)``.
"""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch
from torch import nn

from core_cases import (
    assert_exact,
    assert_same,
    build,
    signal,
    sizes_of,
    stream,
)
from streamify import StreamingError, set_streaming
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

# ---------------------------------------------------------------- reporting: single layers

# (factory, delay, ratio, buffer_multiple, receptive_field)
LAYER_REPORTS = {
    # 'same' k=3: pads (1, 1), keeps 2 frames, lags by the right pad
    "conv_same_k3": (lambda: Conv1d(2, 3, 3, padding="same"), 1, 1, 1, 3),
    # causal: all padding on the left, no lag
    "conv_causal_k3": (lambda: Conv1d(2, 3, 3, padding=(2, 0)), 0, 1, 1, 3),
    # 'same' k=4 pads (1, 2): lags 2
    "conv_same_k4": (lambda: Conv1d(2, 3, 4, padding="same"), 2, 1, 1, 4),
    # dilation 2, k=5: span 9, 'same' pads (4, 4)
    "conv_dilated": (lambda: Conv1d(2, 3, 5, dilation=2, padding="same"), 4, 1, 1, 9),
    # k=4 s=2 p=1: cache 2 + ((1 - 0 - 2) mod 2) = 3, delay (3 - 1) / 2 = 1
    "conv_k4_s2_p1": (lambda: Conv1d(2, 3, 4, stride=2, padding=1), 1, 2, 2, 4),
    # k=3 s=2 p=1: cache 1 + ((1 - 1) mod 2) = 1, delay 0: window j reads frames 2j-1 .. 2j+1
    "conv_k3_s2_p1": (lambda: Conv1d(2, 3, 3, stride=2, padding=1), 0, 2, 2, 3),
    # k=4 s=3 p=1: cache 1 + ((1 - 1) mod 3) = 1, delay 0
    "conv_k4_s3_p1": (lambda: Conv1d(2, 3, 4, stride=3, padding=1), 0, 3, 3, 4),
    # k=3 s=3 valid: no cache, no delay
    "conv_k3_s3": (lambda: Conv1d(2, 3, 3, stride=3), 0, 3, 3, 3),
    # transposed: delay = padding; receptive field ceil(span / stride)
    "tconv_4_2_1": (lambda: ConvTranspose1d(2, 3, 4, 2, 1), 1, Fraction(1, 2), 1, 2),
    "tconv_6_2_1": (lambda: ConvTranspose1d(2, 3, 6, 2, 1), 1, Fraction(1, 2), 1, 3),
    "tconv_5_2_1": (lambda: ConvTranspose1d(2, 3, 5, 2, 1), 1, Fraction(1, 2), 1, 3),
    "tconv_14_7_4_1": (lambda: ConvTranspose1d(2, 3, 14, 7, 4, output_padding=1), 4, Fraction(1, 7), 1, 2),
    "tconv_4_2_0": (lambda: ConvTranspose1d(2, 3, 4, 2, 0), 0, Fraction(1, 2), 1, 2),
    "tconv_16_8_4": (lambda: ConvTranspose1d(2, 3, 16, 8, 4), 4, Fraction(1, 8), 1, 2),
    # dilation 2, k=3: span 5
    "tconv_dilated": (lambda: ConvTranspose1d(2, 3, 3, 2, 1, dilation=2), 1, Fraction(1, 2), 1, 3),
    "avg_pool_2": (lambda: AvgPool1d(2), 0, 2, 2, 2),
    "avg_pool_3_1_1": (lambda: AvgPool1d(3, 1, 1), 1, 1, 1, 3),
    "max_pool_3_1_1": (lambda: MaxPool1d(3, 1, 1), 1, 1, 1, 3),
    "max_pool_4_2_1": (lambda: MaxPool1d(4, 2, 1), 1, 2, 2, 4),
    "nearest_2": (lambda: NearestUpsample(2), 0, Fraction(1, 2), 1, 1),
    # linear x2: kernel (0.25, 0.75, 0.75, 0.25) starting one frame early: lags scale // 2 = 1
    "linear_2": (lambda: LinearUpsample(2), 1, Fraction(1, 2), 1, 2),
    # linear x3: kernel (1/3, 2/3, 1, 2/3, 1/3): span 5
    "linear_3": (lambda: LinearUpsample(3), 1, Fraction(1, 3), 1, 2),
    # linear x4: span 8, lags 2
    "linear_4": (lambda: LinearUpsample(4), 2, Fraction(1, 4), 1, 2),
    "delay_3": (lambda: Delay(3), 3, 1, 1, 1),
    "crop_2_1": (lambda: Crop(2, 1), 2, 1, 1, 1),
    # a pad makes the offline output start earlier: the stream leads it
    "pad_2_1": (lambda: Pad(2, 1), -2, 1, 1, 1),
    "lstm": (lambda: LSTM(2, 4), 0, 1, 1, -1),
    "gru": (lambda: GRU(2, 4, num_layers=2), 0, 1, 1, -1),
    "pointwise": (lambda: Pointwise(nn.Tanh()), 0, 1, 1, 1),
}


@pytest.mark.parametrize("case", list(LAYER_REPORTS))
def test_layer_reports(case: str) -> None:
    factory, delay, ratio, multiple, field = LAYER_REPORTS[case]
    layer = factory().double()
    assert (layer.delay, layer.ratio, layer.buffer_multiple, layer.receptive_field) == (delay, ratio, multiple, field)
    assert isinstance(layer.ratio, Fraction)
    # the reported delay is the real one (the off-by-one comparison in assert_exact must fail)
    x = signal(2, 24 * multiple)
    warmup = 2 if "linear" in case else 0
    assert_exact(stream(layer, x, sizes_of(layer, [1, 3, 2, 6, 4, 8])), layer.offline(x), delay, warmup=warmup)


def test_channel_reports() -> None:
    assert (Conv1d(2, 6, 3, groups=2).in_channels, Conv1d(2, 6, 3, groups=2).out_channels) == (2, 6)
    assert (ConvTranspose1d(4, 6, 4, 2, groups=2).in_channels, ConvTranspose1d(4, 6, 4, 2, groups=2).out_channels) == (
        4,
        6,
    )
    assert (LSTM(2, 5).in_channels, LSTM(2, 5).out_channels) == (2, 5)
    assert LSTM(2, 5, proj_size=3).out_channels == 3
    assert (AvgPool1d(2).in_channels, NearestUpsample(2).out_channels) == (-1, -1)
    model = Sequential(nn.ReLU(), Conv1d(2, 4, 3, padding=1), AvgPool1d(2), Conv1d(4, 5, 1))
    assert (model.in_channels, model.out_channels) == (2, 5)
    assert Branches(Conv1d(2, 3, 3, padding=1), Conv1d(2, 4, 1), merge="cat").out_channels == 7
    assert Heads(Conv1d(2, 3, 3, padding=1), Conv1d(2, 4, 1)).in_channels == 2


# ---------------------------------------------------------------- reporting: containers

# (factory, delay, ratio, buffer_multiple, receptive_field, warm-up frames for the exactness check)
CONTAINER_REPORTS = {
    # 1 -> strided conv fed delay 1: cache 2 + ((1 - 1 - 2) mod 2) = 2, delay (2 + 1 - 1) / 2 = 1
    # -> transposed conv fed delay 1: 1 * 2 + 1 = 3; field 1 + 2 + 3 + (2 - 1) * 2 = 8
    "autoencoder": (
        lambda: Sequential(
            Conv1d(2, 4, 3, padding=1), Conv1d(4, 4, 4, stride=2, padding=1), ConvTranspose1d(4, 2, 4, 2, 1)
        ),
        3,
        1,
        2,
        8,
    ),
    # two k=4 s=2 p=1: 1, then cache 2, delay 1 (at rate 4: 4 samples); lengths multiples of 4
    # field 1 + 3 + 3 * 2 = 10
    "two_strided": (
        lambda: Sequential(Conv1d(2, 2, 4, stride=2, padding=1), Conv1d(2, 2, 4, stride=2, padding=1)),
        1,
        4,
        4,
        10,
    ),
    # conv delay 1 -> k=3 s=2 p=1 fed delay 1: cache 1 + ((1 - 1 - 1) mod 2) = 2, delay (2 + 1 - 1) / 2 = 1
    "phase": (lambda: Sequential(Conv1d(2, 2, 3, padding=1), Conv1d(2, 2, 3, stride=2, padding=1)), 1, 2, 2, 5),
    # upsample then downsample: tconv delay 1 (rate 1/2), conv fed delay 1 -> delay 1 at rate 1;
    # field 1 + 1 + 3 / 2 = 3.5 -> 4
    "up_down": (lambda: Sequential(ConvTranspose1d(2, 2, 4, 2, 1), Conv1d(2, 2, 4, stride=2, padding=1)), 1, 1, 1, 4),
    # a crop before a valid conv: 2 + 2 = 4
    "crop_valid": (lambda: Sequential(Crop(2), Conv1d(2, 2, 3)), 4, 1, 1, 3),
    # a pad before a valid conv is a causal conv: -2 + 2 = 0
    "pad_valid": (lambda: Sequential(Pad(2), Conv1d(2, 2, 3)), 0, 1, 1, 3),
    "recurrent": (lambda: Sequential(Conv1d(2, 2, 3, padding=1), nn.Tanh(), LSTM(2, 3)), 1, 1, 1, -1),
    "nested_flat": (
        lambda: Sequential(Sequential(Conv1d(2, 2, 3, padding=1)), Sequential(Conv1d(2, 2, 4, stride=2, padding=1))),
        1,
        2,
        2,
        6,
    ),
    # branches lag as the most delayed one (k=5 'same': 2)
    "branches_cat": (lambda: Branches(Conv1d(2, 3, 5, padding=2), Conv1d(2, 3, 1), merge="cat"), 2, 1, 1, 5),
    # strided branches: k=4 s=2 p=1 (delay 1) and k=2 s=2 (delay 0) at rate 2
    "branches_strided": (
        lambda: Branches(Conv1d(2, 2, 4, stride=2, padding=1), Conv1d(2, 2, 2, stride=2), merge="sum"),
        1,
        2,
        2,
        4,
    ),
    "residual": (lambda: Residual(Conv1d(2, 2, 3, padding=1)), 1, 1, 1, 3),
    "residual_dilated": (lambda: Residual(Conv1d(2, 2, 3, padding=2, dilation=2)), 2, 1, 1, 5),
    # a linear upsampler inside: its first output frame differs offline (clamp)
    "branches_linear": (
        lambda: Branches(
            Sequential(Conv1d(2, 2, 4, stride=2, padding=1), LinearUpsample(2)), Conv1d(2, 2, 3, padding=1)
        ),
        3,
        1,
        2,
        6,
    ),
}


@pytest.mark.parametrize("case", list(CONTAINER_REPORTS))
def test_container_reports(case: str) -> None:
    factory, delay, ratio, multiple, field = CONTAINER_REPORTS[case]
    model = factory().double()
    assert (model.delay, model.ratio, model.buffer_multiple, model.receptive_field) == (delay, ratio, multiple, field)
    x = signal(2, 24 * multiple)
    warmup = 3 if "linear" in case else 0
    y = stream(model, x, sizes_of(model, [1, 3, 2, 6, 4, 8]))
    assert_exact(y, model.offline(x), delay, warmup=warmup)


def test_sequential_configures_its_children_with_the_delay_reaching_them() -> None:
    model = Sequential(
        Conv1d(2, 4, 3, padding=1), nn.ReLU(), Conv1d(4, 4, 4, stride=2, padding=1), ConvTranspose1d(4, 2, 4, 2, 1)
    )
    assert [layer.input_delay for layer in model.layers] == [0, 1, 1, 1]
    assert [layer.delay for layer in model.layers] == [1, 1, 1, 3]
    assert model.layers[2].cache_len == 2
    # the same strided conv on its own keeps 3 frames
    assert Conv1d(4, 4, 4, stride=2, padding=1).cache_len == 3


def test_branches_align_on_the_most_delayed_branch() -> None:
    model = Branches(Conv1d(2, 3, 5, padding=2), Conv1d(2, 3, 3, padding=1), Conv1d(2, 3, 1), merge="cat")
    assert model.delay == 2
    # the delay lines that close each branch make up the difference
    assert [path.layers[1].frames for path in model.paths] == [0, 1, 2]


def test_heads_report_one_delay_per_head() -> None:
    # head 0: 1 frame at rate 1 (1 sample); head 1: 1 frame at rate 2 (2 samples);
    # head 2: conv 1 then tconv 1 * 2 + 1 = 3 frames at rate 1/2 (1.5 samples).
    # Aligned on 2 samples: head 0 gets 1 extra frame, head 2 one extra frame (4 frames = 2 samples).
    model = build("heads")
    assert model.delays == [2, 1, 4]
    assert model.buffer_multiple == 2
    x = signal(2, 48)
    streamed = stream(model, x, sizes_of(model, [1, 3, 2, 6, 4, 8]))
    offline = model.offline(x)
    assert isinstance(offline, list) and len(offline) == 3
    assert [o.size(-1) for o in offline] == [48, 24, 96]
    for head, (s, o, d) in enumerate(zip(streamed, offline, model.delays)):
        assert s.shape == o.shape, head
        assert_exact(s, o, d)


def test_heads_at_rates_that_do_not_align_wait_for_the_next_whole_frame() -> None:
    # head 0 lags 1 sample; head 1 (k=3 s=3 p=1: cache 1, delay 0) lags 0 samples; its frames last
    # 3 samples: it is delayed by one whole frame (3 samples)
    model = Heads(Conv1d(2, 3, 3, padding=1), Conv1d(2, 3, 3, stride=3, padding=1)).double()
    assert model.delays == [1, 1]
    assert model.buffer_multiple == 3
    x = signal(2, 36)
    for s, o, d in zip(stream(model, x, [3, 9, 6, 18]), model.offline(x), model.delays):
        assert_exact(s, o, d, min_frames=6, edge=1)


@pytest.mark.parametrize("merge", ["sum", "mean", "prod", "cat"])
def test_branch_merges_stream_exactly(merge: str) -> None:
    torch.manual_seed(0)
    model = Branches(
        Conv1d(2, 3, 5, padding=2),
        Sequential(Conv1d(2, 3, 4, stride=2, padding=1), NearestUpsample(2)),
        Conv1d(2, 3, 1),
        merge=merge,
    ).double()
    x = signal(3, 48)
    y = stream(model, x, sizes_of(model, [1, 5, 2, 8, 4, 4]))
    offline = model.offline(x)
    assert offline.size(1) == (9 if merge == "cat" else 3)
    assert_exact(y, offline, model.delay)
    a, b, c = (path.offline(x) for path in model.paths)
    expected = {"sum": a + b + c, "mean": (a + b + c) / 3, "prod": a * b * c, "cat": torch.cat([a, b, c], 1)}[merge]
    assert_same(offline, expected, tol=1e-12)


# ---------------------------------------------------------------- Sequential converts torch layers


def test_sequential_converts_torch_time_layers_and_wraps_activations() -> None:
    torch.manual_seed(0)
    conv = nn.Conv1d(2, 4, 3, padding=1)
    relu = nn.ReLU()
    pad = nn.ConstantPad1d((2, 0), 0.0)
    valid = nn.Conv1d(4, 4, 3)
    down = nn.Conv1d(4, 4, 4, stride=2, padding=1)
    up = nn.ConvTranspose1d(4, 4, 6, 2, 1)
    lstm = nn.LSTM(4, 3, batch_first=True)
    reflect = nn.ReflectionPad1d((1, 1))
    pool = nn.AvgPool1d(3, 1)
    torch_layers = [conv, relu, pad, valid, down, up, lstm, reflect, pool]
    model = Sequential(*torch_layers).double()
    kinds = [Conv1d, Pointwise, Pad, Conv1d, Conv1d, ConvTranspose1d, LSTM, Pad, AvgPool1d]
    assert [type(layer) for layer in model.layers] == kinds
    assert model.layers[1].module is relu
    assert model.layers[7].mode == "reflect"
    # weights are copied: the torch layers are left as they were
    assert conv.weight.dtype == torch.float32
    assert torch.equal(model.layers[0].weight, conv.weight.double())

    x = signal(3, 48)
    with torch.no_grad():
        reference = x
        for layer in [m.double() for m in torch_layers]:
            if isinstance(layer, nn.LSTM):
                reference = layer(reference.transpose(1, 2))[0].transpose(1, 2)
            else:
                reference = layer(reference)
        assert_same(model.offline(x), reference, tol=1e-12)
    # reflect padding (after the LSTM) differs from offline only at the start of a stream: the pool
    # after it mixes 3 frames
    y = stream(model, x, sizes_of(model, [2, 4, 6, 12]))
    assert_exact(y, model.offline(x), model.delay, warmup=3)


def test_sequential_converts_pools_upsamplers_gru_and_nested_sequentials() -> None:
    model = Sequential(
        nn.Sequential(nn.Conv1d(2, 3, 3, padding=1), nn.GELU()),
        nn.MaxPool1d(2),
        nn.GRU(3, 2),
        nn.Upsample(scale_factor=2),
        nn.Upsample(scale_factor=2, mode="linear"),
    ).double()
    assert [type(layer) for layer in model.layers] == [Sequential, MaxPool1d, GRU, NearestUpsample, LinearUpsample]
    assert model.ratio == Fraction(1, 2)
    x = signal(2, 32)
    y = stream(model, x, sizes_of(model, [1, 3, 4, 8]))
    # the linear upsampler clamps its first output frame offline
    assert_exact(y, model.offline(x), model.delay, warmup=2)


class HiddenConv(nn.Module):
    """A custom block whose forward runs a conv with kernel 3: a container cannot see its padding."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Conv1d(2, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.inner(x))


class HiddenRecurrence(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(2, 2, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rnn(x.transpose(1, 2))[0].transpose(1, 2)


class OneByOne(nn.Module):
    """A custom pointwise block: a 1x1 conv and an activation."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Conv1d(2, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.proj(x))


@pytest.mark.parametrize(
    ("block", "child", "child_type"), [(HiddenConv, "inner", "Conv1d"), (HiddenRecurrence, "rnn", "GRU")]
)
def test_a_custom_module_hiding_a_time_layer_is_refused(block, child: str, child_type: str) -> None:
    for container in (
        lambda m: Sequential(nn.Identity(), m),
        lambda m: Branches(m, nn.Identity()),
        lambda m: Residual(m),
    ):
        with pytest.raises(StreamingError) as error:
            container(block())
        message = str(error.value)
        assert block.__name__ in message and repr(child) in message and child_type in message, message
        assert "streamify.convert" in message


def test_a_custom_pointwise_module_is_accepted() -> None:
    model = Sequential(Conv1d(2, 2, 3, padding=1), OneByOne()).double()
    assert isinstance(model.layers[1], Pointwise)
    x = signal(2, 24)
    assert_exact(stream(model, x, [4, 8, 12]), model.offline(x), model.delay)


def test_whole_axis_layers_are_refused() -> None:
    with pytest.raises(StreamingError, match=r"AdaptiveAvgPool1d reads the whole time axis"):
        Sequential(nn.Conv1d(2, 2, 3), nn.AdaptiveAvgPool1d(1))


def test_branches_at_different_rates_are_refused() -> None:
    with pytest.raises(StreamingError, match=r"Branches: branches end at different rates"):
        Branches(Conv1d(2, 2, 3, padding=1), Conv1d(2, 2, 4, stride=2, padding=1))
    with pytest.raises(StreamingError, match=r"different rates"):
        Residual(NearestUpsample(2))


def test_container_construction_errors() -> None:
    with pytest.raises(StreamingError, match=r"Sequential\.1:Conv1d expects 3 channels but the layer before gives 4"):
        Sequential(Conv1d(2, 4, 3), Conv1d(3, 3, 3))
    with pytest.raises(StreamingError, match=r"at least one layer"):
        Sequential()
    with pytest.raises(StreamingError, match=r"merge 'max' is not one of"):
        Branches(Conv1d(2, 2, 1), merge="max")


# ---------------------------------------------------------------- offline mode


@pytest.mark.parametrize("kind", ["sequential", "branches", "nested", "heads"])
def test_set_streaming_false_makes_forward_offline(kind: str) -> None:
    model = build(kind)
    set_streaming(model, False)
    assert all(not m.streaming for m in model.modules() if hasattr(m, "streaming"))
    # any length and any batch size, call after call: no stream, no state
    for batch, frames in [(2, 37), (5, 64), (1, 11)]:
        # lengths need not be multiples of buffer_multiple where the model itself allows it offline
        odd = 1 if kind in ("sequential", "heads") else 0
        x = signal(batch, frames * model.buffer_multiple + odd, seed=frames)
        with torch.no_grad():
            assert_same(model(x), model.offline(x), tol=0.0)
    assert model.cache_bytes == 0
    set_streaming(model, True)
    x = signal(3, 8 * model.buffer_multiple)
    sizes = sizes_of(model, [4, 4])
    assert_same(stream(model, x, sizes), stream(build(kind), x, sizes), tol=0.0)


def test_offline_mode_trains() -> None:
    """Offline mode is the training path: gradients reach the weights."""
    model = build("sequential")
    set_streaming(model, False)
    x = signal(2, 30)
    model(x).square().mean().backward()
    assert model.layers[0].weight.grad is not None and model.layers[0].weight.grad.abs().sum() > 0


def test_heads_fresh_stream_starts_with_each_heads_delay_in_zeros():
    torch.manual_seed(0)
    model = Heads(
        Sequential(Conv1d(2, 3, 5, padding=2), Conv1d(3, 2, 4, stride=2, padding=1)),
        Sequential(Conv1d(2, 2, 3, padding=1)),
    ).double()
    x = torch.randn(2, 2, 64, dtype=torch.float64)
    outputs = [[], []]
    for chunk in x.split(8, dim=-1):
        for i, y in enumerate(model(chunk)):
            outputs[i].append(y)
    offline = model.offline(x)
    for i, delay in enumerate(model.delays):
        streamed = torch.cat(outputs[i], -1)
        assert delay > 0
        assert torch.all(streamed[..., :delay] == 0)
        n = streamed.size(-1) - delay
        assert torch.allclose(streamed[..., delay:], offline[i][..., :n], atol=1e-12, rtol=0)
