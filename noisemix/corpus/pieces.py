"""Clean music: which pieces, how each is arranged, rendered, cut into clips and tagged.

:func:`render_piece` is the unit of work of the process pool. It is a pure function of
the piece, the seed and the installed packages, writes only its own files and returns
plain data, so the corpus does not depend on the number of workers.
"""

from __future__ import annotations

import re
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .arrange import draw_folk_programs, draw_programs, draw_tempo, draw_windows, rng_for
from .attribution import Attribution, license_for
from .audio_out import to_pcm16, write_flac
from .midi_render import SAMPLE_RATE, SOUNDFONT, audible_families, render_midi
from .packages import debian_version, package_files, pip_version

__all__ = ["Piece", "PieceResult", "list_pieces", "render_piece", "PEAK"]

PEAK = 10 ** (-1 / 20)  # clips are peak-normalised to -1 dBFS
OPENMSX_PACKAGE = "openttd-openmsx"
SOUNDFONT_PACKAGE = "timgm6mb-soundfont"
MUSIC21_LICENSE = (
    "public-domain composition; encoding distributed with music21 under its corpus terms "
    "(music21/corpus/license.txt, some encodings restrict commercial use)"
)

# music21 repertories: (collection folder, corpus directory, file suffixes, how many,
# style tags, arrangement, tempo range in quarter notes per minute). Sized so that no
# composer dominates (clips: Bach 250, Monteverdi 147, Palestrina 150, folk 250, and 93
# game-music excerpts) and the demo benchmark's test split holds 150+ clips.
MUSIC21_SETS = (
    ("bach-chorales", "bach", (".mxl",), 250, ("chorale", "baroque"), "ensemble", (60, 92)),
    ("monteverdi", "monteverdi", (".mxl",), 49, ("madrigal", "renaissance"), "ensemble", (88, 120)),
    ("palestrina", "palestrina", (".krn",), 75, ("mass", "renaissance"), "ensemble", (100, 140)),
    ("folk", "ryansMammoth", (".abc",), 250, ("folk",), "folk", (110, 160)),
)
# Renaissance pieces last minutes: several excerpts each (one group, so never split apart).
WINDOWS = {"monteverdi": 3, "palestrina": 2}
OPENMSX_WINDOWS = 3


@dataclass(frozen=True)
class Piece:
    collection: str
    name: str
    source: str              # MIDI file path, or music21 corpus-relative path
    kind: str                # 'midi' (render as is) or 'music21' (arrange, then render)
    styles: tuple[str, ...]
    arrangement: str = ""    # 'ensemble' | 'folk' for music21 pieces
    tempo: tuple[float, float] = (0.0, 0.0)
    windows: int = 1


@dataclass
class PieceResult:
    clips: list[dict] = field(default_factory=list)     # path, tags, group, attribution
    skipped: list[dict] = field(default_factory=list)   # item, reason


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "piece"


def _chorale_paths() -> set[str]:
    from music21 import corpus
    return {str(p) for p in corpus.chorales.Iterator(returnType="filename")}


def _music21_pieces(seed: int, limit: int | None = None) -> list[Piece]:
    """A seeded choice of pieces from each repertory (at most ``limit`` each); ranks by hash, not by disk order."""
    from music21 import common, corpus
    root = Path(common.getCorpusFilePath())
    core = sorted(Path(p).relative_to(root).as_posix() for p in corpus.getCorePaths())
    chorales = _chorale_paths()
    pieces = []
    for collection, folder, suffixes, count, styles, arrangement, tempo in MUSIC21_SETS:
        names = [
            rel for rel in core
            if rel.split("/", 1)[0] == folder and Path(rel).suffix in suffixes
            and (collection != "bach-chorales" or str(Path(rel).with_suffix("")) in chorales)
        ]
        ranked = sorted(names, key=lambda rel: (rng_for(seed, collection, rel).random(), rel))
        for rel in sorted(ranked[:count if limit is None else min(count, limit)]):
            pieces.append(Piece(collection, _safe(Path(rel).stem), rel, "music21", styles, arrangement, tempo,
                                WINDOWS.get(collection, 1)))
    return pieces


def _openmsx_pieces(limit: int | None = None) -> list[Piece]:
    files = sorted(p for p in package_files(OPENMSX_PACKAGE) if p.endswith(".mid"))
    return [Piece("openmsx", _safe(Path(p).stem), p, "midi", ("game-music",), windows=OPENMSX_WINDOWS)
            for p in files[:limit]]


def list_pieces(seed: int, broken: dict[str, str] | None = None,
                limit: int | None = None) -> tuple[list[Piece], list[dict]]:
    """All pieces to render (at most ``limit`` per repertory: a small corpus for quick checks),
    and skipped entries for a source package that is half-installed."""
    if broken and OPENMSX_PACKAGE in broken:
        skipped = [{"item": OPENMSX_PACKAGE,
                    "reason": f"package not fully installed (dpkg: {broken[OPENMSX_PACKAGE]})"}]
        return _music21_pieces(seed, limit), skipped
    return _openmsx_pieces(limit) + _music21_pieces(seed, limit), []


