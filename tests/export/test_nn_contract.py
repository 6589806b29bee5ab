"""The host contract an exported method must pass before a file is written: each fault is named, a good stream passes."""

from __future__ import annotations

import pytest
import torch
from export_models import PowerOfTwoAutoencoder, build

from streamify import StreamingError
from streamify.convert import convert
from streamify.export.methods import ConvertedMethod
from streamify.export.nn_contract import check_nn_contract


def _example() -> torch.Tensor:
    return torch.randn(1, 1, 512, generator=torch.Generator().manual_seed(3))


def _method() -> ConvertedMethod:
    stream = convert(build(PowerOfTwoAutoencoder), _example())
    return ConvertedMethod("forward", stream, _example(), 1, 1)


@pytest.mark.parametrize(
    "fault, message",
    [
        ("shape", r"buffer size 256 samples, batch 1: returns shape \(1, 1, 255\)"),
        ("dtype", "returns torch.float64, the host reads float32"),
        ("random", "two runs from a fresh stream differ.*nondeterministic"),
        ("batch", "batch 2: the output depends on another batch item"),
        ("delay", "differs from the offline output shifted by the delay"),
        ("nan", "NaN or infinite"),
        ("raise", "the call raised RuntimeError: broken"),
        ("list", "returns a list, not one tensor"),
        ("optimized", "buffer size 512 samples, batch 1: the output differs under TorchScript's optimising executor"),
    ],
)
def test_contract_check_names_the_method_and_the_fault(fault, message):
    method = _method()
    stream = method.stream

    def call(x):
        y = stream(x)
        if fault == "shape":
            return y[..., 1:]
        if fault == "dtype":
            return y.double()
        if fault == "random":
            return y + 1e-3 * torch.randn_like(y)
        if fault == "batch":
            return y + y.mean(0, keepdim=True) if y.size(0) > 1 else y
        if fault == "delay":
            return torch.cat([y[..., :1] * 0, y[..., :-1]], -1)
        if fault == "raise":
            raise RuntimeError("broken")
        if fault == "list":
            return [y]
        if fault == "optimized":  # wrong only where nn~ runs it: under TorchScript's optimising executor
            return y * 1.01 if torch._C._get_graph_executor_optimize() else y
        return y * float("nan")

    with pytest.raises(StreamingError, match=r"method 'forward' breaks the real-time host contract.*" + message):
        check_nn_contract(method, call, stream.reset, [256, 512], "test")


def test_contract_check_passes_a_good_stream_and_reports_sizes():
    method = _method()
    report = check_nn_contract(method, method.stream, method.stream.reset, [256, 1024], "test")
    assert report.buffer_sizes == [256, 1024] and report.batch_sizes == [1, 2]
    assert report.max_rel_error <= 1e-5 and report.warmup_frames == 0 and report.compared_frames > 500


class _Late:
    """The method's stream followed by ``frames`` output frames of latency: zeros, or ``fill`` (a broken host)."""

    def __init__(self, method: ConvertedMethod, frames: int, fill: float = 0.0):
        self.stream, self.frames, self.fill = method.stream, frames, fill
        self.reset()

    def reset(self) -> None:
        self.stream.reset()
        self.tail = torch.full((2, 1, self.frames), self.fill)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([self.tail[: x.size(0)], self.stream(x)], -1)
        self.tail = torch.cat([y[..., -self.frames :], self.tail[x.size(0) :]], 0)
        return y[..., : -self.frames]


def test_buffering_latency_is_skipped_when_silent_and_refused_otherwise():
    method = _method()
    late = _Late(method, 3)
    report = check_nn_contract(method, late, late.reset, [256, 512], "test", extra_frames=lambda n: 3)
    assert report.max_rel_error <= 1e-5 and report.warmup_frames == 0
    with pytest.raises(StreamingError, match="differs from the offline output shifted by the delay"):
        check_nn_contract(method, late, late.reset, [256, 512], "test")  # latency not declared
    noisy = _Late(method, 3, fill=0.5)
    with pytest.raises(StreamingError, match=r"the first 3 frames \(the buffering latency\) are not silent"):
        check_nn_contract(method, noisy, noisy.reset, [256, 512], "test", extra_frames=lambda n: 3)
