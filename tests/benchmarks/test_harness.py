"""Smoke tests of the benchmark harness (benchmarks/harness) on a tiny model of the reference architecture.

No timing is asserted anywhere: the figures depend on the machine and its load. What is
checked: the reference model (streamify's RAVE) and its geometry and counts, the exactness of the
overlap-add and of the cached_conv twin, the fields of the results, the files written, the command line.
"""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from typer.testing import CliRunner

import streamify.native
from harness.measure import Plan
from harness.methods import OverlapAddStream
from harness.reference import (
    RAVE_TINY,
    RAVE_V2,
    RAVE_V2_SMALL,
    build_cached_conv,
    build_reference,
    count_parameters,
    folded_copy,
    load_same_weights,
    overlap_add_context,
    phase_reach,
    reset_cached_conv,
)
from streamify.exactness import compare_streamed, stream_signal
from streamify.models.presets import V2
from streamify.models.rave import RAVE

TINY_PLAN = Plan(warmup_calls=1, min_calls=2, min_seconds=0.0, max_calls=3, offline_reps=1, probe_reps=1)


@pytest.fixture(scope="module")
def tiny64():
    """The tiny reference model, folded, in float64."""
    return folded_copy(build_reference(RAVE_TINY)).double()


def test_reference_shapes_and_ratios():
    for config, ratio in ((RAVE_V2, 2048), (RAVE_V2_SMALL, 512), (RAVE_TINY, 64)):
        assert config.total_ratio == ratio
    model = build_reference(RAVE_TINY)
    x = torch.randn(2, 1, RAVE_TINY.total_ratio * 4)
    with torch.no_grad():
        assert model(x).shape == x.shape
        assert model.encode(x).shape == (2, RAVE_TINY.preset.latent, 4)
    # the package's own RAVE: the v2 preset, no noise (two calls give the same output)
    assert isinstance(model, RAVE) and build_reference(RAVE_V2).config == V2 and not model.use_noise
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
    # folding the weight norms changes nothing
    with torch.no_grad():
        assert torch.equal(model(x), folded_copy(model)(x))


def test_phase_reach_matches_autograd(tiny64):
    """The interval walk gives exactly the input support of each output sample (autograd), phase by phase."""
    period = RAVE_TINY.total_ratio
    before, after = phase_reach(tiny64, period)
    n = period * 48
    x = torch.randn(1, 1, n, dtype=torch.float64, requires_grad=True)
    y = tiny64(x)
    origin = period * 24
    for phase in (0, 1, 7, 31, 63):
        t = origin + phase
        (grad,) = torch.autograd.grad(y[0, 0, t], x, retain_graph=True)
        support = torch.nonzero(grad[0, 0] != 0).flatten()
        assert t - int(support.min()) == before[phase]
        assert int(support.max()) - t == after[phase]


def test_phase_reach_refuses_a_causal_model():
    """A causal RAVE crops its transposed convs' outputs, which the geometry walk does not model: refused."""
    from streamify.models import rave

    with pytest.raises(ValueError, match="non-causal"):
        phase_reach(rave(RAVE_TINY.preset, causal=True), RAVE_TINY.total_ratio)


def test_overlap_add_is_exact(tiny64):
    period = RAVE_TINY.total_ratio
    left, right = overlap_add_context(tiny64, period)
    assert (left + right) % period == 0
    ola = OverlapAddStream(tiny64, left, right, period)
    x = torch.randn(1, 1, period * 40, dtype=torch.float64)
    with torch.no_grad():
        offline = tiny64(x)
        streamed = stream_signal(ola, x, [period] * 10 + [period * 2] * 5 + [period * 4] * 5)
    comparison = compare_streamed(streamed, offline, ola.delay)
    assert comparison.compared_frames >= period * 20
    assert comparison.max_abs_error <= 1e-10
    assert compare_streamed(streamed, offline, ola.delay + 1).max_abs_error > 1e-4
    # contexts that would move the windows off the decimation grid are refused
    with pytest.raises(ValueError):
        OverlapAddStream(tiny64, left - 1, right, period)