def _soundfont_note() -> str:
    return f"; rendered with TimGM6mb.sf2 ({license_for(SOUNDFONT_PACKAGE, str(SOUNDFONT))}, " \
           f"{SOUNDFONT_PACKAGE} {debian_version(SOUNDFONT_PACKAGE)})"


def _attribution(piece: Piece) -> Attribution:
    if piece.kind == "midi":
        licence = license_for(OPENMSX_PACKAGE, piece.source)
        return Attribution(OPENMSX_PACKAGE, debian_version(OPENMSX_PACKAGE), piece.source,
                           licence + _soundfont_note())
    return Attribution("music21", pip_version("music21"), f"music21/corpus/{piece.source}",
                       MUSIC21_LICENSE + _soundfont_note())


def _parse(piece: Piece):
    from music21 import corpus
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        score = corpus.parse(piece.source)
    return score.scores[0] if hasattr(score, "scores") else score  # an Opus: its first tune


def _arrange(piece: Piece, midi, seed: int) -> None:
    """Give each part its drawn instrument, in place (folk: maybe add an octave double)."""
    import pretty_midi
    voices = midi.instruments
    if piece.arrangement == "folk":
        lead, second = draw_folk_programs(seed, piece.name)
        for inst in voices:
            inst.program = lead
        if second is not None:
            low = pretty_midi.Instrument(program=second)
            low.notes = [pretty_midi.Note(n.velocity, max(n.pitch - 12, 0), n.start, n.end) for n in voices[0].notes]
            midi.instruments.append(low)
        return
    # Parts come top to bottom; the last is the bass line.
    for inst, program in zip(voices, draw_programs(seed, piece.name, len(voices))):
        inst.program = program


def _load_midi(piece: Piece, seed: int):
    """The piece as PrettyMIDI, and its MIDI file when it can be rendered as is."""
    import pretty_midi
    if piece.kind == "midi":
        return pretty_midi.PrettyMIDI(piece.source), Path(piece.source)
    from .score_midi import score_to_midi
    midi = score_to_midi(_parse(piece), draw_tempo(seed, piece.name, *piece.tempo))
    _arrange(piece, midi, seed)
    return midi, None


def _write_until(midi, end: float, target: Path) -> Path:
    """Write the notes that start before ``end`` (nothing later can sound in the excerpts)."""
    for inst in midi.instruments:
        inst.notes = [n for n in inst.notes if n.start < end]
    midi.write(str(target))
    return target


def _cut(audio: np.ndarray, start: float, end: float) -> np.ndarray:
    first, count = int(round(start * SAMPLE_RATE)), int(round((end - start) * SAMPLE_RATE))
    clip = audio[first:first + count]
    return np.pad(clip, (0, count - len(clip))) if len(clip) < count else clip


def _skip(result: PieceResult, item: str, exc: Exception) -> PieceResult:
    result.skipped.append({"item": item, "reason": f"cannot render: {type(exc).__name__}: {str(exc)[:160]}"})
    return result


def render_piece(piece: Piece, seed: int, clean_root: Path) -> PieceResult:
    """Render one piece, write its clips under ``clean_root/<collection>/``, return their rows."""
    result = PieceResult()
    item = f"{piece.collection}/{piece.name}"
    try:
        midi, midi_file = _load_midi(piece, seed)
    except Exception as exc:  # noqa: BLE001 - music21/pretty_midi raise many kinds; each is counted
        return _skip(result, item, exc)
    windows = draw_windows(seed, piece.name, midi.get_end_time(), piece.windows)
    if not windows:
        result.skipped.append({"item": item, "reason": "shorter than 10 s"})
        return result
    try:
        with tempfile.TemporaryDirectory(prefix="noisemix-piece-") as tmp:
            midi_file = midi_file or _write_until(midi, windows[-1][1], Path(tmp) / "arranged.mid")
            audio = render_midi(midi_file)
    except Exception as exc:  # noqa: BLE001
        return _skip(result, item, exc)
    for k, window in enumerate(windows):
        name = piece.name if piece.windows == 1 else f"{piece.name}_{k + 1}"
        _write_clip(result, piece, name, midi, audio, window, clean_root)
    return result


def _write_clip(result: PieceResult, piece: Piece, name: str, midi, audio, window, clean_root: Path) -> None:
    start, end = window
    families = audible_families(midi, start, end)
    clip = _cut(audio, start, end)
    if not families or float(np.max(np.abs(clip))) < 1e-4:
        result.skipped.append({"item": f"{piece.collection}/{name}", "reason": "silent excerpt"})
        return
    relative = f"{piece.collection}/{name}.flac"
    write_flac(to_pcm16(clip, PEAK), SAMPLE_RATE, clean_root / relative)
    result.clips.append({"path": relative, "tags": sorted(families) + sorted(piece.styles),
                         "group": f"{piece.collection}/{piece.name}", "attribution": _attribution(piece),
                         "start_s": start, "end_s": end})
