"""Parallel branches are aligned on the most delayed one, wherever it sits among them (first, middle, last)."""

from __future__ import annotations

import pytest
import torch

from helpers import assert_streams_exactly
from streamify.layers import Branches, Conv1d


def _branch(delay: int) -> Conv1d:
    """A centred conv of look-ahead (delay) ``delay``."""
    return Conv1d(2, 2, 2 * delay + 1, padding=delay)


@pytest.mark.parametrize("merge", ["sum", "cat", "prod", "mean"])
@pytest.mark.parametrize("delays", [(0, 3, 1), (2, 0, 1), (1, 2, 0), (0, 1, 3)])
def test_three_branches_align_on_the_most_delayed(delays, merge: str) -> None:
    torch.manual_seed(0)
    model = Branches(*[_branch(d) for d in delays], merge=merge)
    assert model.delay == max(delays)
    assert_streams_exactly(model, 2, frames=96)
