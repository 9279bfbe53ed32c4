import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from noisemix import Mixer, dsp, load_manifest
from noisemix import schema as S
from noisemix.build import build_manifest
from noisemix.spec import BuildSpec, parse_snr
from noisemix.transforms import parse_transform


def test_every_noisy_row_hits_its_target_snr(built_manifest):
    manifest = load_manifest(built_manifest)
    mixer = Mixer(manifest)
    noisy = manifest.mixtures[manifest.mixtures[S.NOISE_SOURCE_ID] != ""]
    assert len(noisy) > 50
    errors = [dsp.snr_db(*mixer.stems(row)) - row[S.SNR_DB] for _, row in noisy.iterrows()]
    assert np.max(np.abs(errors)) < 0.01
    assert noisy[S.NOISE_LOOPED].any(), "the corpus has short noises; some rows must loop"
    assert noisy[S.SNR_DB].between(-5, 20).all()


def test_clipping_guard_keeps_the_peak_below_full_scale(built_manifest):
    manifest = load_manifest(built_manifest)
    mixer = Mixer(manifest)
    peaks = [np.max(np.abs(mixer.mix(row))) for _, row in manifest.mixtures.iterrows()]
    assert max(peaks) <= dsp.PEAK_LIMIT
    assert (manifest.mixtures[S.CLEAN_GAIN] < 1).any(), "low-SNR rows must have been scaled"


def test_mix_window_equals_the_slice_of_the_whole_mixture(built_manifest):
    manifest = load_manifest(built_manifest)
    mixer = Mixer(manifest)
    for _, row in manifest.mixtures.head(20).iterrows():
        np.testing.assert_allclose(mixer.mix(row, 1000, 5000), mixer.mix(row)[1000:6000], atol=1e-6)


def test_building_twice_and_with_more_workers_gives_identical_content(tmp_path, corpus_inputs, built_manifest):
    build_manifest(corpus_inputs, BuildSpec(seed=3, mixtures_per_segment=3), tmp_path / "again", workers=2, progress=False)
    first = json.loads((built_manifest / S.INFO_FILE).read_text())["fingerprints"]
    second = json.loads((tmp_path / "again" / S.INFO_FILE).read_text())["fingerprints"]
    assert first == second
    pd.testing.assert_frame_equal(pd.read_parquet(built_manifest / S.MIXTURES_FILE),
                                  pd.read_parquet(tmp_path / "again" / S.MIXTURES_FILE))


def test_input_order_does_not_change_the_manifest(tmp_path, corpus_inputs, built_manifest):
    build_manifest(corpus_inputs[::-1], BuildSpec(seed=3, mixtures_per_segment=3), tmp_path / "rev", progress=False)
    assert (pd.read_parquet(built_manifest / S.MIXTURES_FILE)
            .equals(pd.read_parquet(tmp_path / "rev" / S.MIXTURES_FILE)))


def test_another_seed_draws_other_mixtures(tmp_path, corpus_inputs, built_manifest):
    build_manifest(corpus_inputs, BuildSpec(seed=4, mixtures_per_segment=3), tmp_path / "s4", progress=False)
    a = pd.read_parquet(built_manifest / S.MIXTURES_FILE)
    b = pd.read_parquet(tmp_path / "s4" / S.MIXTURES_FILE)
    assert list(a[S.MIXTURE_ID]) == list(b[S.MIXTURE_ID])
    assert not np.allclose(a[S.SNR_DB].fillna(0), b[S.SNR_DB].fillna(0))


def test_splits_never_share_a_clean_or_noise_group(built_manifest):
    manifest = load_manifest(built_manifest)
    sources = manifest.sources
    assert sources.groupby(S.GROUP)[S.SPLIT].nunique().max() == 1
    mixtures = manifest.mixtures
    noisy = mixtures[mixtures[S.NOISE_SOURCE_ID] != ""]
    noise_split = sources.loc[noisy[S.NOISE_SOURCE_ID], S.SPLIT].to_numpy()
    clean_split = sources.loc[mixtures[S.CLEAN_SOURCE_ID], S.SPLIT].to_numpy()
    assert (noise_split == noisy[S.SPLIT].to_numpy()).all()
    assert (clean_split == mixtures[S.SPLIT].to_numpy()).all()
    assert set(mixtures[S.SPLIT]) == set(S.SPLITS)


