"""Decode noise recordings to mono 16-bit FLAC at their own sample rate.

Noise keeps its level (no normalisation): the mixer sets the SNR. A file that cannot be
read or decoded is skipped and reported with its package and path; a recording shorter
than :data:`MIN_SECONDS` or digitally silent is left out and counted as excluded.
"""

from __future__ import annotations

import re
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np

from .attribution import Attribution, license_for
from .audio_out import to_pcm16, write_flac
from .noise_sources import ANIMALS_LICENSE, NoiseItem
from .packages import WHEEL_PACKAGE, WHEEL_VERSION, debian_version

__all__ = ["MIN_SECONDS", "decode_item", "write_noise"]

MIN_SECONDS = 0.5
G722_RATE = 16000     # Asterisk's .g722 prompts are wideband G.722 at 64 kbit/s
G722_BITRATE = 64000


def _decode_file(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf
    audio, rate = sf.read(str(path), dtype="float64", always_2d=True)
    return audio.mean(axis=1), int(rate)


def decode_item(item: NoiseItem) -> tuple[np.ndarray, int]:
    """(mono float64 in [-1, 1], sample rate); raises on an unreadable or undecodable file."""
    if item.codec == "g722":
        import G722
        data = Path(item.path).read_bytes()
        if not data:
            raise ValueError("empty file")
        pcm = np.asarray(G722.G722(G722_RATE, G722_BITRATE, use_numpy=False).decode(data), dtype=np.int16)
        return pcm.astype(np.float64) / 32768.0, G722_RATE
    if not item.member:
        return _decode_file(Path(item.path))
    # An archive member goes through a file with its own suffix: libsndfile tells MP3
    # from other data partly by the file name, which an in-memory buffer does not have.
    with zipfile.ZipFile(item.path) as z, tempfile.TemporaryDirectory(prefix="noisemix-member-") as tmp:
        extracted = Path(tmp) / ("member" + PurePosixPath(item.member).suffix)
        extracted.write_bytes(z.read(item.member))
        return _decode_file(extracted)


def _attribution(item: NoiseItem) -> Attribution:
    if item.package == WHEEL_PACKAGE:
        return Attribution(WHEEL_PACKAGE, WHEEL_VERSION, item.original_path, ANIMALS_LICENSE)
    # DEP-5 patterns name archive members as if unpacked next to the archive.
    licence_path = item.license_path or (str(Path(item.path).parent / item.member) if item.member else item.path)
    return Attribution(item.package, debian_version(item.package), item.original_path,
                       license_for(item.package, licence_path))


def _problem(exc: Exception) -> str:
    """One line about a decoder error, without object addresses (corpus.json is compared byte for byte)."""
    text = re.sub(r"<[^<>]* at 0x[0-9a-f]+>", "<data>", str(exc)).splitlines()
    return f"{type(exc).__name__}: {text[0][:160] if text else ''}"


def write_noise(items: list[NoiseItem], noise_root: Path) -> dict:
    """Write each item under ``noise_root``; returns rows, attributions, skipped and excluded."""
    rows, attributions, skipped, excluded = [], {}, [], []
    for item in items:
        try:
            audio, rate = decode_item(item)
        except Exception as exc:  # noqa: BLE001 - any decoder failure means: skip and report
            skipped.append({"item": f"{item.package}:{item.original_path}",
                            "reason": f"cannot decode ({_problem(exc)})"})
            continue
        pcm = to_pcm16(audio)
        if len(pcm) < MIN_SECONDS * rate or not np.any(pcm):
            excluded.append({"item": f"{item.package}:{item.original_path}",
                             "reason": "silent" if len(pcm) and not np.any(pcm) else f"shorter than {MIN_SECONDS} s"})
            continue
        write_flac(pcm, rate, noise_root / item.relative)
        rows.append({"path": item.relative, "category": item.category, "group": item.group,
                     "subcategory": item.subcategory, "seconds": len(pcm) / rate})
        attributions[f"noise/{item.relative}"] = _attribution(item)
    return {"rows": rows, "attributions": attributions, "skipped": skipped, "excluded": excluded}
