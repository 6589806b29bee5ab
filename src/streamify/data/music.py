"""The music set: generated MIDI pieces (:mod:`streamify.data.midi`) rendered by fluidsynth with a GM soundfont.

Needs the ``fluidsynth`` program (apt package ``fluidsynth``) and the FluidR3 General MIDI soundfont
(apt package ``fluid-soundfont-gm``, ``/usr/share/sounds/sf2/FluidR3_GM.sf2``).
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile

from streamify.data.dataset import Clip, Summary, build, normalize_peak, require_file, require_program, trim_silence
from streamify.data.midi import compose

SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
DEFAULT_SAMPLE_RATE = 48000


def require_tools() -> None:
    """:class:`DataToolMissing` (naming the apt package) unless fluidsynth and the GM soundfont are installed."""
    require_program("fluidsynth", "fluidsynth")
    require_file(SOUNDFONT, "fluid-soundfont-gm", "the General MIDI soundfont")


def render_midi(midi_path: Path, sample_rate: int, soundfont: Path = SOUNDFONT, gain: float = 0.5) -> np.ndarray:
    """Audio [time] (mono float, fluidsynth's stereo averaged) of a MIDI file rendered at ``sample_rate``."""
    fluidsynth = require_program("fluidsynth", "fluidsynth")
    require_file(soundfont, "fluid-soundfont-gm", "the General MIDI soundfont")
    with tempfile.TemporaryDirectory(prefix="streamify-music-") as tmp:
        wav = Path(tmp) / "render.wav"
        command = [fluidsynth, "-ni", "-q", "-g", str(gain), "-r", str(sample_rate), "-T", "wav", "-O", "float"]
        command += ["-F", str(wav), str(soundfont), str(midi_path)]
        result = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if result.returncode != 0 or not wav.is_file():
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise RuntimeError(f"fluidsynth failed on {midi_path}: {detail[-1] if detail else result.returncode}")
        audio, rate = soundfile.read(wav, dtype="float32", always_2d=True)
    if rate != sample_rate:
        raise RuntimeError(f"fluidsynth wrote {rate} Hz, asked {sample_rate} Hz")
    return audio.mean(axis=1)


def music_clip(
    seed: int, index: int, sample_rate: int, keep_midi: bool = False, piece_seconds: tuple[float, float] = (20.0, 40.0)
) -> Clip:
    """File ``index`` of the music set of ``seed``: a composed piece, rendered, trimmed, peak-normalised
    (with ``keep_midi``, its MIDI file goes with it as ``midi/music_<index>.mid``). ``piece_seconds``: the
    range of piece lengths (at least 4 bars)."""
    rng = np.random.default_rng([seed, index, 1])  # 1: the music recipe's stream
    piece = compose(rng, *piece_seconds)
    with tempfile.TemporaryDirectory(prefix="streamify-midi-") as tmp:
        midi_path = Path(tmp) / "piece.mid"
        piece.midi.save(midi_path)
        audio = render_midi(midi_path, sample_rate)
        midi_bytes = midi_path.read_bytes()
    audio = trim_silence(audio, sample_rate)
    peak_db = float(rng.uniform(-6.0, -1.0))
    return Clip(
        audio=normalize_peak(audio, peak_db).astype(np.float32),
        meta={**piece.meta, "peak_db": round(peak_db, 2)},
        files={f"midi/music_{index:05d}.mid": midi_bytes} if keep_midi else {},
    )


def build_music(
    out: Path,
    minutes: float = 30.0,
    seed: int = 0,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    jobs: int = 1,
    keep_midi: bool = True,
    piece_seconds: tuple[float, float] = (20.0, 40.0),
    on_file: Callable[[float, float], None] | None = None,
) -> Summary:
    """Generate (or extend) the music set in ``out`` until it holds ``minutes`` of audio; see ``docs/data.md``."""
    require_tools()
    return build(
        Path(out),
        "music",
        lambda index: music_clip(seed, index, sample_rate, keep_midi, piece_seconds),
        minutes=minutes,
        seed=seed,
        sample_rate=sample_rate,
        jobs=jobs,
        on_file=on_file,
    )
