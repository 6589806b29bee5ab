"""streamify.tune: timed choice of each conv's product, kept by scripting and saving, never changing the math."""

import io

import pytest
import torch
from torch import nn

import streamify
from helpers import assert_streams_exactly
from streamify.layers import Conv1d, ConvTranspose1d, Sequential, StreamingError
from streamify.layers.conv_kernels import KERNEL_LABELS, ConvKernel
from streamify.tuning import untune


def _model() -> streamify.StreamingModel:
    torch.manual_seed(0)
    plain = nn.Sequential(
        nn.Conv1d(1, 8, 5, padding=2),
        nn.ReLU(),
        nn.Conv1d(8, 16, 4, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv1d(16, 16, 3, padding=2, dilation=2, groups=4),
        nn.ConvTranspose1d(16, 8, 4, stride=2, padding=1),
        nn.Conv1d(8, 1, 3, padding=1),
    ).double()
    return streamify.convert(plain, torch.randn(1, 1, 64, dtype=torch.float64))


def _kernel_layers(model):
    return [m for m in model.modules() if isinstance(m, (Conv1d, ConvTranspose1d))]


def test_tune_fills_each_conv_table_for_each_buffer_and_batch():
    model = _model()
    report = streamify.tune(model, [16, 64], [1, 3], rounds=3, check_calls=False)
    assert report.whole_calls == []
    layers = _kernel_layers(model)
    assert len(layers) == 5
    native = {ConvKernel.NATIVE.value} if report.native else set()
    portable = {p.value for p in ConvKernel} - {ConvKernel.NATIVE.value}
    for layer in layers:
        assert set(layer.kernel_table) == {row.rows for row in report.layers if row.layer == layer.layer_name}
        assert len(layer.kernel_table) == 4  # rows = batch x frames: 4 distinct counts for 2 buffers x 2 batches
        grouped = {ConvKernel.GENERIC.value, ConvKernel.ROWS_LEFT.value}
        for product in layer.kernel_table.values():
            assert product in (grouped if layer.groups > 1 else portable | native)
    for row in report.layers:
        assert row.chosen in row.ms and row.default in row.ms
        fastest = min(row.ms.values())
        # the default stays unless another product is more than 5 % faster
        if row.chosen == row.default:
            assert row.ms[row.default] <= 1.05 * fastest
        else:
            assert row.ms[row.chosen] == fastest and row.ms[row.default] > 1.05 * fastest
    assert report.saved_ms >= 0.0
    assert "chosen" in report.table().splitlines()[0]


def test_tuned_model_streams_exactly_and_scripts_with_its_choices():
    model = _model()
    streamify.tune(model, [32], [2], rounds=2)
    # tune leaves a fresh stream behind
    assert model.cache_bytes == 0
    assert_streams_exactly(model, batch=2)
    # force a product on every conv, so that the scripted copy is seen to use the table
    for layer in _kernel_layers(model):
        product = ConvKernel.WEIGHT_LEFT if layer.groups == 1 else ConvKernel.ROWS_LEFT
        layer.kernel_table = {rows: product.value for rows in range(1, 1025)}
    scripted = torch.jit.script(model)
    x = torch.randn(2, 1, 128, dtype=torch.float64)
    model.reset()
    eager_out = torch.cat([model(x[..., i : i + 32]) for i in range(0, 128, 32)], -1)
    scripted_out = torch.cat([scripted(x[..., i : i + 32]) for i in range(0, 128, 32)], -1)
    assert torch.equal(eager_out, scripted_out)
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    buffer.seek(0)
    loaded = torch.jit.load(buffer)
    loaded.reset()  # saved mid-stream: start a fresh one
    assert torch.equal(torch.cat([loaded(x[..., i : i + 32]) for i in range(0, 128, 32)], -1), eager_out)
    assert_streams_exactly(model, batch=2)


def test_products_survive_pickling_and_untune_forgets_them():
    model = _model()
    streamify.tune(model, 32, 1, rounds=1)
    tables = [dict(layer.kernel_table) for layer in _kernel_layers(model)]
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    copy = torch.load(buffer, weights_only=False)
    assert [dict(layer.kernel_table) for layer in _kernel_layers(copy)] == tables
    untune(copy)
    assert all(layer.kernel_table == {} for layer in _kernel_layers(copy))


def test_tune_on_hand_built_layers():
    torch.manual_seed(0)
    model = Sequential(Conv1d(2, 4, 3, padding=1), ConvTranspose1d(4, 2, 4, stride=2, padding=1)).double()
    report = streamify.tune(model, 8, rounds=1)
    assert {row.layer for row in report.layers} == {layer.layer_name for layer in _kernel_layers(model)}
    assert set(KERNEL_LABELS.values()) >= {row.chosen for row in report.layers}


def test_tune_refuses_what_it_cannot_tune():
    model = _model()
    with pytest.raises(StreamingError, match="TorchScript module; tune the eager model"):
        streamify.tune(torch.jit.script(model), 32)
    with pytest.raises(StreamingError, match="expected a streaming model"):
        streamify.tune(nn.Conv1d(1, 1, 3), 32)
    with pytest.raises(StreamingError, match="buffer length 31 is not accepted"):
        streamify.tune(model, 31)


def test_whole_calls_keep_or_undo_each_batch_and_buffer():
    model = _model()
    report = streamify.tune(model, [16, 64], [1, 2], rounds=2)
    assert [(c.batch, c.buffer) for c in report.whole_calls] == [(1, 16), (1, 64), (2, 16), (2, 64)]
    for check in report.whole_calls:
        assert check.before_ms > 0 and check.tuned_ms > 0
        assert check.kept == (check.tuned_ms <= 1.05 * check.before_ms)
    assert model.cache_bytes == 0
    assert_streams_exactly(model, batch=2)


def test_whole_calls_slower_than_before_undo_the_choices():
    model = _model()
    # min_gain -0.999: every layer takes its fastest product, and the whole-call check undoes any
    # tuned tables that are not 1000x faster than the earlier ones, i.e. all of them
    report = streamify.tune(model, [16, 64], [1, 2], rounds=2, min_gain=-0.999)
    assert report.layers and all(not check.kept for check in report.whole_calls)
    assert all(layer.kernel_table == {} for layer in _kernel_layers(model))


def test_tune_takes_tables_of_earlier_versions():
    """A table saved by an earlier version may hold the dropped matrix-vector product (value 1): tune
    reports it as rows-left, the product it runs, and replaces it at the rows it tunes."""
    model = _model()
    for layer in _kernel_layers(model):
        layer.kernel_table = {rows: 1 for rows in range(1, 1025)}
    report = streamify.tune(model, 32, 1, rounds=1, check_calls=False)
    assert report.layers and all(row.default == "rows-left" for row in report.layers)
    for row in report.layers:
        layer = next(m for m in _kernel_layers(model) if m.layer_name == row.layer)
        assert KERNEL_LABELS[layer.kernel_table[row.rows]] == row.chosen
