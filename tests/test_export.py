"""Exports: a Lhotse CutSet loaded by Lhotse itself reproduces our renders; CSV rebuilds our exact mixtures; cards."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from noisemix import Mixer, load_manifest
from noisemix import schema as S
from noisemix.audio import load_mono
from noisemix.card import card_text, source_digests, write_card
from noisemix.export import csv_text, export_manifest
from noisemix.dsp import noise_segment
from noisemix import dsp


def test_csv_export_rebuilds_the_mixture(built_manifest, tmp_path):
    manifest = load_manifest(built_manifest)
    out = tmp_path / "m.csv"
    assert export_manifest(built_manifest, "csv", out) == (len(manifest.mixtures), {})
    table = pd.read_csv(out, keep_default_na=False)
    assert len(table) == len(manifest.mixtures) and list(table[S.MIXTURE_ID]) == list(manifest.mixtures[S.MIXTURE_ID])
    roots = manifest.roots
    mixer = Mixer(manifest)
    noisy = table[table["noise_path"] != ""]
    for row in list(noisy.itertuples(index=False))[:4]:
        row = row._asdict()
        row.update({k: int(row[k]) for k in (S.NOISE_OFFSET, S.CLEAN_OFFSET, S.SAMPLE_RATE, S.NUM_FRAMES)})
        row.update({k: float(row[k]) for k in (S.CLEAN_GAIN, S.NOISE_GAIN, S.SNR_DB)})
        rate, length = row[S.SAMPLE_RATE], row[S.NUM_FRAMES]
        assert (roots[row["clean_root"]] / row["clean_path"]).samefile(row["clean_file"])
        clean = load_mono(row["clean_file"], rate)[row[S.CLEAN_OFFSET]:row[S.CLEAN_OFFSET] + length]
        source = load_mono(row["noise_file"], rate)
        noise = noise_segment(source, row[S.NOISE_OFFSET], length, row[S.NOISE_LOOPED] == "true",
                              dsp.crossfade_length(source.size, rate, manifest.info["spec"]["crossfade_s"]))
        rebuilt = row[S.CLEAN_GAIN] * clean.astype(np.float64) + row[S.NOISE_GAIN] * noise
        reference = mixer.mix(manifest.mixtures.set_index(S.MIXTURE_ID, drop=False).loc[row[S.MIXTURE_ID]])
        assert np.max(np.abs(rebuilt - reference)) < 1e-5
        measured = 10 * np.log10(np.mean((row[S.CLEAN_GAIN] * clean.astype(np.float64)) ** 2)
                                 / np.mean((row[S.NOISE_GAIN] * noise) ** 2))
        assert abs(measured - row[S.SNR_DB]) < 0.1
    assert csv_text(manifest) == out.read_text()
    elsewhere = {name: tmp_path / "moved" / name for name in manifest.roots}  # --root NAME=PATH, as render takes it
    export_manifest(built_manifest, "csv", out, elsewhere)
    moved = pd.read_csv(out, keep_default_na=False)
    assert all(path.startswith(str(tmp_path / "moved")) for path in moved["clean_file"])


def _error_db(theirs: np.ndarray, ours: np.ndarray) -> float:
    """Energy of the difference relative to the signal's, in dB."""
    return float(10 * np.log10(np.sum((theirs - ours) ** 2) / np.sum(ours.astype(np.float64) ** 2) + 1e-30))


