"""Generated music as General MIDI files: melodies, chords, bass lines and drum patterns.

:func:`compose` draws one short piece from a seeded generator: key, mode, tempo, metre, a chord progression,
an arrangement (which parts play, on which General MIDI instruments) and per-part patterns, then writes the
notes with :mod:`mido`. Everything random comes from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import mido
import numpy as np

TICKS_PER_BEAT = 480
DRUM_CHANNEL = 9

#: scale intervals (semitones above the tonic)
MODES: dict[str, list[int]] = {
    "major": [0, 2, 4, 5, 7, 9, 11],
    "minor": [0, 2, 3, 5, 7, 8, 10],
    "dorian": [0, 2, 3, 5, 7, 9, 10],
    "mixolydian": [0, 2, 4, 5, 7, 9, 10],
    "harmonic_minor": [0, 2, 3, 5, 7, 8, 11],
}
#: chord progressions as scale degrees (0 = tonic); one chord per bar or per two bars
PROGRESSIONS: list[list[int]] = [
    [0, 4, 5, 3],
    [0, 5, 3, 4],
    [1, 4, 0, 0],
    [0, 3, 4, 3],
    [0, 3, 0, 4],
    [5, 3, 0, 4],
    [0, 5, 1, 4],
    [0, 2, 3, 4],
    [0, 6, 5, 4],
    [0, 3, 6, 2, 5, 1, 4, 0],
]
# General MIDI programs (0-based) per role
MELODY_PROGRAMS: dict[str, int] = {
    "acoustic_grand_piano": 0,
    "vibraphone": 11,
    "marimba": 12,
    "xylophone": 13,
    "harmonica": 22,
    "nylon_guitar": 24,
    "steel_guitar": 25,
    "jazz_guitar": 26,
    "violin": 40,
    "cello": 42,
    "harp": 46,
    "trumpet": 56,
    "trombone": 57,
    "alto_sax": 65,
    "tenor_sax": 66,
    "oboe": 68,
    "clarinet": 71,
    "flute": 73,
    "recorder": 74,
    "square_lead": 80,
    "sawtooth_lead": 81,
}
CHORD_PROGRAMS: dict[str, int] = {
    "acoustic_grand_piano": 0,
    "bright_piano": 1,
    "electric_piano_1": 4,
    "electric_piano_2": 5,
    "harpsichord": 6,
    "drawbar_organ": 16,
    "church_organ": 19,
    "nylon_guitar": 24,
    "steel_guitar": 25,
    "clean_electric_guitar": 27,
    "harp": 46,
    "string_ensemble": 48,
    "slow_strings": 49,
    "choir_aahs": 52,
    "brass_section": 61,
    "new_age_pad": 88,
    "warm_pad": 89,
}
BASS_PROGRAMS: dict[str, int] = {
    "acoustic_bass": 32,
    "fingered_bass": 33,
    "picked_bass": 34,
    "fretless_bass": 35,
    "synth_bass_1": 38,
    "synth_bass_2": 39,
    "contrabass": 43,
}
#: lowest and highest melody note per instrument family (MIDI note numbers)
LOW_INSTRUMENTS = {"cello", "trombone", "tenor_sax"}
HIGH_INSTRUMENTS = {"flute", "recorder", "xylophone", "violin", "oboe"}
#: arrangements: which parts play (weights of drawing each)
ARRANGEMENTS: dict[str, tuple[set[str], float]] = {
    "band": ({"melody", "chords", "bass", "drums"}, 0.40),
    "trio": ({"melody", "chords", "bass"}, 0.15),
    "duo": ({"melody", "chords"}, 0.15),
    "solo_piano": ({"melody", "chords"}, 0.12),
    "rhythm_section": ({"chords", "bass", "drums"}, 0.10),
    "melody_drums": ({"melody", "bass", "drums"}, 0.08),
}
# General MIDI percussion keys
KICK, RIM, SNARE, CLAP, CLOSED_HAT, PEDAL_HAT, OPEN_HAT = 36, 37, 38, 39, 42, 44, 46
LOW_TOM, MID_TOM, HIGH_TOM, CRASH, RIDE, TAMBOURINE, SHAKER = 45, 47, 50, 49, 51, 54, 70


@dataclass
class Piece:
    """A composed piece: its MIDI file and a description of what was drawn."""

    midi: mido.MidiFile
    seconds: float
    meta: dict[str, Any] = field(default_factory=dict)


class _Track:
    """Absolute-time note events of one channel, turned into a mido track at the end."""

    def __init__(self, channel: int, program: int | None, volume: int, reverb: int) -> None:
        self.channel = channel
        self.events: list[tuple[int, int, mido.Message]] = []  # (tick, order, message)
        if program is not None:
            self.events.append((0, 0, mido.Message("program_change", channel=channel, program=program)))
        self.events.append((0, 0, mido.Message("control_change", channel=channel, control=7, value=volume)))
        self.events.append((0, 0, mido.Message("control_change", channel=channel, control=91, value=reverb)))

    def note(self, tick: int, length: int, note: int, velocity: int) -> None:
        tick, length = max(0, int(tick)), max(10, int(length))
        note, velocity = int(np.clip(note, 0, 127)), int(np.clip(velocity, 1, 127))
        self.events.append((tick, 2, mido.Message("note_on", channel=self.channel, note=note, velocity=velocity)))
        self.events.append((tick + length, 1, mido.Message("note_off", channel=self.channel, note=note, velocity=0)))

    def to_track(self, end_tick: int) -> mido.MidiTrack:
        track = mido.MidiTrack()
        now = 0
        for tick, _, message in sorted(self.events, key=lambda e: (e[0], e[1])):
            track.append(message.copy(time=tick - now))
            now = tick
        track.append(mido.MetaMessage("end_of_track", time=max(0, end_tick - now)))
        return track


def _choice(rng: np.random.Generator, options: dict[str, int]) -> tuple[str, int]:
    name = sorted(options)[int(rng.integers(len(options)))]
    return name, options[name]


def _chord_notes(root_pc: int, scale: list[int], degree: int, seventh: bool) -> list[int]:
    """Pitch classes (semitones from C, may exceed 12) of the diatonic triad/seventh on ``degree``."""
    steps = [0, 2, 4, 6] if seventh else [0, 2, 4]
    notes = []
    for step in steps:
        d = degree + step
        notes.append(root_pc + scale[d % 7] + 12 * (d // 7))
    return notes


def _voice(pitches: list[int], center: int, previous: list[int] | None) -> list[int]:
    """A voicing of the pitch classes near ``center`` (MIDI note), close to the previous voicing."""
    candidates = []
    for inversion in range(len(pitches)):
        chord = pitches[inversion:] + [p + 12 for p in pitches[:inversion]]
        base = chord[0] % 12
        for octave in range(3, 7):
            shift = octave * 12 + base - chord[0]
            candidates.append([p + shift for p in chord])
    if previous is None:
        return min(candidates, key=lambda c: abs(np.mean(c) - center))
    return min(candidates, key=lambda c: abs(np.mean(c) - np.mean(previous)) + 0.3 * abs(np.mean(c) - center))


def _drum_pattern(rng: np.random.Generator, beats: int, style: str) -> dict[int, list[tuple[int, float]]]:
    """One bar of drums on a sixteenth grid: {key: [(step, velocity scale)]}."""
    steps = beats * 4
    pattern: dict[int, list[tuple[int, float]]] = {}
    if style == "four_on_floor":
        pattern[KICK] = [(s, 1.0) for s in range(0, steps, 4)]
        pattern[SNARE if rng.random() < 0.5 else CLAP] = [(s, 0.9) for s in range(4, steps, 8)]
        pattern[OPEN_HAT if rng.random() < 0.5 else CLOSED_HAT] = [(s, 0.7) for s in range(2, steps, 4)]
    elif style == "rock":
        kicks = [0, 8] + [s for s in (6, 10, 14) if s < steps and rng.random() < 0.4]
        pattern[KICK] = [(s, 1.0) for s in kicks if s < steps]
        pattern[SNARE] = [(s, 0.95) for s in range(4, steps, 8)]
        hat = RIDE if rng.random() < 0.25 else CLOSED_HAT
        pattern[hat] = [(s, 0.8 if s % 4 == 0 else 0.6) for s in range(0, steps, 2)]
    elif style == "half_time":
        pattern[KICK] = [(0, 1.0)] + ([(10, 0.8)] if rng.random() < 0.5 else [])
        pattern[SNARE] = [(8, 1.0)] if steps >= 12 else [(6, 1.0)]
        pattern[CLOSED_HAT] = [(s, 0.5 + 0.3 * (s % 4 == 0)) for s in range(steps)]
    elif style == "shuffle":
        pattern[KICK] = [(0, 1.0), (8, 0.9)]
        pattern[SNARE] = [(s, 0.9) for s in range(4, steps, 8)]
        pattern[RIDE] = [(s, 0.7) for s in range(0, steps, 4)] + [(s, 0.45) for s in range(3, steps, 4)]
    elif style == "bossa":
        pattern[KICK] = [(s, 0.8) for s in (0, 3, 4, 7, 8, 11, 12, 15) if s < steps]
        pattern[RIM] = [(s, 0.8) for s in (0, 3, 6, 10, 13) if s < steps]
        pattern[SHAKER] = [(s, 0.4) for s in range(0, steps, 2)]
    else:  # waltz, or any metre not in four
        pattern[KICK] = [(0, 1.0)]
        pattern[SNARE if rng.random() < 0.6 else RIM] = [(s, 0.7) for s in range(4, steps, 4)]
        pattern[CLOSED_HAT if rng.random() < 0.6 else TAMBOURINE] = [(s, 0.5) for s in range(0, steps, 2)]
    # a few random ghost notes, different in each piece
    for _ in range(int(rng.integers(0, 3))):
        step = int(rng.integers(steps))
        pattern.setdefault(SNARE, []).append((step, 0.3))
    return pattern


def _fill(track: _Track, rng: np.random.Generator, start: int, beats: int, sixteenth: int, loud: float) -> None:
    """A drum fill over the last beat(s) of a bar starting at tick ``start``."""
    fill_beats = min(beats, int(rng.integers(1, 3)))
    first = (beats - fill_beats) * 4
    toms = [HIGH_TOM, MID_TOM, LOW_TOM, SNARE]
    for k, step in enumerate(range(first, beats * 4)):
        if rng.random() < 0.8:
            key = toms[min(len(toms) - 1, k * len(toms) // (fill_beats * 4))]
            track.note(start + step * sixteenth, sixteenth, key, int(loud * (70 + 5 * k)))


@dataclass
class _Song:
    """What every part of a piece plays along: key, metre, length, the chord of each bar, the random generator."""

    rng: np.random.Generator
    tonic: int  # pitch class of the key's tonic (0 = C)
    scale: list[int]  # the mode's intervals above the tonic
    beats: int  # beats per bar
    bars: int
    swing: int  # ticks the off-beat eighths are late
    arrangement: str
    chords: list[list[int]]  # per bar: the chord's pitch classes
    meta: dict[str, Any]  # what was drawn, filled by each part
    beat: int = TICKS_PER_BEAT

    @property
    def bar_ticks(self) -> int:
        return self.beats * self.beat

    def human(self, tick: int, amount: int = 8) -> int:
        """``tick`` moved by up to ``amount`` ticks either way, as a player would."""
        return int(tick + self.rng.integers(-amount, amount + 1))


def compose(rng: np.random.Generator, min_seconds: float = 20.0, max_seconds: float = 40.0) -> Piece:
    """One piece of ``min_seconds`` to ``max_seconds`` (plus a release tail), drawn from ``rng``."""
    mode = sorted(MODES)[int(rng.integers(len(MODES)))]
    scale = MODES[mode]
    tonic = int(rng.integers(12))
    beats = 3 if rng.random() < 0.2 else 4
    bpm = float(rng.uniform(68, 150))
    progression = PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))]
    bars_per_chord = 2 if (rng.random() < 0.3 and bpm > 110) else 1
    seconds_per_bar = beats * 60.0 / bpm
    target = rng.uniform(min_seconds, max_seconds)
    bars = max(4, int(round(target / seconds_per_bar / 4)) * 4)
    arrangement_names = sorted(ARRANGEMENTS)
    weights = np.array([ARRANGEMENTS[n][1] for n in arrangement_names])
    arrangement = arrangement_names[int(rng.choice(len(arrangement_names), p=weights / weights.sum()))]
    parts = ARRANGEMENTS[arrangement][0]
    swing = TICKS_PER_BEAT // 6 if rng.random() < 0.2 else 0
    meta: dict[str, Any] = {
        "tonic": ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"][tonic],
        "mode": mode,
        "bpm": round(bpm, 1),
        "beats_per_bar": beats,
        "bars": bars,
        "progression": progression,
        "arrangement": arrangement,
        "instruments": {},
    }
    chords = [
        _chord_notes(tonic, scale, progression[(bar // bars_per_chord) % len(progression)], rng.random() < 0.35)
        for bar in range(bars)
    ]
    song = _Song(rng, tonic, scale, beats, bars, swing, arrangement, chords, meta)
    # the parts draw from ``rng`` in this order: a piece depends on it
    part_writers = (("chords", _chords_part), ("bass", _bass_part), ("melody", _melody_part), ("drums", _drums_part))
    tracks = [write(song) for part, write in part_writers if part in parts]
    end_tick = bars * song.bar_ticks + 2 * song.beat  # the last notes' release rings
    midi = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    conductor = mido.MidiTrack()
    conductor.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0))
    conductor.append(mido.MetaMessage("time_signature", numerator=beats, denominator=4, time=0))
    conductor.append(mido.MetaMessage("end_of_track", time=end_tick))
    midi.tracks.append(conductor)
    for track in tracks:
        midi.tracks.append(track.to_track(end_tick))
    return Piece(midi=midi, seconds=bars * seconds_per_bar, meta=meta)


def _chords_part(song: _Song) -> _Track:
    """The chords on channel 0: voiced close to the previous bar, as blocks, beats, strums or arpeggios."""
    rng, beat, beats, bar_ticks, human = song.rng, song.beat, song.beats, song.bar_ticks, song.human
    if song.arrangement == "solo_piano":
        name, program = "acoustic_grand_piano", 0
    else:
        name, program = _choice(rng, CHORD_PROGRAMS)
    song.meta["instruments"]["chords"] = name
    sustained = program in (16, 19, 48, 49, 52, 61, 88, 89)
    styles = ["block", "beats", "arpeggio", "alberti"] if not sustained else ["block", "block", "beats"]
    if program in (24, 25, 27):
        styles = ["strum", "arpeggio", "strum"]
    style = styles[int(rng.integers(len(styles)))]
    song.meta["chord_style"] = style
    track = _Track(0, program, int(rng.integers(70, 100)), int(rng.integers(20, 80)))
    previous = None
    base_velocity = rng.uniform(55, 85)
    for bar in range(song.bars):
        voicing = _voice(song.chords[bar], 62, previous)
        previous = voicing
        start = bar * bar_ticks
        if style == "block":
            for note in voicing:
                track.note(human(start), bar_ticks - 20, note, base_velocity + rng.integers(-6, 7))
        elif style in ("beats", "strum"):
            for b in range(beats):
                for k, note in enumerate(voicing):
                    offset = k * 15 if style == "strum" else 0
                    accent = 10 if b == 0 else 0
                    track.note(human(start + b * beat + offset), beat - 40, note, base_velocity + accent - 5)
        else:
            order = (
                voicing + voicing[-2:0:-1]
                if style == "arpeggio"
                else [voicing[0], voicing[-1], voicing[1], voicing[-1]]
            )
            for k in range(beats * 2):
                tick = start + k * beat // 2 + (song.swing if k % 2 else 0)
                track.note(human(tick), beat // 2 + 60, order[k % len(order)], base_velocity - 8 + 8 * (k % 2 == 0))
    return track


def _bass_part(song: _Song) -> _Track:
    """The bass on channel 1: roots, root and fifth, a walking line or a syncopated pattern."""
    rng, beat, beats, bar_ticks, human = song.rng, song.beat, song.beats, song.bar_ticks, song.human
    name, program = _choice(rng, BASS_PROGRAMS)
    song.meta["instruments"]["bass"] = name
    style = ["roots", "root_fifth", "walking", "syncopated"][int(rng.integers(4))]
    song.meta["bass_style"] = style
    track = _Track(1, program, int(rng.integers(85, 110)), int(rng.integers(0, 30)))
    for bar in range(song.bars):
        root = 36 + (song.chords[bar][0] % 12)
        if root > 47:
            root -= 12
        fifth = root + 7
        start = bar * bar_ticks
        velocity = rng.uniform(75, 100)
        if style == "roots":
            track.note(human(start), bar_ticks // 2 - 30, root, velocity)
            track.note(human(start + bar_ticks // 2), bar_ticks // 2 - 30, root, velocity - 10)
        elif style == "root_fifth":
            for b in range(beats):
                track.note(human(start + b * beat), beat - 30, root if b % 2 == 0 else fifth, velocity - 5 * (b % 2))
        elif style == "walking":
            following = 36 + (song.chords[(bar + 1) % song.bars][0] % 12)
            notes = [root, root + song.scale[2 % 7] - song.scale[0], fifth, following - 1][:beats]
            for b, note in enumerate(notes):
                track.note(human(start + b * beat), beat - 30, note, velocity - 5 * (b % 2))
        else:
            for step in (0, 3, 6, 8, 11, 14):
                if step < beats * 4 and (step in (0, 8) or rng.random() < 0.6):
                    note = root + (12 if rng.random() < 0.15 else 0)
                    track.note(human(start + step * beat // 4), beat // 2, note, velocity)
    return track


#: melody rhythms of one bar in four, in beats
_RHYTHMS = [
    [1, 1, 1, 1],
    [0.5, 0.5, 1, 1, 1],
    [1.5, 0.5, 1, 1],
    [0.5, 0.5, 0.5, 0.5, 2],
    [2, 1, 1],
    [1, 0.5, 0.5, 2],
    [3, 1],
    [0.75, 0.25, 1, 0.5, 0.5, 1],
]


def _melody_part(song: _Song) -> _Track:
    """The melody on channel 2: two-bar phrases, each an A or B motif repeated with variation."""
    rng, beat, beats, bar_ticks, bars = song.rng, song.beat, song.beats, song.bar_ticks, song.bars
    if song.arrangement == "solo_piano":
        name, program = "acoustic_grand_piano", 0
    else:
        name, program = _choice(rng, MELODY_PROGRAMS)
    song.meta["instruments"]["melody"] = name
    low, high = (48, 72) if name in LOW_INSTRUMENTS else (67, 91) if name in HIGH_INSTRUMENTS else (60, 84)
    track = _Track(2, program, int(rng.integers(90, 120)), int(rng.integers(20, 70)))
    # scale notes in range, as a sorted list to walk on
    ladder = [n for n in range(low, high + 1) if (n - song.tonic) % 12 in song.scale]
    motifs: dict[str, list[tuple[float, int, bool]]] = {}
    position = len(ladder) // 2
    structure = "AABA" if rng.random() < 0.5 else "ABAB"
    legato = rng.uniform(0.7, 1.0)
    base_velocity = rng.uniform(70, 100)
    for phrase_start in range(0, bars, 2):
        label = structure[(phrase_start // 2) % 4]
        if label not in motifs or rng.random() < 0.25:
            motifs[label] = _motif(rng, beats)
        tick = phrase_start * bar_ticks
        for length, step, rest in motifs[label]:
            position = int(np.clip(position + step, 0, len(ladder) - 1))
            bar = min(bars - 1, tick // bar_ticks)
            note = ladder[position]
            if tick % beat == 0 and (tick // beat) % beats == 0:  # downbeat: nearest chord tone
                tones = [n for n in ladder if (n % 12) in {p % 12 for p in song.chords[bar]}]
                note = min(tones, key=lambda n: abs(n - note)) if tones else note
                position = ladder.index(note)
            ticks = int(length * beat)
            if not rest:
                accent = 8 if (tick // beat) % beats == 0 else 0
                track.note(song.human(tick), ticks * legato, note, base_velocity + accent + rng.integers(-8, 9))
            tick += ticks
    return track


def _motif(rng: np.random.Generator, beats: int) -> list[tuple[float, int, bool]]:
    """Two bars of melody: (length in beats, step on the scale ladder, rest) per note."""
    events = []
    for _ in range(2):
        rhythm = list(_RHYTHMS[int(rng.integers(len(_RHYTHMS)))])
        if beats == 3:
            rhythm = [1, 1, 1] if rng.random() < 0.5 else [2, 1]
        for length in rhythm:
            step = int(rng.choice([-2, -1, -1, 0, 1, 1, 2, 3, -3, 4, -4]))
            rest = rng.random() < 0.1
            events.append((length, step, rest))
    return events


def _drums_part(song: _Song) -> _Track:
    """The drums on the percussion channel: two alternating bar patterns, a crash every 8 bars, a fill every 4."""
    rng, beats, bar_ticks = song.rng, song.beats, song.bar_ticks
    styles = ["rock", "four_on_floor", "half_time", "shuffle", "bossa"] if beats == 4 else ["waltz"]
    style = styles[int(rng.integers(len(styles)))]
    song.meta["drum_style"] = style
    song.meta["instruments"]["drums"] = "standard_kit"
    track = _Track(DRUM_CHANNEL, None, int(rng.integers(80, 110)), int(rng.integers(10, 50)))
    pattern = _drum_pattern(rng, beats, style)
    variant = _drum_pattern(rng, beats, style)
    sixteenth = song.beat // 4
    loud = rng.uniform(0.75, 1.0)
    for bar in range(song.bars):
        start = bar * bar_ticks
        if bar % 8 == 0:
            track.note(start, song.beat, CRASH, int(100 * loud))
        last_of_phrase = bar % 4 == 3
        bar_pattern = variant if bar % 2 else pattern
        for key, hits in bar_pattern.items():
            for step, scale_v in hits:
                if last_of_phrase and step >= (beats - 1) * 4:
                    continue
                tick = start + step * sixteenth + (song.swing if step % 4 == 2 else 0)
                track.note(song.human(tick, 5), sixteenth, key, int(110 * loud * scale_v) + rng.integers(-6, 7))
        if last_of_phrase:
            _fill(track, rng, start, beats, sixteenth, loud)
    return track
