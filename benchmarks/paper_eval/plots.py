"""The figures of the report (matplotlib, Agg, PNG): quality against latency, cost against buffer size, and a
spectrogram strip of one clip through the methods."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence

import torch

from .evaluate import CAUSAL, NAIVE, NONCAUSAL, OFFLINE, OLA, STREAMED, Row

DPI = 100
#: (model, method) -> (label, marker) of the curves
CURVES = (
    (NONCAUSAL, STREAMED, "non-causal, streamify", "o"),
    (CAUSAL, STREAMED, "causal, streamify", "s"),
    (NONCAUSAL, NAIVE, "non-causal, naive chunks", "x"),
    (NONCAUSAL, OLA, "non-causal, overlap-add", "^"),
)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plain_log_axis(axis, values, base: int = 10) -> None:
    """A log-scaled x axis with ticks at ``values`` written as plain numbers."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator, ScalarFormatter

    axis.set_xscale("log", base=base)
    axis.xaxis.set_major_locator(FixedLocator(sorted(set(values))))
    axis.xaxis.set_major_formatter(ScalarFormatter())
    axis.xaxis.set_minor_locator(NullLocator())
    axis.xaxis.set_minor_formatter(NullFormatter())


def _panels(plt, datasets: Sequence[str]):
    """One figure with a panel per data set, side by side: ``(figure, axes)``, ``axes[0][i]`` the i-th panel."""
    return plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 4.2), squeeze=False)


def _save(plt, figure, axes, path: Path) -> Path:
    """Legend on the first panel, then write ``path`` (PNG) and free the figure."""
    axes[0][0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
    return path


def _select(rows: Sequence[Row], dataset: str, model: str, method: str) -> List[Row]:
    chosen = [r for r in rows if r.dataset == dataset and r.model == model and r.method == method]
    return sorted(chosen, key=lambda r: r.buffer or 0)


def quality_latency(rows: Sequence[Row], datasets: Sequence[str], path: Path) -> Path:
    """Multiscale spectral distance (lower is better) against latency, one panel per data set."""
    plt = _pyplot()
    figure, axes = _panels(plt, datasets)
    for axis, dataset in zip(axes[0], datasets):
        for model, method, label, marker in CURVES:
            chosen = _select(rows, dataset, model, method)
            axis.plot([r.latency_ms for r in chosen], [r.msd for r in chosen], marker=marker, label=label)
            for r in chosen:
                axis.annotate(
                    str(r.buffer), (r.latency_ms, r.msd), fontsize=7, xytext=(3, 3), textcoords="offset points"
                )
        for model, style in ((NONCAUSAL, "--"), (CAUSAL, ":")):
            for r in _select(rows, dataset, model, OFFLINE):
                axis.axhline(r.msd, color="grey", linestyle=style, linewidth=1, label=f"{model}, offline")
        _plain_log_axis(axis, [round(r.latency_ms) for r in rows if r.dataset == dataset and r.latency_ms])
        axis.tick_params(axis="x", labelrotation=45, labelsize=7)
        axis.set_xlabel("latency (ms): model delay + buffer")
        axis.set_ylabel("multiscale spectral distance to the input")
        axis.set_title(dataset)
        axis.grid(True, which="both", alpha=0.3)
    return _save(plt, figure, axes, path)


def cost_buffer(rows: Sequence[Row], datasets: Sequence[str], path: Path) -> Path:
    """CPU seconds per second of audio (one thread) against buffer size, one panel per data set."""
    plt = _pyplot()
    figure, axes = _panels(plt, datasets)
    for axis, dataset in zip(axes[0], datasets):
        for model, method, label, marker in CURVES:
            chosen = _select(rows, dataset, model, method)
            axis.plot([r.buffer for r in chosen], [r.cpu_per_second for r in chosen], marker=marker, label=label)
        for r in _select(rows, dataset, NONCAUSAL, OFFLINE):
            axis.axhline(r.cpu_per_second, color="grey", linestyle="--", linewidth=1, label="non-causal, offline")
        axis.axhline(1.0, color="red", linestyle=":", linewidth=1, label="real time")
        _plain_log_axis(axis, [r.buffer for r in rows if r.dataset == dataset and r.buffer], base=2)
        axis.set_yscale("log")
        axis.set_xlabel("buffer (samples)")
        axis.set_ylabel("CPU s per s of audio (1 thread)")
        axis.set_title(dataset)
        axis.grid(True, which="both", alpha=0.3)
    return _save(plt, figure, axes, path)


def _log_spectrogram(x: torch.Tensor, size: int = 1024, hop: int = 256) -> torch.Tensor:
    window = torch.hann_window(size, dtype=torch.float64)
    spectrum = torch.stft(x.reshape(-1).double(), size, hop, window=window, return_complex=True).abs() / window.sum()
    return 20 * spectrum.clamp_min(1e-5).log10()


def spectrogram_strip(strips: Dict[str, Dict[str, object]], path: Path, seconds: float = 3.0) -> Path:
    """Log spectrograms (dB) of one clip per data set: the input, then each method's output."""
    plt = _pyplot()
    columns = [
        "input",
        f"{NONCAUSAL} {OFFLINE}",
        f"{NONCAUSAL} {STREAMED}",
        f"{CAUSAL} {STREAMED}",
        f"{NONCAUSAL} {NAIVE}",
    ]
    figure, axes = plt.subplots(
        len(strips), len(columns), figsize=(3.2 * len(columns), 2.8 * len(strips)), squeeze=False
    )
    for line, (dataset, strip) in zip(axes, strips.items()):
        rate = int(strip["sample_rate"])
        buffer = int(strip["buffer"])
        for axis, key in zip(line, columns):
            signal = strip[key][..., : int(seconds * rate)]
            image = _log_spectrogram(signal)
            duration = signal.size(-1) / rate
            axis.imshow(
                image.numpy(),
                origin="lower",
                aspect="auto",
                vmin=-100,
                vmax=-10,
                cmap="magma",
                extent=(0, duration, 0, rate / 2000),
            )
            title = key if key == "input" or OFFLINE in key else f"{key} ({buffer})"
            axis.set_title(f"{dataset}: {title}", fontsize=8)
            axis.set_xlabel("s", fontsize=7)
            axis.set_ylabel("kHz", fontsize=7)
            axis.tick_params(labelsize=6)
    figure.tight_layout()
    figure.savefig(path, dpi=70)
    plt.close(figure)
    return path