def test_streamify_delay_is_the_overlap_add_look_ahead(tiny64):
    import streamify

    period = RAVE_TINY.total_ratio
    stream = streamify.convert(tiny64, torch.randn(1, 1, period * 16, dtype=torch.float64))
    assert stream.delay == overlap_add_context(tiny64, period)[1]


def test_cached_conv_twin_is_exact_after_warm_up(tiny64):
    pytest.importorskip("cached_conv")
    period = RAVE_TINY.total_ratio
    twin = load_same_weights(build_cached_conv(RAVE_TINY), tiny64).double()
    x = torch.randn(1, 1, period * 40, dtype=torch.float64)
    with torch.inference_mode():
        offline = tiny64(x)
        streamed = stream_signal(twin, x, [period] * 40)
        reset_cached_conv(twin)
        again = stream_signal(twin, x, [period] * 40)
    left, right = overlap_add_context(tiny64, period)
    comparison = compare_streamed(streamed, offline, twin.cumulative_delay, warmup=left + right)
    assert comparison.compared_frames > 0
    assert comparison.max_abs_error <= 1e-10
    assert torch.equal(streamed, again)  # the reset returns to a fresh stream


def test_reference_model_size():
    """RAVE v2's size: about 31 M parameters (within 10 %)."""
    parameters = count_parameters(build_reference(RAVE_V2))
    assert abs(parameters - 31e6) <= 0.1 * 31e6


