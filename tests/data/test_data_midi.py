"""The MIDI composer: deterministic, valid, varied (arrangements, instruments, drums on channel 10)."""

import io

import mido
import numpy as np

from streamify.data.midi import ARRANGEMENTS, DRUM_CHANNEL, compose


def _bytes(midi: mido.MidiFile) -> bytes:
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


def test_same_seed_same_piece_other_seed_other_piece() -> None:
    a = compose(np.random.default_rng([3, 1]))
    b = compose(np.random.default_rng([3, 1]))
    c = compose(np.random.default_rng([3, 2]))
    assert _bytes(a.midi) == _bytes(b.midi) and a.meta == b.meta
    assert _bytes(a.midi) != _bytes(c.midi)


def test_pieces_are_valid_and_match_their_description() -> None:
    programs: dict[str, set[int]] = {"chords": set(), "melody": set(), "bass": set()}
    arrangements = set()
    for seed in range(60):
        piece = compose(np.random.default_rng(seed), 20.0, 40.0)
        parts = ARRANGEMENTS[piece.meta["arrangement"]][0]
        arrangements.add(piece.meta["arrangement"])
        assert 10.0 < piece.seconds < 60.0
        assert abs(piece.midi.length - piece.seconds) < 2.0  # plus the release tail
        channels: dict[int, int] = {}
        open_notes: dict[tuple[int, int], int] = {}
        for message in mido.merge_tracks(piece.midi.tracks):
            if message.type == "note_on" and message.velocity > 0:
                channels[message.channel] = channels.get(message.channel, 0) + 1
                open_notes[(message.channel, message.note)] = open_notes.get((message.channel, message.note), 0) + 1
            elif message.type == "note_off":
                open_notes[(message.channel, message.note)] -= 1
            elif message.type == "program_change":
                role = {0: "chords", 1: "bass", 2: "melody"}[message.channel]
                programs[role].add(message.program)
        assert all(count == 0 for count in open_notes.values()), "every note is released"
        assert (DRUM_CHANNEL in channels) == ("drums" in parts)
        assert (2 in channels) == ("melody" in parts) and (0 in channels) == ("chords" in parts)
        assert (1 in channels) == ("bass" in parts)
        assert min(channels.values()) >= 8, "each part plays notes"
    assert arrangements == set(ARRANGEMENTS)
    assert len(programs["melody"]) >= 10 and len(programs["chords"]) >= 8 and len(programs["bass"]) >= 4
