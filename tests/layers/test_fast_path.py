"""The matrix-product paths of Conv1d / ConvTranspose1d (every product) equal the generic kernels."""

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import streamify
from helpers import assert_streams_exactly
from streamify.layers import Conv1d
from streamify.layers.conv import FAST_PATH_MAX_ROWS
from streamify.layers.conv_kernels import (
    BLOCK_BYTES,
    FEW_ROWS,
    KERNEL_LABELS,
    ConvKernel,
    block_rows,
    default_kernel,
    rows_by_weight,
)
from streamify.layers.conv_transpose import ConvTranspose1d

GENERIC, ROWS_LEFT, WEIGHT_LEFT, BLOCKED, COLUMNS = (
    p.value
    for p in (ConvKernel.GENERIC, ConvKernel.ROWS_LEFT, ConvKernel.WEIGHT_LEFT, ConvKernel.BLOCKED, ConvKernel.COLUMNS)
)
#: the portable products (the native one: tests/native)
PRODUCTS = [ROWS_LEFT, WEIGHT_LEFT, BLOCKED, COLUMNS]
#: the value that tables saved by earlier versions may hold for the dropped matrix-vector product
RETIRED_MATRIX_VECTOR = 1

GRID = list(itertools.product([1, 2, 4], [1, 3, 4], [1, 2, 3], [1, 3], [1, 4], [True, False]))