def test_suite_results_fields_and_files(tmp_path):
    pytest.importorskip("matplotlib")
    from harness.report import markdown, splice, write_all
    from harness.suite import Options, run_suite

    options = Options(
        mode="test",
        models=[RAVE_TINY.name],
        buffers=[64, 256],
        threads=[1, 2],
        batches=[1, 2],
        engines=["eager"],
        plan=TINY_PLAN,
        memory=False,
        profile=True,
        profile_buffer=64,
    )
    results = run_suite(options)
    for key in ("meta", "models", "floor", "offline", "runs", "exactness", "profile", "fits", "notes"):
        assert key in results
    model = results["models"][RAVE_TINY.name]
    floor = results["floor"][RAVE_TINY.name]["1"]
    for key in ("bandwidth", "bandwidth_reread", "bandwidth_sequence", "bandwidth_sequence_median", "macs"):
        assert floor[key] > 0 and math.isfinite(floor[key]), key
    assert floor["bandwidth"] == floor["bandwidth_sequence"]  # the floor reads the weights in sequence
    assert model["delay_samples"]["streamify"] == model["delay_samples"]["overlap_add"]
    methods = {r["method"] for r in results["runs"]}
    assert {"streamify", "overlap_add"} <= methods
    for row in results["runs"]:
        for field in (
            "median_ms",
            "p90_ms",
            "rtf",
            "cost_vs_offline",
            "speedup_vs_overlap_add",
            "latency_ms",
            "floor_ms",
            "floor_fraction",
            "delay_samples",
            "peak_memory_mib",
            "speedup_vs_cached_conv",
        ):
            assert field in row, field
        assert row["median_ms"] > 0 and math.isfinite(row["rtf"])
        assert row["latency_ms"] == pytest.approx(1e3 * (row["delay_samples"] + row["buffer"]) / 48000)
    exact = {c["check"]: c for c in results["exactness"]}
    assert exact["streamify (eager)"]["passed"]
    assert exact["overlap-add (eager)"]["passed"]
    assert exact["streamify delay is the least exact delay"]["passed"]
    if "cached_conv, delays threaded (after warm-up)" in exact:
        assert exact["cached_conv, delays threaded (after warm-up)"]["passed"]
        assert not exact["cached_conv as published (strided convs without the incoming delay)"]["passed"]
    assert results["profile"]["layers"]["layers"]
    # the streamify model was tuned for the run's buffers and batches: one choice per (conv, rows)
    tuning = model["tuning"]
    assert tuning["tuned"] > 0 and sum(tuning["choices"].values()) == tuning["tuned"]
    assert tuning["native"] == streamify.native.available() and "native kernel" in markdown(results)
    # one whole-call check per (batch, buffer) tuned; the summary says how many were undone
    assert tuning["whole_calls"] > 0 and 0 <= tuning["whole_calls_undone"] <= tuning["whole_calls"]
    assert f"of {tuning['whole_calls']} (batch, buffer) pairs" in markdown(results)
    # tuned again at each thread count before its runs, as a host tunes at its own setting
    assert set(model["tuning_by_threads"]) == {"1", "2"} and model["tuning_by_threads"]["1"] == tuning
    assert "before timing at 2 threads, `streamify.tune`" in markdown(results)
    assert {r["threads"] for r in results["runs"] if r["method"] == "streamify"} == {1, 2}
    products = results["profile"]["products_in_sequence"]
    assert set(products) == {"1", "4"}
    assert all(p["ms"] > 0 and p["call_ms"] > 0 and p["layers"] > 0 for p in products.values())
    summary = markdown(results)
    assert "`streamify.tune` timed each conv's products" in summary
    assert "The convs' arithmetic alone" in summary
    assert "The convs' arithmetic alone with the kernels the tuned layers run (profile below)" in summary
    assert "one buffer re-read" in summary and "the model's weights in sequence" in summary
    assert "The floor reads the weights at the in-sequence bandwidth" in summary
    # results written before the sequence probe: "bandwidth" was the re-read figure, no sequence keys
    old = copy.deepcopy(results)
    for per_thread in old["floor"].values():
        for entry in per_thread.values():
            entry["bandwidth"] = entry.pop("bandwidth_reread")
            for key in ("bandwidth_sequence", "bandwidth_sequence_median"):
                del entry[key]
    assert "These results predate the in-sequence probe" in markdown(old)

    page = tmp_path / "page.md"
    page.write_text("# Title\n\nhand-written\n\n<!-- bench:begin -->\nSTALE-BLOCK\n<!-- bench:end -->\n\ntail\n")
    written = write_all(results, tmp_path / "out", doc=page)
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert data["runs"] and data["models"]
    assert (tmp_path / "out" / f"rtf_{RAVE_TINY.name}.png").stat().st_size > 0
    assert (tmp_path / "out" / f"latency_{RAVE_TINY.name}.png").stat().st_size > 0
    text = page.read_text()
    assert "hand-written" in text and "tail" in text and "STALE-BLOCK" not in text
    assert f"out/rtf_{RAVE_TINY.name}.png" in text
    assert written["summary"].read_text().startswith("Measured")
    assert "### Exactness" in markdown(results)
    splice(page, "again")  # splicing twice keeps one generated block
    assert page.read_text().count("<!-- bench:begin -->") == 1


@pytest.mark.slow
def test_peak_memory_child_process():
    from harness.memory import measure_memory

    answer = measure_memory(
        RAVE_TINY.name,
        [{"method": "streamify", "batch": 1, "buffer": 64}, {"method": "overlap_add", "batch": 2, "buffer": 128}],
        calls=2,
    )
    assert not answer.get("error"), answer
    records = answer["results"]
    assert [r["method"] for r in records] == ["streamify", "overlap_add"]
    for record in records:
        assert record["peak_bytes"] >= 0 and record["baseline_bytes"] > 0


def test_command_line_options_and_refusals():
    from harness.commands import app

    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for option in ("--quick", "--full", "--out", "--doc", "--models"):
        assert option in result.output
    assert CliRunner().invoke(app, ["--quick", "--full"]).exit_code == 2
    result = CliRunner().invoke(app, ["--quick", "--threads", "one,two"])
    assert result.exit_code == 2
    assert "expected comma-separated integers" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(app, ["--models", "rave-v3"])
    assert result.exit_code == 2 and "unknown model" in result.output