@pytest.fixture(scope="module")
def rendered_rates(corpus_inputs, tmp_path_factory):
    """A manifest whose noise comes at other rates and in stereo (resampled and downmixed on
    load, as real corpora are), rendered."""
    import soundfile as sf
    import soxr

    from noisemix.build import build_manifest
    from noisemix.render import render_manifest
    from noisemix.sources import CorpusInput
    from noisemix.spec import BuildSpec

    folder = tmp_path_factory.mktemp("rates")
    corpus = corpus_inputs[0].root_path
    for k, path in enumerate(sorted((corpus / "noise").rglob("*.flac"))):
        audio, rate = sf.read(path, dtype="float32")
        target, channels = [(22050, 2), (44100, 1), (16000, 1), (22050, 1)][k % 4]
        audio = soxr.resample(audio, rate, target)
        audio = np.stack([audio, 0.5 * audio[::-1]], axis=1) if channels == 2 else audio
        (folder / "noise" / path.relative_to(corpus / "noise")).parent.mkdir(parents=True, exist_ok=True)
        sf.write(folder / "noise" / path.relative_to(corpus / "noise"), audio, target, subtype="PCM_16")
    inputs = [corpus_inputs[0], CorpusInput("rates", folder, "noise", subdir="noise")]
    build_manifest(inputs, BuildSpec(seed=4, mixtures_per_segment=2), folder / "m", progress=False)
    render_manifest(folder / "m", folder / "audio", fmt="wav", progress=False)
    return folder / "m", folder / "audio"


def test_lhotse_cuts_load_in_lhotse_as_our_renders(rendered_rates, tmp_path, monkeypatch):
    lhotse = pytest.importorskip("lhotse", reason="the lhotse extra is not installed")
    import soundfile as sf

    from noisemix.export.lhotse import INEXACT

    manifest_dir, audio = rendered_rates
    count, inexact = export_manifest(manifest_dir, "lhotse", tmp_path / "cuts.jsonl.gz")
    monkeypatch.chdir(tmp_path)  # absolute paths: loads from any working directory
    cuts = lhotse.CutSet.from_jsonl(tmp_path / "cuts.jsonl.gz")
    manifest = load_manifest(manifest_dir)
    rows = manifest.mixtures.set_index(S.MIXTURE_ID, drop=False)
    renders = dict(zip(*(pd.read_parquet(audio / S.RENDERS_FILE)[c] for c in (S.MIXTURE_ID, S.OUTPUT_PATH))))
    errors = {"exact": [], "loop": []}
    assert count == len(cuts) == len(manifest.mixtures)
    for cut in cuts:
        row = rows.loc[cut.id]
        assert cut.custom["tags"] == list(row[S.TAGS]) and cut.custom["split"] == row[S.SPLIT]
        theirs = cut.load_audio(mono_downmix=True)  # as the README says, for every row
        ours, rate = sf.read(audio / renders[cut.id], dtype="float32")
        assert theirs.shape == (1, row[S.NUM_FRAMES]) and rate == cut.sampling_rate == manifest.sample_rate
        note = cut.custom.get(INEXACT, "")
        if not note or note.startswith("loop crossfades"):
            errors["loop" if note else "exact"].append(_error_db(theirs[0], ours))
    # Our render is the float mixture in 16 bits: the exact cuts differ by that rounding only.
    assert len(errors["exact"]) >= 10 and max(errors["exact"]) < -60, errors
    assert errors["loop"] and max(errors["loop"]) < -20, errors  # the 10 ms joints alone (measured: -23.5 dB)
    assert any(reason.startswith("resampled by Lhotse from") for reason in inexact)  # named, and counted per cut
    assert sum(inexact.values()) == sum(len(cut.custom.get(INEXACT, "").split("; ")) for cut in cuts if INEXACT in cut.custom)
    assert export_manifest(manifest_dir, "lhotse", tmp_path / "rendered.jsonl", renders=audio) == (count, {})
    for cut in lhotse.CutSet.from_jsonl(tmp_path / "rendered.jsonl"):  # over the files: exact by construction
        ours, _ = sf.read(audio / renders[cut.id], dtype="float32")
        assert np.array_equal(cut.load_audio(mono_downmix=True)[0], ours) and cut.custom["split"] == rows.loc[cut.id, S.SPLIT]


