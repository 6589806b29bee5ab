"""The time algebra written once (streamify.layers.timeline): the fold, the lead guard, alignment.

The containers and the converter both fold timing through it; a chain built by hand and the same
chain converted from torch must therefore report the same delay, rate, buffer multiple and field.
"""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch
from torch import nn

import streamify
from streamify.layers import AvgPool1d, Conv1d, ConvTranspose1d, Crop, Delay, Pad, Pointwise, Sequential
from streamify.layers.base import StreamingError
from streamify.layers.timeline import (
    Fold,
    LeadGuard,
    RatesDiffer,
    Timing,
    align,
    align_in_time,
    guarded,
    in_phase,
    lead_frames,
)


def test_layer_classes_declare_what_they_are_in_time():
    conv, pad, crop, delay = Conv1d(1, 1, 3), Pad(2), Crop(1), Delay(1)
    relu = Pointwise(nn.ReLU())
    assert [m.takes_early_stream for m in (conv, pad, crop, delay, relu)] == [True, True, True, True, False]
    assert [m.makes_early_stream for m in (conv, pad, crop, delay, relu)] == [False, True, False, False, False]
    assert [m.keeps_early_stream for m in (conv, pad, crop, delay, relu)] == [False, True, True, True, False]
    assert AvgPool1d(3, 1, 1).starts_exact() and not AvgPool1d(3, 1, 1, count_include_pad=False).starts_exact()
    assert Conv1d(1, 1, 3).tunable_matmul and ConvTranspose1d(1, 1, 4, 2).tunable_matmul and not pad.tunable_matmul


def test_pad_with_zeros_switches_only_paddings_that_read_the_signal():
    reflect, zeros = Conv1d(1, 1, 3, padding=1, padding_mode="reflect"), Conv1d(1, 1, 3, padding=1)
    assert reflect.pad_with_zeros() and reflect.padding_mode == "zeros"
    assert not zeros.pad_with_zeros()
    pad = Pad(2, 0, "replicate")
    assert pad.pad_with_zeros() and (pad.mode, pad.pad_value) == ("constant", 0.0)


def test_lead_frames_guard_only_layers_that_cannot_take_an_early_stream():
    assert lead_frames(Pointwise(nn.Tanh()), -3) == 3
    assert lead_frames(Pointwise(nn.Tanh()), 2) == 0
    assert lead_frames(Conv1d(1, 1, 3), -3) == 0


def test_fold_matches_the_formulas_of_the_rules():
    fold = Fold()
    t = fold.place(Conv1d(1, 1, 4, stride=2, padding=1), Timing())
    assert (t.delay, t.ratio, t.field) == (1, Fraction(2), Fraction(4))
    t = fold.place(Conv1d(1, 1, 3, stride=4, padding=1), t)
    # field 4 + (3 - 1) * 2 input samples; lengths: multiples of 2, and of 4 frames at ratio 2
    assert (t.ratio, t.field, fold.buffer_multiple) == (Fraction(8), Fraction(8), 8)


def test_guards_go_after_a_pad_before_the_first_layer_that_cannot_lead():
    relu = Pointwise(nn.ReLU())
    chain = guarded([Pad(3), Crop(1), relu, Conv1d(1, 1, 3)])
    assert [type(m).__name__ for m in chain] == ["Pad", "Crop", "LeadGuard", "Pointwise", "Conv1d"]
    assert [type(m).__name__ for m in guarded([Pad(3), Conv1d(1, 1, 3), relu])] == ["Pad", "Conv1d", "Pointwise"]
    model = Sequential(Pad(3), Crop(1), nn.ReLU())
    guard = next(m for m in model.layers if isinstance(m, LeadGuard))
    assert guard.frames == 2 and model.delay == 0


def test_align_delays_and_refuses_different_rates():
    a = align([Timing(1), Timing(4, field=None), Timing(-2)])
    assert a.lines == (3, 0, 6) and a.timing.delay == 4 and a.timing.field is None
    assert align([Timing(-2), Timing(-5)]).lines == (2, 5)  # a consumer that cannot lead: at least delay 0
    assert align([Timing(-2), Timing(-5)], takes_early_stream=True).lines == (0, 3)
    with pytest.raises(RatesDiffer) as error:
        align([Timing(0, Fraction(2)), Timing(0, Fraction(1, 2))])
    assert error.value.ratios == [Fraction(1, 2), Fraction(2)] and isinstance(error.value, StreamingError)


def test_align_in_time_and_phase():
    assert align_in_time([Timing(1), Timing(1, Fraction(2))]) == (1, 0)
    assert align_in_time([Timing(0), Timing(1, Fraction(3))]) == (3, 0)
    assert [in_phase(d, 4) for d in (-3, 0, 1, 4, 5)] == [3, 0, 3, 0, 3]


CHAINS = [
    lambda: [nn.Conv1d(1, 4, 5, padding=2), nn.ReLU(), nn.Conv1d(4, 4, 4, stride=2, padding=1), nn.Tanh()],
    lambda: [nn.ConstantPad1d((3, 0), 0.0), nn.Tanh(), nn.Conv1d(1, 2, 3), nn.ConvTranspose1d(2, 1, 4, 2, 1)],
    lambda: [nn.Conv1d(1, 2, 3, stride=3), nn.Upsample(scale_factor=2), nn.AvgPool1d(2), nn.Conv1d(2, 1, 1)],
]


@pytest.mark.parametrize("make", CHAINS)
def test_hand_built_and_converted_chains_have_one_timing(make):
    torch.manual_seed(0)
    layers = make()
    built = Sequential(*layers)
    converted = streamify.convert(nn.Sequential(*layers), torch.randn(1, 1, 96), capture="ops")
    assert (built.delay, built.ratio, built.buffer_multiple, built.receptive_field) == (
        converted.delay,
        converted.ratio,
        converted.buffer_multiple,
        converted.receptive_field,
    )
