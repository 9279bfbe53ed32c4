"""The cache folder: info, clear (only what noisemix wrote), and a size limit that drops the
least recently used decoded audio."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from noisemix.audio import DecodedCache
from noisemix.cache import prune_decoded

NAME = "{:064x}-22050-abc123.npy"


def _cli(*args, env):
    return subprocess.run([sys.executable, "-m", "noisemix", *args], capture_output=True, text=True,
                          env={**os.environ, **env})


def _entry(decoded, index: int, size: int, mtime: float):
    name = NAME.format(index)
    path = decoded / name[:2] / name
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.zeros(size // 4, dtype=np.float32))
    os.utime(path, (mtime, mtime))
    return path


def test_info_and_clear_touch_only_what_noisemix_wrote(tmp_path):
    env = {"NOISEMIX_CACHE": str(tmp_path)}
    ours = [_entry(tmp_path / "decoded", i, 4096, 1000 + i) for i in range(3)]
    foreign = [tmp_path / "decoded" / "notes.txt", tmp_path / "other-tool" / "data.bin"]
    for path in foreign:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("not ours")
    (tmp_path / "scan").mkdir()
    (tmp_path / "scan" / "0123.parquet").write_bytes(b"x" * 10)
    info = _cli("cache", "info", env=env).stdout
    assert str(tmp_path) in info and any(line.split()[:2] == ["decoded", "4"] for line in info.splitlines())
    result = _cli("cache", "clear", "--part", "decoded", env=env)
    assert result.returncode == 0 and "removed 3 files" in result.stdout
    assert not any(path.exists() for path in ours) and all(path.exists() for path in foreign)
    assert (tmp_path / "scan" / "0123.parquet").exists()  # only the part asked for
    assert "removed 1 files" in _cli("cache", "clear", env=env).stdout and foreign[1].exists()
    bad = _cli("cache", "clear", "--part", "everything", env=env)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "choose from decoded" in bad.stderr


def test_prune_drops_the_least_recently_used_entries_first(tmp_path):
    paths = [_entry(tmp_path, i, 40_000, 1000 + i) for i in range(5)]  # oldest first
    assert prune_decoded(tmp_path, limit=10**6)[:2] == (0, 0)  # under the limit: nothing goes
    os.utime(paths[0], (5000, 5000))  # used again: now the most recent
    files, _, left = prune_decoded(tmp_path, limit=3 * 40_200, keep=0.9)
    assert files == 3 and [p.exists() for p in paths] == [True, False, False, False, True]
    assert left == sum(p.stat().st_size for p in paths if p.exists())


def test_a_limit_in_the_environment_keeps_the_decoded_cache_small(tmp_path, monkeypatch):
    rate = 22050
    for i in range(4):
        sf.write(tmp_path / f"{i}.wav", np.full(rate, 0.1 * (i + 1), dtype=np.float32), rate)
    size = rate * 4 + 128  # one decoded second of float32, with its .npy header
    monkeypatch.setenv("NOISEMIX_CACHE_MAX_GB", str(2.5 * size / 2**30))
    cache = DecodedCache(rate, tmp_path / "decoded", memory_mb=0)
    kept = []
    for i in range(6):
        cache.get(tmp_path / f"{i % 4}.wav", sha256=f"{i % 4:064x}")  # entries 0 and 1 are used again
        kept.append(sorted(p.name[:64].lstrip("0") or "0" for p in (tmp_path / "decoded").rglob("*.npy")))
        assert sum(p.stat().st_size for p in (tmp_path / "decoded").rglob("*.npy")) <= 2.5 * size
    assert kept[:3] == [["0"], ["0", "1"], ["1", "2"]]  # the third entry pushed out the oldest
    monkeypatch.setenv("NOISEMIX_CACHE_MAX_GB", "lots")
    with pytest.raises(Exception, match="NOISEMIX_CACHE_MAX_GB='lots': expected a size in GB"):
        DecodedCache(rate, tmp_path / "decoded")


def test_prune_on_the_command_line_keeps_the_most_recent_entries(tmp_path):
    paths = [_entry(tmp_path / "decoded", i, 400_000, 1000 + i) for i in range(4)]  # oldest first
    size = paths[0].stat().st_size
    result = _cli("cache", "prune", "--max-gb", str(2.5 * size / 2**30), env={"NOISEMIX_CACHE": str(tmp_path)})
    assert result.returncode == 0 and "removed 2 least recently used files" in result.stdout
    assert [p.exists() for p in paths] == [False, False, True, True]


def test_a_scan_cache_written_under_other_field_names_is_scanned_again(synthetic_corpus, tmp_path, monkeypatch):
    """A scan cache from before schema version 3 (``num_frames``) is not read as if current."""
    import pyarrow.parquet as pq

    from noisemix import schema as S
    from noisemix.sources import CorpusInput, scan

    monkeypatch.setenv("NOISEMIX_CACHE", str(tmp_path / "cache"))
    inputs = [CorpusInput("noise", synthetic_corpus, "noise", subdir="noise")]
    fresh = scan(inputs, progress=False).sources
    (cache_file,) = (tmp_path / "cache" / "scan").glob("*.parquet")
    table = pq.read_table(cache_file)
    pq.write_table(table.rename_columns(["num_frames" if n == S.SOURCE_FRAMES else n for n in table.column_names]),
                   cache_file)
    again = scan(inputs, progress=False).sources
    assert again[S.SOURCE_FRAMES].tolist() == fresh[S.SOURCE_FRAMES].tolist()
    assert S.SOURCE_FRAMES in pq.read_table(cache_file).column_names  # rewritten under the current names
