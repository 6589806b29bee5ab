"""The paper's evaluation harness (benchmarks/paper.py, benchmarks/paper_eval) on a tiny RAVE-style model.

Random weights, float64, half a second of synthetic audio: every row is produced, the streamed rows equal
offline to float error, naive chunking does not, overlap-add equals offline away from the clip's end. No
timing is asserted (the figures depend on the machine and its load).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from paper_eval import evaluate, methods, metrics, plots, report, signals, training  # noqa: E402
from streamify.models import rave  # noqa: E402
from streamify.models.presets import SMALL  # noqa: E402

#: ratio 16, receptive field a few hundred samples
TINY = SMALL.scaled(
    name="tiny",
    bands=4,
    pqmf_taps=32,
    capacity=4,
    ratios=(2, 2),
    dilations=((1, 3), (1,)),
    latent=3,
    noise_bands=2,
    noise_ratios=(2,),
    noise_taps=9,
)
BUFFERS = (32, 64, 256)


@pytest.fixture(scope="module")
def tiny_models():
    torch.manual_seed(0)
    return evaluate.Models(rave(TINY).double().eval(), rave(TINY, causal=True).double().eval())


@pytest.fixture(scope="module")
def clips():
    out = []
    for index, make in enumerate((signals.music_like, signals.speech_like)):
        audio = torch.from_numpy(make(0.6, seed=index, rate=TINY.sample_rate)).double()
        n = audio.numel() // 256 * 256
        out.append((make.__name__, audio[:n].view(1, 1, n)))
    return out


@pytest.fixture(scope="module")
def evaluated(tiny_models, clips):
    return evaluate.evaluate_dataset("tiny", tiny_models, clips, BUFFERS, log=lambda message: None)


def _row(rows, model, method, buffer=None):
    (found,) = [r for r in rows if (r.model, r.method, r.buffer) == (model, method, buffer)]
    return found


def test_every_row_is_produced(evaluated):
    rows, extra = evaluated
    expected = set()
    for model in (evaluate.NONCAUSAL, evaluate.CAUSAL):
        expected |= {(model, evaluate.OFFLINE, None), (model, evaluate.OFFLINE_NOISE, None)}
        expected |= {(model, evaluate.STREAMED, b) for b in BUFFERS}
    expected |= {(evaluate.NONCAUSAL, m, b) for m in (evaluate.NAIVE, evaluate.OLA) for b in BUFFERS}
    assert {(r.model, r.method, r.buffer) for r in rows} == expected
    assert len(rows) == len(expected)
    facts = extra["facts"]
    rate = facts["sample_rate"]
    for r in rows:
        assert math.isfinite(r.msd) and math.isfinite(r.log_mel) and r.cpu_per_second > 0
        assert len(r.msd_per_clip) == 2
        if r.buffer is None:
            assert r.latency_ms is None
            continue
        delay = {
            (evaluate.NONCAUSAL, evaluate.STREAMED): facts["noncausal_delay"],
            (evaluate.CAUSAL, evaluate.STREAMED): facts["causal_delay"],
            (evaluate.NONCAUSAL, evaluate.NAIVE): 0,
            (evaluate.NONCAUSAL, evaluate.OLA): facts["ola_right"],
        }[(r.model, r.method)]
        assert r.latency_ms == pytest.approx(1000 * (delay + r.buffer) / rate)
        assert r.jump_db is not None and r.boundary_error_db is not None
    assert facts["noncausal_delay"] > 0 and facts["causal_delay"] == 0
    assert set(extra["strip"]) >= {"input", "non-causal offline", "non-causal streamify", "causal streamify"}


def test_streamed_equals_offline(evaluated):
    rows, _ = evaluated
    for model in (evaluate.NONCAUSAL, evaluate.CAUSAL):
        offline = _row(rows, model, evaluate.OFFLINE)
        for buffer in BUFFERS:
            streamed = _row(rows, model, evaluate.STREAMED, buffer)
            assert streamed.max_abs_diff < 1e-12
            assert streamed.msd == pytest.approx(offline.msd, abs=1e-9)
            assert streamed.log_mel == pytest.approx(offline.log_mel, abs=1e-9)
            assert streamed.boundary_error_db < -200


def test_naive_chunking_differs_from_offline(evaluated):
    rows, _ = evaluated
    offline = _row(rows, evaluate.NONCAUSAL, evaluate.OFFLINE)
    for buffer in BUFFERS:
        naive = _row(rows, evaluate.NONCAUSAL, evaluate.NAIVE, buffer)
        assert naive.max_abs_diff > 1e-4
        assert abs(naive.msd - offline.msd) > 1e-4
        assert naive.boundary_error_db > -60


def test_overlap_add_equals_offline_away_from_the_end(evaluated, tiny_models, clips):
    rows, extra = evaluated
    for buffer in BUFFERS:
        assert _row(rows, evaluate.NONCAUSAL, evaluate.OLA, buffer).max_abs_diff < 1e-12
    # directly, with the measured contexts: equal up to the last receptive field of the clip (which needs input
    # past its end); with a right context one period short, the outermost taps (of the PQMF filters' tails,
    # small) are missed: a difference far above float64 rounding (1e-16)
    model = tiny_models.noncausal
    model.use_noise = False
    left, right = extra["facts"]["ola_left"], extra["facts"]["ola_right"]
    x = clips[0][1]
    reference = methods.offline(model, x).y
    end = x.size(-1) - extra["facts"]["edge"]
    for buffer in BUFFERS:
        run = methods.overlap_add(model, x, buffer, left, right, model.ratio)
        assert (run.y - reference)[..., :end].abs().max() < 1e-12
        assert run.latency == right + buffer
    short = methods.overlap_add(model, x, 64, left + model.ratio, right - model.ratio, model.ratio)
    assert (short.y - reference)[..., :end].abs().max() > 1e-13


def test_phase_reach_of_known_convs():
    """A 5-tap conv then a 3-tap conv ("same"): every output depends on 3 samples each side; with a stride-2
    conv and its transposed conv the reach depends on the phase."""
    plain = nn.Sequential(nn.Conv1d(1, 2, 5, padding=2), nn.Conv1d(2, 1, 3, padding=1))
    before, after = methods.phase_reach(plain, 1, 16, dtype=torch.float64)
    assert (before, after) == ([3], [3])
    assert methods.ola_context(before, after, 1) == (3, 3)
    strided = nn.Sequential(nn.Conv1d(1, 2, 4, stride=2, padding=1), nn.ConvTranspose1d(2, 1, 4, stride=2, padding=1))
    before, after = methods.phase_reach(strided, 2, 16, dtype=torch.float64)
    # output 2j reads frames j-1, j (kernel taps 3, 1); frame j reads inputs 2j-1 .. 2j+2
    assert (before, after) == ([3, 2], [2, 3])
    left, right = methods.ola_context(before, after, 2)
    assert (left + right) % 2 == 0 and right == 3 and left >= 3


def test_metrics():
    generator = torch.Generator().manual_seed(0)
    x = 0.3 * torch.randn(1, 1, 8192, generator=generator, dtype=torch.float64)
    assert metrics.multiscale_spectral_distance(x, x) == 0
    assert metrics.log_mel_distance(x, x, 22050) == 0
    noisy = x + 0.1 * torch.randn(1, 1, 8192, generator=generator, dtype=torch.float64)
    assert metrics.multiscale_spectral_distance(noisy, x) > metrics.multiscale_spectral_distance(x + 0.01 * noisy, x)
    # the floor: -120 dB hiss against digital silence is no distance in log spectra
    silence = torch.zeros(1, 1, 8192, dtype=torch.float64)
    hiss = 1e-6 * torch.randn(1, 1, 8192, generator=generator, dtype=torch.float64)
    loud = x
    assert metrics.log_mel_distance(hiss, silence, 22050) == 0
    assert metrics.log_mel_distance(loud, silence, 22050) > 1
    # boundary measures: steps inserted at every 512th sample
    smooth = torch.sin(torch.arange(8192, dtype=torch.float64) * 0.05).view(1, 1, -1)
    clicked = smooth.clone()
    clicked[..., 512::512] += 0.5
    assert abs(metrics.boundary_jump_db(smooth, smooth, 512)) < 3
    assert metrics.boundary_jump_db(clicked, smooth, 512) > 20
    assert metrics.boundary_error_db(smooth, smooth, 512) == -math.inf
    assert metrics.boundary_error_db(clicked, smooth, 512) > -30


def test_synthetic_sets_and_clips(tmp_path):
    folder = signals.write_synthetic_set(
        tmp_path / "speech", "speech", train_files=1, test_files=2, seconds=1.0, seed=0
    )
    assert len(list((folder / "train").glob("*.wav"))) == 1
    assert len(list((folder / "test").glob("*.wav"))) == 2
    clips = signals.test_clips(folder / "test", 22050, seconds=0.8, max_clips=5, multiple=4096)
    assert len(clips) == 2
    for _, clip in clips:
        assert clip.shape[:2] == (1, 1) and clip.size(-1) % 4096 == 0 and clip.size(-1) <= 0.8 * 22050
    assert (signals.speech_like(1.0, seed=0) == 0).sum() > 1000  # exact digital silence between syllables


def test_runs_are_reused_resumed_or_refused(tmp_path):
    budget = training.Budget(steps=3)
    item = training.job(tmp_path / "runs", "music", True, tmp_path / "data")
    assert training.state(item, budget) == "new"
    assert "--causal" in training.command(item, budget, resume=False)
    assert "--resume" in training.command(item, budget, resume=True)
    item.checkpoint.parent.mkdir(parents=True)
    config = {"data_dir": str(item.data_dir), "causal": True, **budget.__dict__}
    (item.run_dir / "config.json").write_text(json.dumps(config))
    for step, expected in ((2, "resume"), (3, "done")):
        torch.save({"state_dict": {"step_count": torch.tensor(step)}}, str(item.checkpoint))
        assert training.state(item, budget) == expected
    torch.save({"state_dict": {"step_count": torch.tensor(4)}}, str(item.checkpoint))
    with pytest.raises(RuntimeError, match="past the 3"):
        training.state(item, budget)
    torch.save({"state_dict": {"step_count": torch.tensor(3)}}, str(item.checkpoint))
    (item.run_dir / "config.json").write_text(json.dumps({**config, "seed": 1}))
    with pytest.raises(RuntimeError, match="seed"):
        training.state(item, budget)


def test_report_and_figures(evaluated, tmp_path):
    rows, extra = evaluated
    checks = report.verdicts(rows, ["tiny"])
    assert len(checks) == 6
    by_claim = {claim: ok for claim, ok, _ in checks}
    assert by_claim["tiny: (1) the non-causal model, streamed after training, loses no quality"]
    assert by_claim["tiny: the overlap-add baseline is exact"]
    assert by_claim["tiny: naive chunking (what the method removes) degrades the output"]
    figures = {
        "q": plots.quality_latency(rows, ["tiny"], tmp_path / "q.png"),
        "c": plots.cost_buffer(rows, ["tiny"], tmp_path / "c.png"),
        "s": plots.spectrogram_strip({"tiny": extra["strip"]}, tmp_path / "s.png"),
    }
    for path in figures.values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    facts = {**extra["facts"], "train_dir": "train", "test_dir": "test"}
    text = report.render(
        title="t",
        command="cmd",
        duration_s=1.0,
        date="now",
        machine={"cpu": "x"},
        budget_line="b",
        training={"tiny-noncausal": {"steps": 3, "train_seconds": 60.0, "run_dir": "r"}},
        datasets={"tiny": facts},
        rows=rows,
        figures={k: v.name for k, v in figures.items()},
        quick=True,
    )
    table_lines = [line for line in text.splitlines() if line.startswith("| tiny |")]
    assert len(table_lines) == len(rows)
    assert "Matched:" in text and "q.png" in text


@pytest.mark.slow
def test_quick_mode_end_to_end(tmp_path):
    """``benchmarks/paper.py --quick`` on one synthetic set: trains two models for 3 steps, writes every row."""
    out = tmp_path / "paper-quick.md"
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "paper.py"), "--quick", "--sets", "speech", "--out", str(out)]
        + ["--runs", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results = json.loads(out.with_suffix(".json").read_text())
    assert len(results["rows"]) == 16
    assert {r["model"] for r in results["rows"]} == {"non-causal", "causal"}
    assert all(info["steps"] == 3 for info in results["training"].values())
    for suffix in ("quality-latency", "cost", "spectrograms"):
        assert (tmp_path / f"paper-quick-{suffix}.png").stat().st_size > 1000
    # a second run would reuse both trained models
    budget = training.Budget(**{**results["budget"]})
    for causal in (False, True):
        assert (
            training.state(
                training.job(tmp_path / "runs", "speech", causal, tmp_path / "runs" / "data" / "speech" / "train"),
                budget,
            )
            == "done"
        )


def test_the_setting_paragraph_says_what_claim_two_came_out_as():
    """The report does not keep a caveat that its own numbers contradict (claim 2: causal training costs quality)."""
    assert "already costs quality on every set" in " ".join(report._setting_paragraph([True, True]))
    assert "some sets only" in " ".join(report._setting_paragraph([True, False]))
    assert "may not have opened yet" in " ".join(report._setting_paragraph([False, False]))
