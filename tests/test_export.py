"""Export to Lhotse-style JSONL and CSV: the exported numbers rebuild our exact mixtures; cards."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd

from noisemix import Mixer, load_manifest
from noisemix import schema as S
from noisemix.audio import load_mono
from noisemix.card import card_text, source_digests, write_card
from noisemix.export import csv_text, export_manifest, lhotse_lines
from noisemix.mix import noise_segment
from noisemix import dsp


def test_csv_export_rebuilds_the_mixture(built_manifest, tmp_path):
    manifest = load_manifest(built_manifest)
    out = tmp_path / "m.csv"
    assert export_manifest(built_manifest, "csv", out) == len(manifest.mixtures)
    table = pd.read_csv(out, keep_default_na=False)
    assert len(table) == len(manifest.mixtures) and list(table[S.MIXTURE_ID]) == list(manifest.mixtures[S.MIXTURE_ID])
    roots = manifest.roots
    mixer = Mixer(manifest)
    noisy = table[table["noise_path"] != ""]
    for row in list(noisy.itertuples(index=False))[:4]:
        row = row._asdict()
        row.update({k: int(row[k]) for k in (S.NOISE_OFFSET, S.CLEAN_OFFSET, S.SAMPLE_RATE, S.NUM_OUTPUT_FRAMES)})
        row.update({k: float(row[k]) for k in (S.CLEAN_GAIN, S.NOISE_GAIN, S.SNR_DB)})
        rate, length = row[S.SAMPLE_RATE], row[S.NUM_OUTPUT_FRAMES]
        clean = load_mono(roots[row["clean_root"]] / row["clean_path"], rate)[row[S.CLEAN_OFFSET]:row[S.CLEAN_OFFSET] + length]
        source = load_mono(roots[row["noise_root"]] / row["noise_path"], rate)
        noise = noise_segment(source, row[S.NOISE_OFFSET], length, row[S.NOISE_LOOPED] == "true",
                              dsp.crossfade_length(source.size, rate, manifest.info["spec"]["crossfade_s"]))
        rebuilt = row[S.CLEAN_GAIN] * clean.astype(np.float64) + row[S.NOISE_GAIN] * noise
        reference = mixer.mix(manifest.mixtures.set_index(S.MIXTURE_ID, drop=False).loc[row[S.MIXTURE_ID]])
        assert np.max(np.abs(rebuilt - reference)) < 1e-5
        measured = 10 * np.log10(np.mean((row[S.CLEAN_GAIN] * clean.astype(np.float64)) ** 2)
                                 / np.mean((row[S.NOISE_GAIN] * noise) ** 2))
        assert abs(measured - row[S.SNR_DB]) < 0.1
    assert csv_text(manifest) == out.read_text()


def test_lhotse_export_maps_tracks_offsets_and_snr(built_manifest, tmp_path):
    manifest = load_manifest(built_manifest)
    root = next(iter(manifest.roots))
    lines = lhotse_lines(manifest, {root: manifest.roots[root]})
    assert len(lines) == len(manifest.mixtures)
    rate = manifest.sample_rate
    for text, mixture in zip(lines, manifest.mixtures.to_dict("records")):
        cut = json.loads(text)
        assert cut["id"] == mixture[S.MIXTURE_ID]
        if mixture[S.NOISE_SOURCE_ID] == "":
            assert cut["type"] == "MonoCut" and cut["custom"]["gain"] == mixture[S.CLEAN_GAIN]
            continue
        clean, noise = (track["cut"] for track in cut["tracks"])
        assert cut["type"] == "MixedCut" and cut["tracks"][1]["snr"] == mixture[S.SNR_DB]
        assert round(clean["start"] * rate) == mixture[S.CLEAN_OFFSET] and round(noise["start"] * rate) == mixture[S.NOISE_OFFSET]
        assert noise["custom"]["offset_samples"] == mixture[S.NOISE_OFFSET]   # exact, where seconds round
        assert round(clean["duration"] * rate) == mixture[S.NUM_OUTPUT_FRAMES]
        assert noise["recording"]["id"] == mixture[S.NOISE_SOURCE_ID]
        assert noise["custom"]["gain"] == mixture[S.NOISE_GAIN] and noise["custom"]["looped"] == mixture[S.NOISE_LOOPED]
        assert cut["custom"]["tags"] == list(mixture[S.TAGS]) and cut["custom"]["split"] == mixture[S.SPLIT]
        path = clean["recording"]["sources"][0]["source"]
        assert path.startswith("/") and (manifest.roots[root] / manifest.sources.loc[mixture[S.CLEAN_SOURCE_ID], S.PATH]).samefile(path)
    relative = json.loads(lhotse_lines(manifest)[0])
    first = relative["tracks"][0]["cut"] if "tracks" in relative else relative
    assert not first["recording"]["sources"][0]["source"].startswith("/")


def test_export_and_card_cli(built_manifest, tmp_path):
    def run(*args, code=0):
        result = subprocess.run([sys.executable, "-c", "import noisemix.cli as c; c.main()", *map(str, args)],
                                capture_output=True, text=True)
        assert result.returncode == code, result.stderr
        return result

    run("export", built_manifest, "--format", "lhotse", "--out", tmp_path / "cuts.jsonl")
    assert len((tmp_path / "cuts.jsonl").read_text().splitlines()) == len(load_manifest(built_manifest).mixtures)
    assert "--format 'parquet': choose lhotse or csv" in run("export", built_manifest, "--format", "parquet",
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
