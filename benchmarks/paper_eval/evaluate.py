"""The rows of the evaluation for one data set: a non-causal and a causal model on the same held-out clips.

Rows (``buffer`` in samples at the model's rate):

* non-causal, offline (and offline with its noise synthesizer on: the only row where it is);
* non-causal, streamed by :func:`streamify.convert` at each buffer (max abs difference to offline);
* causal, offline (and with noise), and streamed at each buffer (its own latency: buffer + its delay);
* non-causal, naively chunked at each buffer; non-causal, exact overlap-add at each buffer.

Every model runs with ``use_noise = False`` except in the "+ noise" rows, so that all methods are
deterministic and comparable sample by sample. Every measure is taken on the clip but its last
``edge`` samples (the larger receptive field of the two models), where the offline model pads the clip's
end and a stream is flushed with zeros: two edge conventions, not two methods.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

import streamify

from . import methods, metrics

NONCAUSAL, CAUSAL = "non-causal", "causal"
OFFLINE, OFFLINE_NOISE, STREAMED, NAIVE, OLA = "offline", "offline + noise", "streamify", "naive chunks", "overlap-add"


@dataclass
class Row:
    """One line of the table (means over the clips; cost pooled over them)."""

    dataset: str
    model: str  # NONCAUSAL or CAUSAL
    method: str
    buffer: Optional[int]  # samples; None offline
    msd: float  # multiscale spectral distance to the input
    log_mel: float  # log-mel distance to the input (bels)
    latency_ms: Optional[float]  # model delay + buffering; None offline
    cpu_per_second: float  # CPU seconds per second of audio, one thread
    max_abs_diff: Optional[float]  # to the same model's offline output
    jump_db: Optional[float]  # step energy at the buffer boundaries over the offline output's mean step energy (dB)
    boundary_error_db: Optional[float]  # error energy near the boundaries over the offline energy there (dB)
    msd_per_clip: List[float] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Models:
    """The two trained models of a data set (``use_noise`` is switched by the evaluation)."""

    noncausal: nn.Module
    causal: nn.Module


def convert(model: nn.Module) -> nn.Module:
    """``streamify.convert(model)`` on a random example of 37 latent frames, in the model's dtype."""
    generator = torch.Generator().manual_seed(0)
    dtype = next(model.parameters()).dtype
    example = torch.randn(1, 1, model.ratio * 37, generator=generator, dtype=dtype)
    return streamify.convert(model, example)


