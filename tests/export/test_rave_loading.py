"""An acids-rave run named to ``streamify.loading``: the host runs its methods as the export converts them."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from rave_run import write_run

from streamify import StreamingError
from streamify.loading import Kind, resolve


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        return write_run(tmp_path_factory.mktemp("rave") / "small_v2")


def test_the_host_runs_a_run_as_its_offline_forward(run) -> None:
    """Resolved once (config.gin + checkpoint), converted with its draws at their expected values, streamed by the
    host: the offline forward from the first sample, and one sample of wrong delay is seen."""
    from streamify.host import load_host_model, process_array

    with pytest.raises(StreamingError, match="--channels do not apply to an acids-rave run"):
        resolve(str(run), channels=2)  # refused before the run is loaded
    resolved = resolve(str(run))
    assert (resolved.kind, resolved.channels, resolved.sample_rate) == (Kind.rave_run, 1, 48000)
    assert resolved.path is not None and resolved.path.suffix == ".ckpt" and not resolved.streaming
    model = load_host_model(resolved)
    assert (model.kind, model.in_channels, model.out_channels, model.sample_rate) == ("torch", 1, 1, 48000)
    x = np.random.default_rng(0).standard_normal((1, 8192)).astype(np.float32) * 0.1
    streamed, _ = process_array(model, x, 512, compensate=True)  # lined up with the input
    with torch.no_grad():
        offline = resolved.module(torch.from_numpy(x)[None])[0].numpy()
    n = 8192 - model.delay  # what a stream of 8192 samples gives of the offline output
    peak = np.abs(offline).max()
    assert streamed.shape == (1, 8192) and np.abs(streamed[:, :n] - offline[:, :n]).max() <= 1e-4 * peak
    assert np.abs(streamed[:, 1:n] - offline[:, : n - 1]).max() > 1e-2 * peak
