"""The speech set: generated sentences (:mod:`streamify.data.text`) spoken by espeak-ng.

Each file is one "speaker" (language, regional voice, voice variant, speed, pitch, word gap) reading a short
paragraph of 3 to 8 generated sentences; espeak-ng's 22050 Hz output is resampled with soxr. Needs the
``espeak-ng`` program (apt package ``espeak-ng``).
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile
import soxr

from streamify.data.dataset import Clip, Summary, build, normalize_peak, require_program, trim_silence
from streamify.data.text import sentence

DEFAULT_SAMPLE_RATE = 48000
#: language -> (weight, espeak-ng voices of that language)
LANGUAGES: dict[str, tuple[float, list[str]]] = {
    "en": (0.3, ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029"]),
    "fr": (0.175, ["fr-fr", "fr-be"]),
    "de": (0.175, ["de"]),
    "es": (0.175, ["es", "es-419"]),
    "it": (0.175, ["it"]),
}
#: espeak-ng voice variants (male, female, and the Klatt synthesiser's voices); the novelty ones are left out
VARIANTS = [
    *(f"m{k}" for k in range(1, 8)),
    *(f"f{k}" for k in range(1, 6)),
    "klatt",
    "klatt2",
    "klatt3",
    "klatt4",
    "adam",
    "benjamin",
    "linda",
    "steph",
    "max",
    "quincy",
]


def require_tools() -> None:
    """:class:`DataToolMissing` (naming the apt package) unless espeak-ng is installed."""
    require_program("espeak-ng", "espeak-ng")


def speak(text: str, voice: str, speed: int, pitch: int, word_gap: int) -> tuple[np.ndarray, int]:
    """espeak-ng's audio [time] (mono float) of ``text`` and its sample rate.

    ``voice`` is an espeak-ng voice with an optional ``+variant``; ``speed`` in words per minute, ``pitch``
    0-99, ``word_gap`` the pause between words in units of 10 ms.
    """
    espeak = require_program("espeak-ng", "espeak-ng")
    with tempfile.TemporaryDirectory(prefix="streamify-speech-") as tmp:
        text_file, wav = Path(tmp) / "text.txt", Path(tmp) / "speech.wav"
        text_file.write_text(text, encoding="utf-8")
        command = [espeak, "-v", voice, "-s", str(speed), "-p", str(pitch), "-g", str(word_gap), "-b", "1"]
        command += ["-f", str(text_file), "-w", str(wav)]
        result = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if result.returncode != 0 or not wav.is_file():
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise RuntimeError(f"espeak-ng failed with voice {voice}: {detail[-1] if detail else result.returncode}")
        audio, rate = soundfile.read(wav, dtype="float32", always_2d=True)
    return audio.mean(axis=1), int(rate)


def speech_clip(seed: int, index: int, sample_rate: int) -> Clip:
    """File ``index`` of the speech set of ``seed``: one speaker reading a generated paragraph."""
    rng = np.random.default_rng([seed, index, 2])  # 2: the speech recipe's stream
    languages = sorted(LANGUAGES)
    weights = np.array([LANGUAGES[lang][0] for lang in languages])
    language = languages[int(rng.choice(len(languages), p=weights / weights.sum()))]
    voices = LANGUAGES[language][1]
    voice = voices[int(rng.integers(len(voices)))]
    variant = VARIANTS[int(rng.integers(len(VARIANTS)))]
    speed = int(rng.integers(125, 206))
    pitch = int(rng.integers(20, 81))
    word_gap = int(rng.choice([0, 0, 0, 1, 2, 4]))
    sentences = [sentence(rng, language) for _ in range(int(rng.integers(3, 9)))]
    text = " ".join(sentences)
    audio, rate = speak(text, f"{voice}+{variant}", speed, pitch, word_gap)
    if rate != sample_rate:
        audio = soxr.resample(audio, rate, sample_rate, quality="VHQ")
    audio = trim_silence(np.asarray(audio, dtype=np.float32), sample_rate)
    peak_db = float(rng.uniform(-6.0, -1.0))
    meta = {
        "language": language,
        "voice": voice,
        "variant": variant,
        "speed_wpm": speed,
        "pitch": pitch,
        "word_gap_10ms": word_gap,
        "sentences": len(sentences),
        "peak_db": round(peak_db, 2),
        "text": text,
    }
    return Clip(audio=normalize_peak(audio, peak_db).astype(np.float32), meta=meta)


def build_speech(
    out: Path,
    minutes: float = 30.0,
    seed: int = 0,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    jobs: int = 1,
    on_file: Callable[[float, float], None] | None = None,
) -> Summary:
    """Generate (or extend) the speech set in ``out`` until it holds ``minutes`` of audio; see ``docs/data.md``."""
    require_tools()
    return build(
        Path(out),
        "speech",
        lambda index: speech_clip(seed, index, sample_rate),
        minutes=minutes,
        seed=seed,
        sample_rate=sample_rate,
        jobs=jobs,
        on_file=on_file,
    )
