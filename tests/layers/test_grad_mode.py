"""Streams called with gradients recorded (the default grad mode), scripted ones above all.

The products add the bias, and the transposed conv its tail, in place when no gradient is recorded
(one allocation and one pass fewer per conv); with gradients recorded they must add out of place,
since autograd refuses an in-place update of the views a scripted graph makes ("a view of a leaf
Variable that requires grad is being used in an in-place operation"). Whether a scripted graph
hits that depends on what the JIT profiled before in the process, so the check runs in a fresh one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

from streamify.layers.conv_kernels import ConvKernel, rows_by_weight

SRC = Path(__file__).resolve().parents[2] / "src"

FRESH_PROCESS = textwrap.dedent(
    """
    import torch
    from streamify.layers import Conv1d, ConvTranspose1d
    from streamify.layers.conv_kernels import ConvKernel


    def weight_left(layer):
        layer.kernel_table = {1: ConvKernel.WEIGHT_LEFT.value}
        return layer


    torch.manual_seed(0)
    cases = [
        # one output frame per call: weight-left's product is a transposed view, the bias was added to it
        ("conv", lambda: weight_left(Conv1d(6, 4, 3, stride=2, dilation=3, padding=3, dtype=torch.float64)), 2),
        # one input frame per call: the product's view is the output, the tail was added to it
        ("transpose", lambda: ConvTranspose1d(6, 4, 4, stride=2, padding=1, bias=False, dtype=torch.float64), 1),
        ("transpose+bias", lambda: ConvTranspose1d(6, 4, 4, stride=2, padding=1, dtype=torch.float64), 1),
    ]
    for name, make, n in cases:
        layer = make()
        reference = make()
        reference.load_state_dict(layer.state_dict())
        reference.fast_path_rows = 0  # PyTorch's generic kernels
        scripted = torch.jit.script(layer)
        x = torch.randn(1, 6, 6 * n, dtype=torch.float64)
        outputs = []
        for i in range(6):  # the JIT optimises after its profiling runs: the failure came at call 2
            y = scripted(x[..., i * n : (i + 1) * n])
            assert y.requires_grad, name
            outputs.append(y)
        streamed = torch.cat(outputs, -1)
        with torch.no_grad():
            expected = torch.cat([reference(x[..., i * n : (i + 1) * n]) for i in range(6)], -1)
        assert (streamed.detach() - expected).abs().max().item() <= 1e-12, name
        grad_out = torch.randn_like(streamed)
        got = torch.autograd.grad(streamed, [layer.weight], grad_out)[0]
        reference.reset()
        wanted = torch.autograd.grad(
            torch.cat([reference(x[..., i * n : (i + 1) * n]) for i in range(6)], -1), [reference.weight], grad_out
        )[0]
        assert (got - wanted).abs().max().item() <= 1e-12, name
        print(name, "ok")
    """
)


def test_scripted_streams_run_with_gradients_recorded_in_a_fresh_process() -> None:
    completed = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert completed.stdout.split() == ["conv", "ok", "transpose", "ok", "transpose+bias", "ok"]


class _Recorder(TorchFunctionMode):
    """Names of the torch functions and tensor methods called."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.names.append(getattr(func, "__name__", str(func)))
        return func(*args, **(kwargs or {}))


def _bias_adds(grad: bool, product: int) -> list:
    generator = torch.Generator().manual_seed(0)
    rows = torch.randn(3, 8, generator=generator)
    weight = torch.randn(6, 8, generator=generator, requires_grad=True)
    bias = torch.randn(6, generator=generator, requires_grad=True)
    with torch.set_grad_enabled(grad), _Recorder() as recorder:
        y = rows_by_weight(rows, weight, bias, product, 2)
    assert torch.allclose(y, rows @ weight.t() + bias, atol=1e-5)
    return [name for name in recorder.names if name in ("add", "add_", "__add__")]


def test_the_bias_is_added_in_place_only_when_no_gradient_is_recorded() -> None:
    for product in (ConvKernel.ROWS_LEFT.value, ConvKernel.WEIGHT_LEFT.value, ConvKernel.BLOCKED.value):
        assert _bias_adds(grad=False, product=product) == ["add_"], product
        assert _bias_adds(grad=True, product=product) == ["add"], product
