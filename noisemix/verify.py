"""Checking that a manifest is as built (its tables match the fingerprints in manifest.json)
and that its sources (and renders) are the very files it was built from."""

from __future__ import annotations

from pathlib import Path

from . import schema as S
from .audio import probe, sha256_file
from .errors import AudioError, NoisemixError
from .render import load_renders
from .roots import resolve
from .sources import examine_file

__all__ = ["verify_manifest", "HARMLESS"]

DURATION_TOLERANCE_S = 0.01
# Lines with this marker are notes: the check passed despite a difference.
HARMLESS = "harmless"


def verify_manifest(directory: Path, roots=None, renders: Path | None = None, progress: bool = True) -> list[str]:
    """Every difference found, one line each (empty when the data matches).

    Lines containing :data:`HARMLESS` are differences that do not change the audio.
    """
    from tqdm import tqdm

    from .manifest import fingerprint_differences, load_manifest

    try:
        manifest = load_manifest(directory, roots)
        problems = fingerprint_differences(directory)
    except (S.ManifestError, NoisemixError) as exc:
        return [str(exc)]
    rows = list(manifest.sources.itertuples(index=False))
    for row in tqdm(rows, desc="verify sources", unit="file", disable=not progress, leave=False):
        problem = _check_source(manifest.roots, row._asdict())
        if problem:
            problems.append(problem)
    if renders is not None:
        problems += _check_renders(manifest, Path(renders), progress)
    return problems


def _check_source(roots, row: dict) -> str | None:
    where = f"{row[S.ROOT]}:{row[S.PATH]}"
    try:
        path = resolve(roots, row[S.ROOT], row[S.PATH], where=where)
    except (AudioError, S.ManifestError) as exc:
        return f"{where}: {exc.problem if isinstance(exc, AudioError) else exc}"
    if not path.is_file():
        return f"{path}: missing (source {row[S.SOURCE_ID]})"
    if sha256_file(path) == row[S.SHA256]:
        try:
            info = probe(path)
        except AudioError as exc:
            return str(exc)
        if abs(info.duration_s - row[S.DURATION_S]) > DURATION_TOLERANCE_S:
            return f"{path}: duration {info.duration_s:.3f} s, manifest says {row[S.DURATION_S]:.3f} s"
        return None
    examined = examine_file(str(path))
    if isinstance(examined, str):
        return f"{path}: sha256 differs and the file is unusable ({examined})"
    if examined[S.AUDIO_FINGERPRINT] == row[S.AUDIO_FINGERPRINT]:
        return f"{path}: bytes differ (sha256) but the decoded audio is identical: {HARMLESS} re-encoding"
    return f"{path}: sha256 and decoded audio differ from the manifest: this is not the same recording"


def _check_renders(manifest, renders: Path, progress: bool) -> list[str]:
    from tqdm import tqdm

    try:
        table = load_renders(renders)
    except S.ManifestError as exc:
        return [str(exc)]
    problems = []
    missing = set(manifest.mixtures[S.MIXTURE_ID]) - set(table[S.MIXTURE_ID])
    if missing:
        problems.append(f"{renders}: {len(missing)} mixture(s) not rendered, e.g. {sorted(missing)[0]}")
    problems += _stale_renders(manifest, renders, table)
    problems += _stem_snrs(manifest, renders, table)
    for name, digest in tqdm(list(zip(table[S.OUTPUT_PATH], table[S.SHA256])), desc="verify renders",
                             unit="file", disable=not progress, leave=False):
        path = renders / name
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif sha256_file(path) != digest:
            problems.append(f"{path}: sha256 differs from the renders table")
    return problems


def _stale_renders(manifest, renders: Path, table) -> list[str]:
    """One line per render of a mixture the manifest no longer has (orphan) and per render
    made from another version of its row (stale: its key is not the current row's)."""
    from .render import render_status

    status = render_status(manifest, table)
    why = {"orphan": "orphan (mixture {} is not in the manifest)",
           "stale": "stale (rendered from another version of mixture {}; render again)"}
    return [f"{renders / path}: {why[state].format(mid)}"
            for mid, path, state in zip(table[S.MIXTURE_ID], table[S.OUTPUT_PATH], status) if state != "current"]


SNR_TOLERANCE_DB = 0.1


def _stem_snrs(manifest, renders: Path, table) -> list[str]:
    """Where a noisy row's clean and noise stems were rendered, the SNR measured from the
    16-bit stems must be the row's within :data:`SNR_TOLERANCE_DB` (an energy-ratio SNR, rows
    without transforms: those are what the stems then describe exactly)."""
    import soundfile as sf

    from . import dsp
    from .mix import is_elementwise

    if manifest.spec.get("snr_definition", "rms") != "rms":
        return []
    stems = table.pivot_table(index=S.MIXTURE_ID, columns=S.STEM, values=S.OUTPUT_PATH, aggfunc="last")
    if not {"clean", "noise"} <= set(stems.columns):
        return []
    rows = manifest.mixtures.set_index(S.MIXTURE_ID)
    lines = []
    for mid, clean, noise in zip(stems.index, stems["clean"], stems["noise"]):
        if not isinstance(clean, str) or not isinstance(noise, str) or mid not in rows.index:
            continue
        row = rows.loc[mid]
        if not is_elementwise(row):
            continue
        try:
            measured = dsp.snr_db(sf.read(renders / clean, dtype="float64")[0], sf.read(renders / noise, dtype="float64")[0])
        except (sf.LibsndfileError, RuntimeError, OSError):
            continue  # a missing or unreadable stem is reported by the sha256 check
        if abs(measured - row[S.SNR_DB]) > SNR_TOLERANCE_DB:
            lines.append(f"{renders / clean}: the stems measure {measured:.2f} dB, mixture {mid} says "
                         f"{row[S.SNR_DB]:.2f} dB")
    return lines
