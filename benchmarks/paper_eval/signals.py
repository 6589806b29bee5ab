"""Audio for the evaluation: held-out test clips of a data set, and the synthetic sets of ``--quick``.

The synthetic sets stand in for the generated music and speech sets (docs/data.md) where those are absent
(CI): seeded, a few seconds, written as 48 kHz 16-bit wav files in the same ``train/`` and ``test/`` layout.
"music": notes of a few harmonic timbres with attack-decay envelopes over a bass drone; "speech": a
glottal pulse train with a moving pitch through two resonances, in syllables separated by exact digital
silence.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import List, Tuple

import numpy as np
import torch
from torch import Tensor

SYNTHETIC_RATE = 48000


def test_clips(
    folder: Path, sample_rate: int, seconds: float, max_clips: int, multiple: int
) -> List[Tuple[str, Tensor]]:
    """``(name, [1, 1, n])`` clips of the audio files in ``folder``, at ``sample_rate``: the first ``seconds`` of
    each (cut to a multiple of ``multiple`` samples; shorter files skipped), at most ``max_clips`` files spread
    evenly over the sorted list."""
    from streamify.training.dataset import audio_files, read_mono

    files = audio_files(Path(folder))
    if not files:
        raise FileNotFoundError(f"no audio file under {folder}")
    if len(files) > max_clips:
        files = (
            [files[round(i * (len(files) - 1) / (max_clips - 1))] for i in range(max_clips)]
            if max_clips > 1
            else files[:1]
        )
    clips = []
    for path in files:
        audio = read_mono(path, sample_rate)
        n = min(len(audio), round(seconds * sample_rate)) // multiple * multiple
        if n < 2 * multiple:
            continue
        clips.append((path.name, torch.from_numpy(audio[:n].copy()).view(1, 1, n)))
    if not clips:
        raise FileNotFoundError(f"no file under {folder} is {2 * multiple} samples long at {sample_rate} Hz")
    return clips


def _envelope(n: int, rate: int, attack: float, decay: float) -> np.ndarray:
    t = np.arange(n) / rate
    return np.minimum(t / attack, 1.0) * np.exp(-t / decay)


def music_like(seconds: float, seed: int, rate: int = SYNTHETIC_RATE) -> np.ndarray:
    """``[n]`` float32: notes (random pitches, 3 timbres) with envelopes over a drone, peak 0.5."""
    rng = np.random.default_rng(seed)
    n = round(seconds * rate)
    out = np.zeros(n)
    t = np.arange(n) / rate
    root = 55.0 * 2 ** (rng.integers(0, 12) / 12)
    out += 0.2 * np.sin(2 * math.pi * root * t) * (1 + 0.3 * np.sin(2 * math.pi * 0.5 * t))
    start = 0
    while start < n:
        length = int(rate * rng.uniform(0.12, 0.5))
        f0 = root * 4 * 2 ** (rng.choice([0, 2, 4, 5, 7, 9, 11, 12]) / 12)
        k = np.arange(1, 9)[:, None]
        gains = [k**-1.0, k**-2.0 * (k % 2), np.exp(-0.4 * k)][rng.integers(0, 3)]
        tt = np.arange(min(length, n - start)) / rate
        note = (gains * np.sin(2 * math.pi * f0 * k * tt)).sum(0)
        out[start : start + len(tt)] += note * _envelope(len(tt), rate, 0.01, rng.uniform(0.08, 0.3))
        start += length
    return (0.5 * out / np.abs(out).max()).astype(np.float32)


def speech_like(seconds: float, seed: int, rate: int = SYNTHETIC_RATE) -> np.ndarray:
    """``[n]`` float32: voiced syllables (pulse train, gliding pitch, two resonances) between exact zeros."""
    rng = np.random.default_rng(seed)
    n = round(seconds * rate)
    out = np.zeros(n)
    start = int(rate * 0.1)
    while start < n:
        length = min(int(rate * rng.uniform(0.1, 0.3)), n - start)
        pitch = rng.uniform(90, 220) * np.linspace(1.0, rng.uniform(0.8, 1.2), length)
        phase = np.cumsum(pitch / rate)
        pulses = np.diff(np.floor(phase), prepend=0.0)  # one impulse per period
        syllable = pulses.copy()
        for formant, width in ((rng.uniform(300, 900), 80.0), (rng.uniform(900, 2500), 120.0)):
            r = math.exp(-math.pi * width / rate)
            a1, a2 = 2 * r * math.cos(2 * math.pi * formant / rate), -r * r
            y = np.zeros(length)
            for i in range(length):  # a two-pole resonator
                y[i] = pulses[i] + a1 * (y[i - 1] if i else 0.0) + a2 * (y[i - 2] if i > 1 else 0.0)
            syllable = syllable + y
        out[start : start + length] = syllable * np.hanning(length)
        start += length + int(rate * rng.uniform(0.05, 0.25))
    return (0.5 * out / np.abs(out).max()).astype(np.float32)


def write_synthetic_set(folder: Path, kind: str, train_files: int, test_files: int, seconds: float, seed: int) -> Path:
    """Write ``folder/train/*.wav`` and ``folder/test/*.wav`` (48 kHz, 16-bit) of ``kind`` ("music" or "speech")."""
    import soundfile

    make = {"music": music_like, "speech": speech_like}[kind]
    for split, count, offset in (("train", train_files, 0), ("test", test_files, 1000)):
        (folder / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            path = folder / split / f"{kind}_{i:03d}.wav"
            if not path.exists():
                audio = make(seconds, seed * 10_000 + offset + i)
                soundfile.write(str(path), audio, SYNTHETIC_RATE, subtype="PCM_16")
    return folder
