"""Atomic outputs and the scan cache."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from noisemix import schema as S
from noisemix import sources
from noisemix.io import write_bytes, write_parquet
from noisemix.sources import CorpusInput, scan


def test_interrupted_parquet_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "table.parquet"
    write_parquet(pa.table({"a": [1]}), target)

    def killed(table, where, **kwargs):
        open(where, "wb").write(b"PAR1 half")
        raise KeyboardInterrupt

    monkeypatch.setattr(pq, "write_table", killed)
    with pytest.raises(KeyboardInterrupt):
        write_parquet(pa.table({"a": [2]}), target)
    monkeypatch.undo()
    assert pq.read_table(target).column("a").to_pylist() == [1]
    assert [p.name for p in tmp_path.iterdir()] == ["table.parquet"]


def test_interrupted_byte_write_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    import os

    target = tmp_path / "clip.wav"
    write_bytes(b"old", target)

    def killed(source, destination):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        write_bytes(b"new", target)
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["clip.wav"]


def test_second_scan_of_an_unchanged_folder_reads_no_audio(synthetic_corpus, monkeypatch):
    inputs = [CorpusInput("syn", synthetic_corpus, "noise", subdir="noise")]
    first = scan(inputs, progress=False)

    def forbidden(path):
        raise AssertionError(f"{path} was decoded again")

    monkeypatch.setattr(sources, "examine_file", forbidden)
    second = scan(inputs, progress=False)
    assert first.sources.equals(second.sources)


def test_a_changed_file_is_scanned_again(synthetic_corpus, tmp_path, monkeypatch):
    import shutil

    import numpy as np
    import soundfile as sf

    copy = tmp_path / "noise"
    shutil.copytree(synthetic_corpus / "noise", copy)
    inputs = [CorpusInput("n", copy, "noise")]
    scan(inputs, progress=False)
    changed = sorted(copy.rglob("*.flac"))[0]
    sf.write(changed, np.random.default_rng(1).uniform(-0.3, 0.3, 22050), 22050, subtype="PCM_16")
    seen = []
    real = sources.examine_file
    monkeypatch.setattr(sources, "examine_file", lambda path: seen.append(path) or real(path))
    scan(inputs, progress=False)
    assert seen == [str(changed)]


def test_outputs_get_ordinary_permissions(tmp_path):
    import os

    write_parquet(pa.table({"a": [1]}), tmp_path / "t.parquet")
    write_bytes(b"audio", tmp_path / "t.wav")
    mask = os.umask(0)
    os.umask(mask)
    for name in ("t.parquet", "t.wav"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~mask


@pytest.mark.parametrize("fmt, subtype, suffix", [("OGG", "VORBIS", ".ogg"), ("MP3", "MPEG_LAYER_III", ".mp3"),
                                                  ("FLAC", "PCM_24", ".flac"), ("WAV", "FLOAT", ".wav")])
def test_every_soundfile_format_scans(tmp_path, fmt, subtype, suffix):
    import numpy as np
    import soundfile as sf

    folder = tmp_path / "noise"
    folder.mkdir()
    rate = 44100
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)
    sf.write(folder / f"tone{suffix}", np.stack([tone, tone], axis=1), rate, format=fmt, subtype=subtype)
    result = scan([CorpusInput("n", folder, "noise", category="music")], progress=False, use_cache=False)
    row = result.sources.iloc[0]
    assert row[S.CHANNELS] == 2 and row[S.SOURCE_SAMPLE_RATE] == rate
    assert abs(row[S.DURATION_S] - 1.0) < 0.06


def test_a_first_build_decodes_each_file_once_and_keeps_no_decoded_copies(synthetic_corpus, tmp_path, monkeypatch):
    import shutil

    from noisemix import audio, energy
    from noisemix.build import build_manifest
    from noisemix.spec import BuildSpec

    corpus = tmp_path / "corpus"
    shutil.copytree(synthetic_corpus, corpus)
    monkeypatch.setenv("NOISEMIX_CACHE", str(tmp_path / "cache"))
    decoded = []
    real = audio.decode
    monkeypatch.setattr(audio, "decode", lambda path: decoded.append(str(path)) or real(path))
    monkeypatch.setattr(sources, "decode", audio.decode)
    # The index step must find every index made while scanning.
    monkeypatch.setattr(energy, "load_mono", lambda path, rate: pytest.fail(f"{path} decoded again"))
    inputs = [CorpusInput("c", corpus, "clean", subdir="clean"), CorpusInput("c", corpus, "noise", subdir="noise")]
    build_manifest(inputs, BuildSpec(seed=1, segment_frames=22050), tmp_path / "m", progress=False)
    assert decoded and len(decoded) == len(set(decoded)) == len(list(corpus.rglob("*.flac")))
    assert not (tmp_path / "cache" / "decoded").exists()


@pytest.mark.parametrize("fmt, subtype", [("WAV", "PCM_16"), ("FLAC", "PCM_16"), ("WAV", "PCM_24"), ("FLAC", "PCM_24"),
                                          ("WAV", "PCM_U8"), ("FLAC", "PCM_S8"), ("WAV", "PCM_32"), ("AIFF", "PCM_16"),
                                          ("WAV", "FLOAT")])
def test_integer_pcm_decodes_to_the_very_floats_libsndfile_gives(tmp_path, fmt, subtype):
    import numpy as np
    import soundfile as sf

    from noisemix.audio import decode

    samples = np.random.default_rng(0).uniform(-1, 1, size=(5000, 2))
    samples[:2] = [[-1.0, 1.0], [1.0, -1.0]]
    path = tmp_path / f"x.{fmt.lower()}"
    sf.write(path, samples, 22050, format=fmt, subtype=subtype)
    expected, _ = sf.read(path, dtype="float32", always_2d=True)
    data, rate = decode(path)
    assert rate == 22050 and data.dtype == np.float32
    np.testing.assert_array_equal(data, expected)


def test_paths_resolve_inside_every_form_of_root(tmp_path, monkeypatch):
    import os
    from pathlib import Path

    from noisemix.roots import resolve
    from noisemix.errors import ManifestError, NoisemixError

    monkeypatch.chdir(tmp_path)
    for root in (".", "./", "data", "data/", str(tmp_path), f"{tmp_path}/", "/"):
        expected = Path(os.path.normpath(os.path.join(root, "a/b.wav")))
        assert resolve({"r": Path(root)}, "r", "a/b.wav") == expected, root
        for climbing in ("../x.wav", "a/../../x.wav", "/etc/passwd"):
            with pytest.raises((NoisemixError, ManifestError)):
                resolve({"r": Path(root)}, "r", climbing)


def test_decoded_cache_keeps_few_files_open(tmp_path, monkeypatch):
    import os

    import numpy as np
    import soundfile as sf

    from noisemix import audio

    monkeypatch.setattr(audio, "MAX_CACHED_ARRAYS", 3)
    files = []
    for n in range(12):
        files.append(tmp_path / f"{n}.wav")
        sf.write(files[-1], np.full(100, n / 100), 8000, subtype="PCM_16")
    for path in files:  # the first pass fills the disk cache
        audio.DecodedCache(8000, tmp_path / "cache").get(path, f"{path.stem:0>64}")
    open_before = len(os.listdir("/proc/self/fd"))
    cache = audio.DecodedCache(8000, tmp_path / "cache")
    arrays = [cache.get(path, f"{path.stem:0>64}") for path in files]  # memory-mapped from the disk cache
    assert all(isinstance(a, np.memmap) for a in arrays)
    del arrays
    assert len(os.listdir("/proc/self/fd")) - open_before <= 3