def test_grid_design_is_balanced(tmp_path, corpus_inputs):
    spec = BuildSpec(design="grid", snr=parse_snr("-5:20:5"), clean_references=False, segment_frames=None)
    build_manifest(corpus_inputs, spec, tmp_path / "grid", progress=False)
    mixtures = load_manifest(tmp_path / "grid").mixtures
    cells = mixtures.groupby([S.SPLIT, S.NOISE_CATEGORY, S.SNR_DB]).size()
    per_split = cells.groupby(level=0).nunique()
    assert (per_split == 1).all(), "every category x SNR cell has the same count within a split"
    assert len(cells.index.get_level_values(2).unique()) == 6
    clips = mixtures.groupby(S.CLEAN_SOURCE_ID).size()
    assert (clips == 3 * 6).all()


def test_per_category_snr_override(tmp_path, corpus_inputs):
    spec = BuildSpec(snr=parse_snr("-5:0"), snr_by_category={"speech": parse_snr("10:20")}, mixtures_per_segment=4)
    build_manifest(corpus_inputs, spec, tmp_path / "o", progress=False)
    mixtures = load_manifest(tmp_path / "o").mixtures
    speech = mixtures[mixtures[S.NOISE_CATEGORY] == "speech"][S.SNR_DB]
    other = mixtures[mixtures[S.NOISE_CATEGORY].isin(["music", "environmental"])][S.SNR_DB]
    assert speech.between(10, 20).all() and other.between(-5, 0).all() and len(speech) and len(other)


def test_lufs_definition_hits_the_loudness_difference(tmp_path, corpus_inputs):
    spec = BuildSpec(snr_definition="lufs", snr=parse_snr("0,10"), max_segments_per_clip=1, clean_references=False)
    build_manifest(corpus_inputs, spec, tmp_path / "l", progress=False)
    manifest = load_manifest(tmp_path / "l")
    mixer = Mixer(manifest)
    for _, row in manifest.mixtures.head(12).iterrows():
        clean, noise = mixer.stems(row)
        measured = dsp.loudness_lufs(clean, 22050) - dsp.loudness_lufs(noise, 22050)
        assert measured == pytest.approx(row[S.SNR_DB], abs=0.05)


def test_noise_transforms_are_stored_and_replayed(tmp_path, corpus_inputs):
    spec = BuildSpec(noise_transforms=(parse_transform("LowPassFilter:p=1.0"),), max_segments_per_clip=1)
    build_manifest(corpus_inputs, spec, tmp_path / "t", progress=False)
    manifest = load_manifest(tmp_path / "t")
    noisy = manifest.mixtures[manifest.mixtures[S.NOISE_SOURCE_ID] != ""]
    cutoffs = [json.loads(t)[0]["parameters"]["cutoff_freq"] for t in noisy[S.NOISE_TRANSFORMS]]
    assert len(set(cutoffs)) == len(cutoffs) > 5
    mixer = Mixer(manifest)
    for _, row in noisy.head(8).iterrows():
        assert dsp.snr_db(*mixer.stems(row)) == pytest.approx(row[S.SNR_DB], abs=0.01)
        np.testing.assert_array_equal(mixer.mix(row), Mixer(manifest).mix(row))


def test_a_boosting_mixture_transform_is_scaled_below_full_scale_not_clipped(tmp_path, corpus_inputs):
    from noisemix.render import render_manifest

    spec = BuildSpec(mixture_transforms=(parse_transform("Gain:min_gain_db=30,max_gain_db=30,p=1.0"),),
                     max_segments_per_clip=1, mixtures_per_segment=1)
    build_manifest(corpus_inputs, spec, tmp_path / "g", progress=False)
    manifest = load_manifest(tmp_path / "g")
    transformed = manifest.mixtures[manifest.mixtures[S.MIXTURE_TRANSFORMS] != "[]"]
    assert len(transformed)
    mixture = Mixer(manifest).mix(transformed.iloc[0])
    assert np.max(np.abs(mixture)) == pytest.approx(dsp.PEAK_LIMIT, rel=1e-6)
    table = render_manifest(tmp_path / "g", tmp_path / "audio", fmt="wav", loudness=False, progress=False)
    assert len(table) == len(manifest.mixtures) and (table[S.PEAK] < 1.0).all()
    noisy = table[table[S.MEASURED_SNR_DB].notna()]
    expected = manifest.mixtures.set_index(S.MIXTURE_ID).loc[noisy[S.MIXTURE_ID], S.SNR_DB].to_numpy()
    assert np.abs(noisy[S.MEASURED_SNR_DB].to_numpy() - expected).max() < 0.1