@pytest.mark.parametrize("product", PRODUCTS)
@pytest.mark.parametrize("groups,kernel,stride,dilation,batch,bias", GRID)
def test_conv1d_matmul_equals_conv1d(groups, kernel, stride, dilation, batch, bias, product):
    torch.manual_seed(0)
    conv = Conv1d(8, 12, kernel, stride=stride, dilation=dilation, groups=groups, bias=bias, dtype=torch.float64)
    for frames in (1, 2, 5, 9, FAST_PATH_MAX_ROWS):
        z = torch.randn(batch, 8, conv.span + (frames - 1) * stride + stride - 1, dtype=torch.float64)
        expected = F.conv1d(z, conv.weight, conv.bias, stride, 0, dilation, groups)
        got = conv._window_matmul(z, (z.size(-1) - conv.span) // stride + 1, product)
        assert got.shape == expected.shape
        assert (got - expected).abs().max().item() <= 1e-12


@pytest.mark.parametrize("product", PRODUCTS)
@pytest.mark.parametrize("groups,kernel,stride,dilation,batch,bias", GRID)
def test_conv_transpose_matmul_equals_conv_transpose(groups, kernel, stride, dilation, batch, bias, product):
    torch.manual_seed(0)
    conv = ConvTranspose1d(
        8, 12, kernel, stride=stride, dilation=dilation, groups=groups, bias=bias, dtype=torch.float64
    )
    for frames in (1, 2, 5, 9, FAST_PATH_MAX_ROWS):
        x = torch.randn(batch, 8, frames, dtype=torch.float64)
        expected = F.conv_transpose1d(x, conv.weight, None, stride, 0, 0, groups, dilation)
        got = conv._contributions_matmul(x, product)
        assert got.shape == expected.shape
        assert (got - expected).abs().max().item() <= 1e-12


@pytest.mark.parametrize("product", PRODUCTS)
@pytest.mark.parametrize("frames,batch", [(1, 1), (5, 1), (5, 3)])
def test_conv1d_products_give_conv1d_gradients(product, frames, batch):
    """The bias is added in place to the product's new tensor: gradients must still be conv1d's."""
    torch.manual_seed(0)
    conv = Conv1d(5, 7, 3, dilation=2, dtype=torch.float64)
    z = torch.randn(batch, 5, conv.span + frames - 1, dtype=torch.float64, requires_grad=True)
    grad_out = torch.randn(batch, 7, frames, dtype=torch.float64)
    got = torch.autograd.grad(conv._window_matmul(z, frames, product), [z, conv.weight, conv.bias], grad_out)
    expected = torch.autograd.grad(F.conv1d(z, conv.weight, conv.bias, 1, 0, 2), [z, conv.weight, conv.bias], grad_out)
    for g, e in zip(got, expected):
        assert (g - e).abs().max().item() <= 1e-12


def _calls(module, name):
    counter = {"n": 0}
    original = getattr(module, name)

    def counted(*args):
        counter["n"] += 1
        return original(*args)

    setattr(module, name, counted)
    return counter


@pytest.mark.parametrize("transpose", [False, True])
def test_fast_path_chosen_for_few_frames_only(transpose):
    torch.manual_seed(0)
    if transpose:
        layer = ConvTranspose1d(4, 6, 4, stride=2, dtype=torch.float64)
        counter = _calls(layer, "_contributions_matmul")
    else:
        layer = Conv1d(4, 6, 3, stride=2, dilation=2, padding=2, dtype=torch.float64)
        counter = _calls(layer, "_window_matmul")
    layer(torch.randn(1, 4, 4, dtype=torch.float64))
    assert counter["n"] == 1
    layer(torch.randn(1, 4, 4 * FAST_PATH_MAX_ROWS, dtype=torch.float64))
    assert counter["n"] == 1
    layer.fast_path_rows = 0
    layer(torch.randn(1, 4, 4, dtype=torch.float64))
    assert counter["n"] == 1


def test_default_kernel_by_rows():
    assert default_kernel(1, 128) == ROWS_LEFT
    assert default_kernel(2, 128) == ROWS_LEFT
    assert default_kernel(128, 128) == ROWS_LEFT
    assert default_kernel(129, 128) == GENERIC
    assert default_kernel(1, 0) == GENERIC
    # few rows by a weight of several blocks: blocked; more rows, or one block: rows-left
    assert default_kernel(1, 128, weight_blocks=4) == BLOCKED
    assert default_kernel(FEW_ROWS, 128, weight_blocks=2) == BLOCKED
    assert default_kernel(FEW_ROWS + 1, 128, weight_blocks=2) == ROWS_LEFT
    assert default_kernel(2, 128, weight_blocks=1) == ROWS_LEFT
    assert default_kernel(2, 0, weight_blocks=4) == GENERIC


def test_untuned_conv_with_a_large_weight_streams_few_rows_blocked():
    """A conv whose weight spans several blocks computes calls of few frames by the blocked product
    (a small one by rows-left), and streams what the offline conv computes."""
    torch.manual_seed(0)
    conv = Conv1d(192, 256, 3, stride=2, padding=1, dtype=torch.float64)  # 256 x 576 doubles: 8 blocks
    small = Conv1d(8, 12, 3, stride=2, padding=1, dtype=torch.float64)
    assert conv.weight_blocks() > 1 and small.weight_blocks() == 1
    chosen = []
    for layer in (conv, small):
        original = layer.matmul.forward
        layer.matmul.forward = lambda *args, run=original: chosen.append(args[3]) or run(*args)
    x = torch.randn(2, 192, 40, dtype=torch.float64)
    y = torch.cat([conv(x[..., i : i + n]) for i, n in ((0, 2), (2, 4), (6, 16), (22, 18))], -1)
    assert chosen == [BLOCKED, BLOCKED, ROWS_LEFT, ROWS_LEFT]  # batch 2 x 1, 2, 8, 9 frames: 2, 4, 16, 18 rows
    assert (y[..., conv.delay :] - conv.offline(x)[..., : y.size(-1) - conv.delay]).abs().max().item() <= 1e-12
    small(torch.randn(1, 8, 4, dtype=torch.float64))
    assert chosen[-1] == ROWS_LEFT


@pytest.mark.parametrize("transpose", [False, True])
def test_products_table_overrides_the_default(transpose):
    torch.manual_seed(0)
    if transpose:
        layer = ConvTranspose1d(4, 6, 4, stride=2, dtype=torch.float64)
        counter = _calls(layer, "_contributions_matmul")
        rows_of = lambda batch, n: batch * n  # noqa: E731
    else:
        layer = Conv1d(4, 6, 3, stride=2, padding=2, dtype=torch.float64)
        counter = _calls(layer, "_window_matmul")
        rows_of = lambda batch, n: batch * (n // 2)  # noqa: E731
    layer.kernel_table[rows_of(2, 4)] = GENERIC
    layer(torch.randn(2, 4, 4, dtype=torch.float64))
    assert counter["n"] == 0  # the table said generic for these rows
    layer.kernel_table[rows_of(2, 4 * FAST_PATH_MAX_ROWS)] = WEIGHT_LEFT
    layer(torch.randn(2, 4, 4 * FAST_PATH_MAX_ROWS, dtype=torch.float64))
    assert counter["n"] == 1  # a product beyond the default's bound, because the table says so


@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("product", PRODUCTS)
def test_stream_with_each_product_equals_generic_stream(transpose, groups, batch, product):
    torch.manual_seed(0)
    if transpose:
        fast = ConvTranspose1d(6, 4, 5, stride=2, dilation=2, padding=1, groups=groups, dtype=torch.float64)
        generic = ConvTranspose1d(6, 4, 5, stride=2, dilation=2, padding=1, groups=groups, dtype=torch.float64)
    else:
        fast = Conv1d(6, 4, 3, stride=2, dilation=3, padding=3, groups=groups, dtype=torch.float64)
        generic = Conv1d(6, 4, 3, stride=2, dilation=3, padding=3, groups=groups, dtype=torch.float64)
    generic.load_state_dict(fast.state_dict())
    generic.fast_path_rows = 0
    fast.kernel_table = {rows: product for rows in range(1, 300)}
    scripted = torch.jit.script(fast)
    for n in (2, 4, 8, 64, 2):
        x = torch.randn(batch, 6, n, dtype=torch.float64)
        expected = generic(x)
        assert (fast(x) - expected).abs().max().item() <= 1e-12
        assert (scripted(x) - expected).abs().max().item() <= 1e-12


@pytest.mark.parametrize("product", PRODUCTS)
def test_model_with_each_product_streams_exactly_against_offline(product):
    # every conv of a model forced to one product: streamed == offline at the model's delay, and one
    # sample off fails (assert_streams_exactly checks both)
    torch.manual_seed(0)
    plain = nn.Sequential(
        nn.Conv1d(2, 8, 5, padding=2),
        nn.Tanh(),
        nn.Conv1d(8, 12, 4, stride=2, padding=1),
        nn.Conv1d(12, 12, 3, padding=3, dilation=3, groups=2),
        nn.ConvTranspose1d(12, 6, 4, stride=2, padding=1),
        nn.Conv1d(6, 1, 3, padding=1),
    ).double()
    model = streamify.convert(plain, torch.randn(1, 2, 64, dtype=torch.float64))
    for layer in model.modules():
        if isinstance(layer, (Conv1d, ConvTranspose1d)):
            layer.kernel_table = {rows: product for rows in range(1, 300)}
    assert_streams_exactly(model, frames=128, batch=3, sizes=[2, 4, 6, 8, 2, 10, 16, 8, 72])


def test_product_values_are_the_ones_saved_tables_hold():
    # tables in pickled models and TorchScript files store these ints: they must not change
    assert {p.value: p.label for p in ConvKernel} == {
        0: "generic",
        2: "rows-left",
        3: "weight-left",
        4: "blocked",
        5: "native",
        6: "columns",
    }
    assert {p.value: p.label for p in ConvKernel} == KERNEL_LABELS
    rows, weight = torch.randn(3, 5, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    assert rows_by_weight(rows, weight, None, ROWS_LEFT).is_contiguous()
    assert not rows_by_weight(rows, weight, None, WEIGHT_LEFT).is_contiguous()  # (weight @ rows.t()).t()


@pytest.mark.parametrize("transpose", [False, True])
def test_retired_matrix_vector_runs_rows_left(transpose):
    """A table saved by an earlier version may name matrix-vector (1): those rows run rows-left, bit
    for bit, in eager and scripted layers, and stream as the generic kernel does."""
    torch.manual_seed(0)
    make = (
        (lambda: ConvTranspose1d(6, 4, 5, stride=2, padding=1, dtype=torch.float64))
        if transpose
        else (lambda: Conv1d(6, 4, 3, stride=2, dilation=3, padding=3, dtype=torch.float64))
    )
    rows_left, generic = make(), make()
    generic.load_state_dict(rows_left.state_dict())
    generic.fast_path_rows = 0
    rows_left.kernel_table = {rows: ROWS_LEFT for rows in range(1, 300)}
    old = make()
    old.load_state_dict(rows_left.state_dict())
    old.kernel_table = {rows: RETIRED_MATRIX_VECTOR for rows in range(1, 300)}
    scripted = torch.jit.script(old)
    per_frame = 1 if transpose else 2  # input frames per output frame (conv) or per row (transposed)
    for frames in (1, 1, 2, 4, 32, 1):  # one row per call of a batch-1 stream: the matrix-vector case
        x = torch.randn(1, 6, per_frame * frames, dtype=torch.float64)
        expected, got, got_scripted = rows_left(x), old(x), scripted(x)
        assert torch.equal(got, expected) and torch.equal(got_scripted, expected)
        assert (got - generic(x)).abs().max().item() <= 1e-12


def test_block_rows_divide_the_weight_and_fit_the_block_bytes():
    for out_features, in_features in [(1536, 3072), (768, 2304), (96, 288), (7, 5), (13, 100000), (1, 1)]:
        rows = block_rows(out_features, in_features)
        assert out_features % rows == 0 and rows >= 1
        assert rows == 1 or rows * in_features * 4 <= BLOCK_BYTES
    assert block_rows(1536, 3072) == 16  # 21 rows would fit: 16 is the largest divisor below
    rows, weight = torch.randn(5, 12, dtype=torch.float64), torch.randn(6, 12, dtype=torch.float64)
    for per_block in (1, 2, 3, 6):
        got = rows_by_weight(rows, weight, None, BLOCKED, per_block)
        assert (got - rows @ weight.t()).abs().max().item() <= 1e-12
