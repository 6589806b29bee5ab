"""streamify.native: the compiled product equals rows @ weight.t(), streams exactly in the
convs, survives scripting, and never reaches files made for other hosts."""

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import streamify
from helpers import assert_streams_exactly
from streamify import native
from streamify.layers import Conv1d, ConvTranspose1d, StreamingError
from streamify.layers.conv_kernels import ConvKernel, TorchMatmul
from streamify.native import build

NATIVE = ConvKernel.NATIVE.value


@pytest.fixture(scope="module")
def op():
    """The compiled op; CI has a compiler, so there its absence is a failure, not a skip."""
    if not native.load():
        message = f"native products unavailable: {native.unavailable_reason()}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return torch.ops.streamify.rows_by_weight


def _weight(n: int, k: int, columns: bool, dtype: torch.dtype, generator: torch.Generator) -> torch.Tensor:
    """``[n, k]``: rows contiguous (a conv weight), or a view of a ``[k, n]`` matrix (a transposed conv's)."""
    if columns:
        return torch.randn(k, n, dtype=dtype, generator=generator).t()
    return torch.randn(n, k, dtype=dtype, generator=generator)


@settings(max_examples=60, deadline=None)
@given(
    m=st.integers(1, 11),
    n=st.integers(1, 37),
    k=st.integers(1, 70),
    columns=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_equals_the_matrix_product_in_float64(op, m, n, k, columns, seed):
    generator = torch.Generator().manual_seed(seed)
    rows = torch.randn(m, k, dtype=torch.float64, generator=generator)
    weight = _weight(n, k, columns, torch.float64, generator)
    got = op(rows, weight)
    assert got.shape == (m, n) and got.is_contiguous()
    expected = rows @ weight.t()
    assert torch.allclose(got, expected, rtol=1e-12, atol=1e-12 * k)


@pytest.mark.parametrize("columns", [False, True])
@pytest.mark.parametrize("m", [1, 2, 4, 8, 33])
def test_float32_large_weights_and_threads(op, m, columns):
    generator = torch.Generator().manual_seed(m)
    rows = torch.randn(m, 1152, generator=generator)
    weight = _weight(768, 1152, columns, torch.float32, generator)
    expected = (rows.double() @ weight.double().t()).float()
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            got = op(rows, weight)
            assert (got - expected).abs().max() <= 1e-5 * expected.abs().max()
    finally:
        torch.set_num_threads(before)


def test_strided_rows_other_layouts_and_dtypes_fall_back_to_the_same_result(op):
    generator = torch.Generator().manual_seed(3)
    wide = torch.randn(5, 40, dtype=torch.float64, generator=generator)
    rows = wide[:, ::2]  # non-unit column stride: copied first
    weight = torch.randn(6, 40, dtype=torch.float64, generator=generator)[:, ::2]  # neither layout: copied
    assert torch.allclose(op(rows, weight), rows @ weight.t(), rtol=1e-12, atol=1e-12)
    half = torch.randn(3, 8, dtype=torch.bfloat16, generator=generator)
    assert torch.equal(op(half, half), half @ half.t())  # other dtypes: at::mm itself
    empty = torch.zeros(2, 0, dtype=torch.float64)
    assert torch.equal(op(empty, torch.zeros(3, 0, dtype=torch.float64)), torch.zeros(2, 3, dtype=torch.float64))


def test_shape_mismatch_is_an_error_that_names_the_shapes(op):
    with pytest.raises(RuntimeError, match=r"rows \[M, K\] and weight \[N, K\]"):
        op(torch.randn(2, 3), torch.randn(4, 5))


def test_gradients_match_the_matrix_product(op):
    rows = torch.randn(3, 7, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(5, 7, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(op, (rows, weight))


def test_native_conv_gives_conv1d_gradients_with_its_bias(op):
    """NativeMatmul adds the bias in place to the op's output: autograd must still give conv1d's."""
    torch.manual_seed(0)
    conv = Conv1d(5, 7, 3, dilation=2, dtype=torch.float64)
    native.use_native(conv)
    z = torch.randn(3, 5, conv.span + 4, dtype=torch.float64, requires_grad=True)
    grad_out = torch.randn(3, 7, 5, dtype=torch.float64)
    params = [z, conv.weight, conv.bias]
    got = torch.autograd.grad(conv._window_matmul(z, 5, NATIVE), params, grad_out)
    expected = torch.autograd.grad(F.conv1d(z, conv.weight, conv.bias, 1, 0, 2), params, grad_out)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, rtol=1e-12, atol=1e-12)


def _model(dtype: torch.dtype = torch.float64) -> streamify.StreamingModel:
    torch.manual_seed(1)
    plain = nn.Sequential(
        nn.Conv1d(2, 12, 5, padding=2),
        nn.Tanh(),
        nn.Conv1d(12, 24, 4, stride=2, padding=1),
        nn.Conv1d(24, 24, 3, padding=2, dilation=2),
        nn.ConvTranspose1d(24, 12, 4, stride=2, padding=1),
        nn.ConvTranspose1d(12, 6, 3, stride=1, padding=1, dilation=2),
        nn.Conv1d(6, 1, 3, padding=1),
    ).to(dtype)
    return streamify.convert(plain, torch.randn(1, 2, 64, dtype=dtype))


def _run_natively(model: nn.Module) -> None:
    """Every conv runs NATIVE for every row count a test stream uses."""
    for layer in native.kernel_layers(model):
        native.use_native(layer)
        layer.kernel_table = {rows: NATIVE for rows in range(1, 200)}


def test_native_convs_stream_exactly_and_script_bit_for_bit(op):
    model = _model()
    _run_natively(model)
    assert native.uses_native(model)
    assert_streams_exactly(model, frames=96, batch=3, sizes=[2, 4, 6, 8, 2, 10, 16, 8, 40])
    scripted = torch.jit.script(model)
    x = torch.randn(3, 2, 96, dtype=torch.float64)
    model.reset()
    cuts = [0, 2, 6, 16, 40, 96]
    eager = torch.cat([model(x[..., a:b]) for a, b in zip(cuts, cuts[1:])], -1)
    script = torch.cat([scripted(x[..., a:b]) for a, b in zip(cuts, cuts[1:])], -1)
    assert torch.equal(eager, script)


def test_native_and_portable_streams_agree(op):
    model = _model()
    x = torch.randn(2, 2, 64, dtype=torch.float64)
    for layer in native.kernel_layers(model):
        layer.kernel_table = {rows: ConvKernel.ROWS_LEFT.value for rows in range(1, 200)}
    portable = model(x)
    model.reset()
    _run_natively(model)
    assert torch.allclose(model(x), portable, rtol=1e-12, atol=1e-12)


def test_make_portable_drops_native_choices_and_kernels(op):
    model = _model()
    _run_natively(model)
    changed = native.make_portable(model)
    assert changed == len(native.kernel_layers(model)) * 199
    assert not native.uses_native(model)
    for layer in native.kernel_layers(model):
        assert isinstance(layer.matmul, TorchMatmul) and NATIVE not in layer.kernel_table.values()
    assert "streamify::rows_by_weight" not in str(torch.jit.script(model).inlined_graph)


def test_scripted_native_model_references_the_op_only_with_native_kernels(op):
    model = _model()
    assert "streamify::rows_by_weight" not in str(torch.jit.script(model).inlined_graph)
    _run_natively(model)
    assert "streamify::rows_by_weight" in str(torch.jit.script(model).inlined_graph)


def test_tune_offers_native_and_keeps_its_kernels_only_where_chosen(op):
    model = _model()
    report = streamify.tune(model, [16, 64], [1, 2], rounds=3, native=True)
    assert report.native and report.native_note == ""
    tried = [row for row in report.layers if "native" in row.ms]
    assert len(tried) == len(report.layers)  # every conv here has one group: all can run natively
    for layer in native.kernel_layers(model):
        chose = NATIVE in layer.kernel_table.values()
        assert isinstance(layer.matmul, native.NativeMatmul) == chose
    assert_streams_exactly(model, frames=64, batch=2, sizes=[16, 16, 16, 16])


def test_tune_without_native_never_installs_it(op):
    model = _model()
    report = streamify.tune(model, [16], [1], rounds=2, native=False)
    assert not report.native
    assert all("native" not in row.ms for row in report.layers)
    assert not native.uses_native(model)


def test_unavailable_native_is_reported_or_refused(monkeypatch):
    monkeypatch.setattr(build, "_loaded", False)
    monkeypatch.setattr(build, "_reason", "no compiler here")
    model = _model()
    report = streamify.tune(model, [16], [1], rounds=2)
    assert not report.native and "no compiler here" in report.native_note
    assert not native.uses_native(model)
    with pytest.raises(StreamingError, match="no compiler here.*g\\+\\+"):
        streamify.tune(model, [16], [1], rounds=2, native=True)


def test_turned_off_by_environment(monkeypatch):
    monkeypatch.setattr(build, "_loaded", None)
    monkeypatch.setenv("STREAMIFY_NATIVE", "0")
    assert not build.load()
    assert "STREAMIFY_NATIVE=0" in build.unavailable_reason()


def test_nn_tilde_export_of_a_natively_tuned_stream_loads_without_streamify(op, tmp_path):
    model = _model(torch.float32)
    _run_natively(model)
    path = tmp_path / "model.ts"
    streamify.export_nn_tilde(model, path, torch.randn(1, 2, 64))
    assert native.uses_native(model)  # the caller's model keeps its kernels; the file does not
    code = "import sys, torch; m = torch.jit.load(sys.argv[1]); print(m.forward(torch.zeros(1, 2, 256)).shape)"
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_cache_key_depends_on_the_source(monkeypatch, tmp_path):
    copy = tmp_path / "products.cpp"
    copy.write_text(build.SOURCE.read_text() + "\n// changed\n")
    before = build.cache_dir()
    monkeypatch.setattr(build, "SOURCE", copy)
    assert build.cache_dir() != before


def test_cache_key_depends_on_the_compiler_flags():
    assert build.cache_dir(build.BASE_FLAGS) != build.cache_dir(build.BASE_FLAGS + build.OPENMP_FLAGS)


def test_openmp_flags_only_where_torch_runs_gnu_openmp(monkeypatch):
    """Another thread runtime (native threads, Intel's or LLVM's OpenMP) gets the build without
    -fopenmp: a second OpenMP runtime's threads would ignore torch.set_num_threads."""
    monkeypatch.setattr(torch.__config__, "parallel_info", lambda: "ATen parallel backend: native thread pool")
    assert build._flag_sets() == [build.BASE_FLAGS]


@pytest.mark.parametrize("threads", [1, 2])
def test_kernel_splits_its_work_over_torch_threads(op, threads):
    """Built with PyTorch's OpenMP flags, the kernel's at::parallel_for runs on every intra-op thread
    (without them its pragma is ignored: one thread whatever the setting)."""
    if threads > 1 and not build._uses_openmp():
        pytest.skip("this PyTorch does not run its threads on OpenMP")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        assert native.kernel_threads() == threads
        # shapes large enough that both layouts split their output over the threads
        generator = torch.Generator().manual_seed(threads)
        for n, k, columns in ((37, 2100, False), (300, 70, True)):
            rows = torch.randn(3, k, dtype=torch.float64, generator=generator)
            weight = _weight(n, k, columns, torch.float64, generator)
            torch.testing.assert_close(op(rows, weight), rows @ weight.t(), rtol=1e-12, atol=1e-12)
    finally:
        torch.set_num_threads(before)


def test_layers_of_other_kinds_are_not_offered_native():
    grouped = Conv1d(4, 4, 3, groups=2)
    assert not native.can_run_native(grouped)
    assert native.can_run_native(Conv1d(4, 4, 3)) and native.can_run_native(ConvTranspose1d(4, 4, 3))
    assert not native.can_run_native(Conv1d(4, 4, 3, dtype=torch.float16))