def test_full_clip_segments(tmp_path, corpus_inputs):
    build_manifest(corpus_inputs, BuildSpec(segment_frames=None), tmp_path / "f", progress=False)
    manifest = load_manifest(tmp_path / "f")
    mixer = Mixer(manifest)
    mixtures = manifest.mixtures
    assert (mixtures.groupby(S.CLEAN_SOURCE_ID)[S.NUM_FRAMES].nunique() == 1).all()
    assert mixtures[S.NUM_FRAMES].nunique() > 1
    for _, row in mixtures[mixtures[S.NOISE_SOURCE_ID] != ""].iterrows():
        assert dsp.snr_db(*mixer.stems(row)) == pytest.approx(row[S.SNR_DB], abs=0.01)


def test_category_weights_steer_the_draw(tmp_path, corpus_inputs):
    spec = BuildSpec(category_weights={"speech": 4.0, "environmental": 1.0, "music": 0.0}, mixtures_per_segment=4,
                     clean_references=False)
    build_manifest(corpus_inputs, spec, tmp_path / "w", progress=False)
    counts = load_manifest(tmp_path / "w").mixtures[S.NOISE_CATEGORY].value_counts()
    assert "music" not in counts
    assert counts["speech"] > 2 * counts["environmental"]


def test_segment_energies_agree_with_summing_the_materialised_segments():
    """Crops and crossfaded loops of many lengths, offsets and block sizes: the build's
    block-sum energies are within 2e-14 of the exact sum (math.fsum), as accurate as
    summing the materialised segment, so stored gains do not move."""
    import math

    from noisemix.energy import segment_energies

    rng = np.random.default_rng(5)
    worst = {"block sums": 0.0, "materialised": 0.0}
    for _ in range(60):
        size = int(rng.integers(300, 40000))
        audio = (rng.standard_normal(size) * rng.uniform(0.001, 0.5)).astype(np.float32)
        crossfade = dsp.crossfade_length(size, 22050)
        looped = rng.random(12) < 0.5
        lengths = np.where(looped, rng.integers(64, 4 * size, 12), rng.integers(64, size + 1, 12))
        offsets = np.array([rng.integers(0, size) if loop else rng.integers(0, size - n + 1)
                            for loop, n in zip(looped, lengths)])
        energies = segment_energies(audio, offsets, lengths, looped, crossfade, int(rng.choice([64, 256, 972])))
        for energy, offset, length, loop in zip(energies, offsets, lengths, looped):
            segment = (dsp.loop_to_length(audio, int(length), int(offset), crossfade) if loop
                       else audio[offset:offset + length]).astype(np.float64)
            exact = math.fsum(segment * segment)
            worst["block sums"] = max(worst["block sums"], abs(energy - exact) / exact)
            worst["materialised"] = max(worst["materialised"], abs(dsp.power(segment) * length - exact) / exact)
    assert worst["block sums"] < 2e-14, worst


def test_schema_3_names_the_sources_frames_and_version_2_manifests_still_read(built_manifest, tmp_path):
    """Version 3 renamed sources' ``num_frames`` (at the file's rate) to ``source_frames``, so the
    manifest's one ``num_frames`` is the mixtures' (at the manifest's rate). A version-2 manifest
    reads under the new name, and fingerprints, taken under the first name, do not move."""
    import shutil

    import pyarrow.parquet as pq

    from noisemix.manifest import fingerprint_differences

    info = json.loads((built_manifest / S.INFO_FILE).read_text())
    assert info[S.INFO_SCHEMA_VERSION] == 3 == S.SCHEMA_VERSION
    written = pq.read_table(built_manifest / S.SOURCES_FILE).column_names
    assert S.SOURCE_FRAMES in written and "num_frames" not in written
    old = tmp_path / "v2"
    shutil.copytree(built_manifest, old)
    table = pq.read_table(old / S.SOURCES_FILE)
    pq.write_table(table.rename_columns(["num_frames" if n == S.SOURCE_FRAMES else n for n in table.column_names]),
                   old / S.SOURCES_FILE)
    (old / S.INFO_FILE).write_text(json.dumps(dict(info, **{S.INFO_SCHEMA_VERSION: 2})))
    assert fingerprint_differences(old) == [] and fingerprint_differences(built_manifest) == []
    pd.testing.assert_frame_equal(load_manifest(old).sources, load_manifest(built_manifest).sources)
    # The committed demo benchmarks were built before version 3.
    committed = load_manifest(Path(__file__).resolve().parents[1] / "manifests" / "demo-grid")
    assert committed.info[S.INFO_SCHEMA_VERSION] < 3 and (committed.sources[S.SOURCE_FRAMES] > 0).all()
