"""Every input of a join is aligned on the most delayed one, not only the first and the last.

``torch.cat`` of three branches whose delays differ (the middle one the least delayed): the
converter must delay each branch that lags less than the most delayed one. Checked without the
conversion's own verification (``verify=False``), which would otherwise refuse a wrong result
before the test sees it: the test is the check here.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import streamify
from helpers import assert_streams_exactly


class ThreeWay(nn.Module):
    """Three branches of look-ahead ``delays`` (centred convs), joined over channels, then mixed."""

    def __init__(self, delays) -> None:
        super().__init__()
        self.branches = nn.ModuleList(nn.Conv1d(2, 2, 2 * d + 1, padding=d) for d in delays)
        self.mix = nn.Conv1d(6, 2, 1)

    def forward(self, x):
        return self.mix(torch.cat([branch(x) for branch in self.branches], 1))


@pytest.mark.parametrize("delays", [(3, 0, 2), (2, 1, 4), (1, 3, 0), (0, 2, 0)])
def test_a_three_way_cat_streams_exactly_without_verification(delays) -> None:
    torch.manual_seed(0)
    model = ThreeWay(delays).double()
    stream = streamify.convert(model, torch.randn(1, 2, 64, dtype=torch.float64), verify=False)
    assert stream.delay == max(delays)
    assert_streams_exactly(stream, 2, frames=128)