def evaluate_dataset(
    dataset: str,
    models: Models,
    clips: Sequence[Tuple[str, Tensor]],
    buffers: Sequence[int],
    log: Callable[[str], None] = print,
    strip_clip: int = 0,
    strip_buffer: Optional[int] = None,
) -> Tuple[List[Row], Dict[str, object]]:
    """The rows of one data set, and the strip (input and outputs of clip ``strip_clip`` for the spectrogram figure)."""
    torch.set_num_threads(1)
    nc, c = models.noncausal, models.causal
    sample_rate = int(nc.sample_rate)
    for model in (nc, c):
        model.use_noise = False
        model.eval()
    log(f"{dataset}: converting both models")
    nc_stream, c_stream = convert(nc), convert(c)
    log(f"{dataset}: measuring the non-causal model's overlap-add contexts")
    left, right = methods.measured_context(nc, nc.ratio, nc_stream.receptive_field // 2 + nc.ratio)
    facts: Dict[str, object] = {
        "sample_rate": sample_rate,
        "ratio": int(nc.ratio),
        "noncausal_delay": int(nc_stream.delay),
        "causal_delay": int(c_stream.delay),
        "noncausal_receptive_field": int(nc_stream.receptive_field),
        "causal_receptive_field": int(c_stream.receptive_field),
        "ola_left": left,
        "ola_right": right,
        "clips": [name for name, _ in clips],
        "clip_seconds": [x.size(-1) / sample_rate for _, x in clips],
    }
    edge = max(int(nc_stream.receptive_field), int(c_stream.receptive_field))
    facts["edge"] = edge
    strip_buffer = strip_buffer or sorted(buffers)[len(buffers) // 2]
    strip: Dict[str, object] = {"sample_rate": sample_rate, "buffer": strip_buffer}
    # (model, method, buffer) -> per-clip results
    results: Dict[Tuple[str, str, Optional[int]], List[dict]] = {}

    def add(key: Tuple[str, str, Optional[int]], x: Tensor, run: methods.Run, reference: Optional[Tensor]):
        buffer = key[2]
        n = x.size(-1) - edge
        if n <= 0:
            raise ValueError(f"a clip of {x.size(-1)} samples is shorter than the receptive field ({edge})")
        y, x, ref = run.y[..., :n], x[..., :n], None if reference is None else reference[..., :n]
        buffered = buffer is not None and ref is not None
        results.setdefault(key, []).append(
            {
                "msd": metrics.multiscale_spectral_distance(y, x),
                "log_mel": metrics.log_mel_distance(y, x, sample_rate),
                "cpu": run.cpu_seconds,
                "seconds": run.timed_samples / sample_rate,
                "latency": run.latency if buffer is not None else None,
                "diff": float((y - ref).abs().max()) if ref is not None else None,
                "jump": metrics.boundary_jump_db(y, ref, buffer) if buffered else None,
                "error": metrics.boundary_error_db(y, ref, buffer) if buffered else None,
            }
        )

    for index, (name, x) in enumerate(clips):
        log(f"{dataset}: clip {index + 1}/{len(clips)} {name} ({x.size(-1) / sample_rate:.1f} s)")
        keep = index == strip_clip
        if keep:
            strip["input"] = x
        for label, model, stream in ((NONCAUSAL, nc, nc_stream), (CAUSAL, c, c_stream)):
            reference = methods.offline(model, x)
            add((label, OFFLINE, None), x, reference, reference.y)
            model.use_noise = True
            torch.manual_seed(index)
            add((label, OFFLINE_NOISE, None), x, methods.offline(model, x), None)
            model.use_noise = False
            for buffer in buffers:
                run = methods.streamed(stream, x, buffer)
                add((label, STREAMED, buffer), x, run, reference.y)
                if keep and buffer == strip_buffer:
                    strip[f"{label} {STREAMED}"] = run.y
            if keep:
                strip[f"{label} {OFFLINE}"] = reference.y
            if label == NONCAUSAL:
                for buffer in buffers:
                    run = methods.naive(model, x, buffer)
                    add((label, NAIVE, buffer), x, run, reference.y)
                    if keep and buffer == strip_buffer:
                        strip[f"{label} {NAIVE}"] = run.y
                    add(
                        (label, OLA, buffer),
                        x,
                        methods.overlap_add(model, x, buffer, left, right, model.ratio),
                        reference.y,
                    )
    rows = [_row(dataset, key, items, sample_rate) for key, items in results.items()]
    return rows, {"facts": facts, "strip": strip}


def _row(dataset: str, key: Tuple[str, str, Optional[int]], items: List[dict], sample_rate: int) -> Row:
    label, method, buffer = key
    diffs = [item["diff"] for item in items if item["diff"] is not None]

    def mean(name: str) -> Optional[float]:
        values = [item[name] for item in items if item[name] is not None and not math.isnan(item[name])]
        return sum(values) / len(values) if values else None

    latency = items[0]["latency"]
    return Row(
        dataset=dataset,
        model=label,
        method=method,
        buffer=buffer,
        msd=sum(item["msd"] for item in items) / len(items),
        log_mel=sum(item["log_mel"] for item in items) / len(items),
        latency_ms=None if latency is None else 1000.0 * latency / sample_rate,
        cpu_per_second=sum(item["cpu"] for item in items) / sum(item["seconds"] for item in items),
        max_abs_diff=max(diffs) if diffs else None,
        jump_db=mean("jump"),
        boundary_error_db=mean("error"),
        msd_per_clip=[item["msd"] for item in items],
    )
