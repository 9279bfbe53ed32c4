"""A music21 score as a ``pretty_midi.PrettyMIDI``: one instrument per part, at a fixed tempo.

music21's own MIDI export first expands repeats by deep-copying the whole score, which
costs ~0.7 s per chorale and dominated the corpus build; an excerpt needs no repeats. So
the notes are read straight from each flattened part, tied notes merged into one, and
placed at ``offset * 60 / qpm`` seconds. A score that cannot be read this way (no parts,
no notes) raises :class:`ScoreError` and is skipped and counted by the caller.
"""

from __future__ import annotations

__all__ = ["ScoreError", "score_to_midi", "VELOCITY"]

VELOCITY = 80  # one velocity for all: these encodings rarely carry dynamics


class ScoreError(ValueError):
    """A score with nothing to play."""


def _pitches(element):
    """(midi pitch, tie type or '') of a note or of each note of a chord."""
    notes = element.notes if element.isChord else [element]
    for note in notes:
        tie = note.tie or (element.tie if element.isChord else None)
        yield int(note.pitch.midi), (tie.type if tie is not None else "")


def _part_notes(part, seconds_per_quarter: float) -> list[tuple[int, float, float]]:
    """(pitch, start s, end s) of a part, tied notes merged."""
    notes, open_ties = [], {}
    for element in part.flatten().notes:
        length = float(element.duration.quarterLength)
        if length <= 0:  # grace notes have no time of their own
            continue
        start = float(element.offset) * seconds_per_quarter
        end = start + length * seconds_per_quarter
        for pitch, tie in _pitches(element):
            if tie in ("continue", "stop") and pitch in open_ties:
                index = open_ties[pitch]
                notes[index] = (pitch, notes[index][1], end)
                if tie == "stop":
                    del open_ties[pitch]
                continue
            if tie in ("start", "continue"):
                open_ties[pitch] = len(notes)
            notes.append((pitch, start, end))
    return notes


def score_to_midi(score, qpm: float):
    """A PrettyMIDI with one (piano, to be re-assigned) instrument per non-empty part."""
    import pretty_midi
    parts = list(getattr(score, "parts", [])) or [score]
    midi = pretty_midi.PrettyMIDI(initial_tempo=qpm)
    for part in parts:
        instrument = pretty_midi.Instrument(program=0)
        instrument.notes = [pretty_midi.Note(VELOCITY, p, s, e) for p, s, e in _part_notes(part, 60.0 / qpm)
                            if 0 <= p <= 127]
        if instrument.notes:
            midi.instruments.append(instrument)
    if not midi.instruments:
        raise ScoreError("score has no notes")
    return midi
