"""General MIDI: instrument families, audible-instrument tags, and FluidSynth rendering.

Rendering uses the FluidSynth command line in fast-render mode (no audio device) with
reverb and chorus off and a single synthesis thread, writing raw float32 (a WAV header
from libsndfile carries a timestamp in its PEAK chunk, so raw output is what makes two
renders byte-comparable). The audio itself is a pure function of MIDI file, SoundFont
and FluidSynth version.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

__all__ = [
    "SAMPLE_RATE", "SOUNDFONT", "gm_family", "audible_families", "render_midi", "fluidsynth_version",
]

SAMPLE_RATE = 22050
SOUNDFONT = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")

# A note counts as heard in a window if it sounds there this long, or starts inside it
# (a drum hit is often written as a 10 ms note but rings much longer).
MIN_OVERLAP_S = 0.05

# General MIDI program groups (0-based programs) -> tag. The GM "ethnic" group is split
# by what each instrument is; the pitched "percussive" group (agogo, steel drums, taiko,
# ...) joins channel 10 as 'drums' (alone it tagged 4 clips); sound effects get no tag.
_FAMILY_RANGES = (
    (0, 7, "piano"), (8, 15, "mallet"), (16, 23, "organ"), (24, 31, "guitar"),
    (32, 39, "bass"), (40, 51, "strings"), (52, 54, "voice"), (55, 55, "synth"),
    (56, 63, "brass"), (64, 79, "woodwind"), (80, 103, "synth"),
    (104, 107, "guitar"), (108, 108, "mallet"), (109, 109, "woodwind"),
    (110, 110, "strings"), (111, 111, "woodwind"), (112, 119, "drums"),
)


def gm_family(program: int, is_drum: bool = False) -> str | None:
    """The tag of a GM program; channel 10 is always 'drums'; sound effects -> None."""
    if is_drum:
        return "drums"
    for low, high, family in _FAMILY_RANGES:
        if low <= program <= high:
            return family
    return None


def _sounds_in(note, start: float, end: float) -> bool:
    if note.velocity <= 0:
        return False
    if start <= note.start < end:
        return True
    return min(note.end, end) - max(note.start, start) >= MIN_OVERLAP_S


def audible_families(midi, start: float, end: float) -> set[str]:
    """Families of the instruments of a ``pretty_midi.PrettyMIDI`` heard in [start, end) s."""
    found = set()
    for instrument in midi.instruments:
        family = gm_family(int(instrument.program), bool(instrument.is_drum))
        if family and any(_sounds_in(n, start, end) for n in instrument.notes):
            found.add(family)
    return found


def fluidsynth_version() -> str:
    exe = shutil.which("fluidsynth")
    if exe is None:
        return ""
    done = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
    first = (done.stdout or "").splitlines()[:1]
    return first[0].strip() if first else ""


def render_midi(midi_file: Path, soundfont: Path = SOUNDFONT, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 audio of a MIDI file (stereo render averaged); raises RuntimeError."""
    with tempfile.TemporaryDirectory(prefix="noisemix-fs-") as tmp:
        raw = Path(tmp) / "out.raw"
        command = [
            "fluidsynth", "-f", "/dev/null",  # never read a user's ~/.fluidsynth
            "-n", "-i", "-q", "-R", "0", "-C", "0", "-r", str(sample_rate),
            "-o", "synth.cpu-cores=1", "-o", "synth.sample-rate=%d" % sample_rate,
            "-T", "raw", "-O", "float", "-E", "little", "-F", str(raw),
            str(soundfont), str(midi_file),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not raw.is_file():
            raise RuntimeError(f"fluidsynth failed ({done.returncode}): {(done.stderr or '').strip()[:200]}")
        stereo = np.fromfile(raw, dtype="<f4")
    return stereo.reshape(-1, 2).mean(axis=1, dtype=np.float64).astype(np.float32)
