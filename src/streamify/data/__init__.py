"""Training data made on this machine: speech from espeak-ng, music from fluidsynth playing generated MIDI.

Both recipes are deterministic given a seed: file ``i`` of a set depends only on ``(seed, i)``, so a set can be
extended later (more files) without changing the files it already has. Each set is a folder::

    OUT/train/*.wav   OUT/test/*.wav   (mono, 16-bit PCM, at the set's sample rate; test = held-out files)
    OUT/manifest.jsonl                  (one JSON line per file: split, duration, what was generated)
    OUT/summary.json                    (sample rate, file counts and durations per split, the command)

See ``docs/data.md`` for the recipes, and :func:`streamify.data.music.build_music` /
:func:`streamify.data.speech.build_speech` for the builders.
"""

from streamify.data.dataset import DataToolMissing, Summary, is_test_index

__all__ = ["DataToolMissing", "Summary", "is_test_index"]