def test_export_and_card_cli(built_manifest, tmp_path):
    def run(*args, code=0):
        result = subprocess.run([sys.executable, "-c", "import noisemix.cli as c; c.main()", *map(str, args)],
                                capture_output=True, text=True)
        assert result.returncode == code, result.stderr
        return result

    run("export", built_manifest, "--format", "csv", "--out", tmp_path / "m.csv")
    assert len((tmp_path / "m.csv").read_text().splitlines()) == len(load_manifest(built_manifest).mixtures) + 1
    assert "--format 'parquet': choose one of lhotse, audiofolder, csv" in run("export", built_manifest, "--format", "parquet",
                                                             "--out", tmp_path / "x", code=2).stderr
    copy = tmp_path / "m"
    copy.mkdir()
    for name in (S.SOURCES_FILE, S.MIXTURES_FILE, S.INFO_FILE):
        (copy / name).write_bytes((built_manifest / name).read_bytes())
    run("card", copy)
    text = (copy / "README.md").read_text()
    manifest = load_manifest(copy)
    assert text == card_text(manifest)
    info = manifest.info
    assert info["fingerprints"]["mixtures"] in text and info["fingerprints"]["sources"] in text
    for digest in source_digests(manifest.sources).values():
        assert digest in text
    total = sum(int(line.split("|")[4].replace(",", "")) for line in text.splitlines()
                if line.startswith("| train") or line.startswith("| valid") or line.startswith("| test"))
    assert total == len(manifest.mixtures)
    assert write_card(copy).read_text() == text


def test_lhotse_export_cli_names_inexact_cuts_and_refuses_stale_renders(rendered_rates, tmp_path):
    pytest.importorskip("lhotse", reason="the lhotse extra is not installed")
    manifest_dir, audio = rendered_rates
    result = subprocess.run([sys.executable, "-m", "noisemix", "export", str(manifest_dir), "--format", "lhotse",
                             "--out", str(tmp_path / "cuts.jsonl")], capture_output=True, text=True)
    assert result.returncode == 0 and "not exactly our render: resampled by Lhotse" in result.stdout, result.stderr
    stale = tmp_path / "audio"
    stale.mkdir()
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(audio / S.RENDERS_FILE)
    table = table.set_column(table.schema.get_field_index(S.RENDER_KEY), S.RENDER_KEY,
                             pa.array(["another-build"] * len(table)))  # as after a rebuild with another seed
    pq.write_table(table, stale / S.RENDERS_FILE)
    result = subprocess.run([sys.executable, "-m", "noisemix", "export", str(manifest_dir), "--format", "lhotse",
                             "--renders", str(stale), "--out", str(tmp_path / "r.jsonl")], capture_output=True, text=True)
    assert result.returncode != 0 and "made from another version" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "r.jsonl").exists()


def test_audiofolder_metadata_load_in_hugging_face_datasets(rendered_rates, tmp_path):
    datasets = pytest.importorskip("datasets", reason="the datasets extra is not installed")
    import soundfile as sf

    manifest_dir, audio = rendered_rates
    manifest = load_manifest(manifest_dir)
    assert export_manifest(manifest_dir, "audiofolder", None, renders=audio) == (len(manifest.mixtures), {})
    loaded = datasets.load_dataset("audiofolder", data_dir=str(audio), cache_dir=str(tmp_path / "hf"))
    names = {"train": "train", "valid": "validation", "test": "test"}
    counts = manifest.mixtures[S.SPLIT].value_counts()
    assert {names[split]: int(n) for split, n in counts.items()} == {k: len(v) for k, v in loaded.items()}
    rows = manifest.mixtures.set_index(S.MIXTURE_ID)
    for example in loaded["validation"]:
        row = rows.loc[example["mixture_id"]]
        assert example["tags"] == list(row[S.TAGS]) and example["split"] == "valid"
        noisy = row[S.NOISE_SOURCE_ID] != ""
        assert (example["snr_db"] == pytest.approx(row[S.SNR_DB])) if noisy else example["snr_db"] is None
        ours, rate = sf.read(audio / "valid" / f"{example['mixture_id']}.wav", dtype="float64")
        assert example["audio"]["sampling_rate"] == rate and np.allclose(example["audio"]["array"], ours, atol=1e-7)
    with pytest.raises(Exception, match="give the rendered folder with --renders"):
        export_manifest(manifest_dir, "audiofolder", tmp_path / "x")
