"""The level policy (issue 22): under match-clean, loudness gives away neither the domain
(clean vs noisy) nor the SNR; as-mixed shows the cue it removes. Measured on real music
peak-normalised near full scale (the small demo corpus), where the clipping guard bites."""

import numpy as np
import pandas as pd
import pytest

from noisemix import dsp
from noisemix import schema as S
from noisemix.build import build_manifest
from noisemix.manifest import load_manifest
from noisemix.mix import Mixer
from noisemix.sources import CorpusInput
from noisemix.spec import BuildSpec, parse_snr

# Largest difference between a noisy row's level and its clean reference's under
# match-clean. What remains is the correlation of clean and noise segments, which the
# metadata-only gain cannot know (measured here: under 1 dB for real recordings).
LEVEL_TOLERANCE_DB = 1.0


def _build(corpus, out, level: str):
    inputs = [CorpusInput("demo", corpus, "clean", subdir="clean"), CorpusInput("demo", corpus, "noise", subdir="noise")]
    spec = BuildSpec(seed=0, design="grid", snr=parse_snr("-5:20:5"), max_segments_per_clip=1, level=level,
                     split_fractions=(0.0, 0.0, 1.0))
    build_manifest(inputs, spec, out, progress=False)
    return load_manifest(out, roots={"demo": corpus})


def _levels(manifest) -> pd.DataFrame:
    """Every row's RMS level (dBFS) and peak, measured on the mixed audio."""
    mixer = Mixer(manifest)
    rows = manifest.mixtures
    audio = [mixer.mix(row) for _, row in rows.iterrows()]
    return rows.assign(level_db=[dsp.power_db(dsp.measured_power(a)) for a in audio],
                       peak=[float(np.max(np.abs(a))) for a in audio])


def _difference_to_clean(levels: pd.DataFrame) -> pd.Series:
    clean = levels[levels[S.NOISE_CATEGORY] == ""].set_index(S.CLEAN_SOURCE_ID)["level_db"]
    noisy = levels[levels[S.NOISE_CATEGORY] != ""]
    return noisy["level_db"] - noisy[S.CLEAN_SOURCE_ID].map(clean)


@pytest.fixture(scope="module")
def both(small_demo_corpus, tmp_path_factory):
    corpus, _ = small_demo_corpus
    out = tmp_path_factory.mktemp("level")
    return {level: _levels(_build(corpus, out / level, level)) for level in ("match-clean", "as-mixed")}


def _scaled_alone(rows: pd.DataFrame) -> pd.Series:
    """Noisy rows the clipping guard scaled below their clip's level (the clean reference's gain)."""
    reference = rows[rows[S.NOISE_CATEGORY] == ""].set_index(S.CLEAN_SOURCE_ID)[S.CLEAN_GAIN]
    noisy = rows[rows[S.NOISE_CATEGORY] != ""]
    expected = noisy[S.CLEAN_SOURCE_ID].map(reference) * dsp.level_match_scale(noisy[S.SNR_DB].to_numpy())
    return noisy[S.CLEAN_GAIN] < expected * (1 - 1e-8)


def test_match_clean_keeps_noisy_rows_at_their_clean_level_at_every_snr(both):
    levels = both["match-clean"]
    difference = _difference_to_clean(levels)
    alone = _scaled_alone(levels)
    assert alone.mean() <= 0.25, alone.mean()  # measured here: 12.2% (66 of 540)
    assert difference[~alone].abs().max() <= LEVEL_TOLERANCE_DB, difference[~alone].describe()
    by_snr = difference.groupby(levels.loc[difference.index, S.SNR_DB]).median()
    assert by_snr.abs().max() <= 0.5  # no level trend with SNR either
    assert levels["peak"].max() <= dsp.PEAK_LIMIT  # and nothing clips


def test_a_clips_clean_reference_does_not_depend_on_the_noise_its_mixtures_drew(small_demo_corpus, tmp_path):
    """Builds of the same clips with other noise draws (more mixtures, one category) keep
    every clean reference row, so a stage-1 model trained on one serves the others."""
    corpus, _ = small_demo_corpus
    inputs = [CorpusInput("demo", corpus, "clean", subdir="clean"), CorpusInput("demo", corpus, "noise", subdir="noise")]
    references = []
    for name, options in {"two": {}, "six": {"mixtures_per_segment": 6},
                          "env": {"category_weights": {"speech": 0.0, "music": 0.0}}}.items():
        spec = BuildSpec(seed=0, segment_frames=None, snr=parse_snr("-5:20"), **{"mixtures_per_segment": 2, **options})
        build_manifest(inputs, spec, tmp_path / name, progress=False)
        rows = load_manifest(tmp_path / name, roots={"demo": corpus}).mixtures
        references.append(rows[rows[S.NOISE_CATEGORY] == ""].reset_index(drop=True))
        if name == "six":
            assert _scaled_alone(rows).any()  # the guard acted on some mixtures, not on their clip
    for other in references[1:]:
        pd.testing.assert_frame_equal(references[0], other)
    assert (references[0][S.CLEAN_GAIN] < 1).any()  # near-full-scale clips got their headroom


def test_as_mixed_gives_the_domain_away_by_level(both):
    levels = both["as-mixed"]
    difference = _difference_to_clean(levels)
    at_minus_5 = difference[levels.loc[difference.index, S.SNR_DB] == -5.0]
    # the cue match-clean removes (measured here: 3.0 dB on average, up to 8 dB)
    assert at_minus_5.abs().mean() > 2 * LEVEL_TOLERANCE_DB and at_minus_5.abs().max() > 5.0


def test_snrs_are_unchanged_by_the_level_policy(both):
    for levels in both.values():
        noisy = levels[levels[S.NOISE_CATEGORY] != ""]
        ratio = (noisy[S.CLEAN_GAIN] / noisy[S.NOISE_GAIN]).to_numpy()
        reference = both["as-mixed"].loc[noisy.index]
        assert np.allclose(ratio, (reference[S.CLEAN_GAIN] / reference[S.NOISE_GAIN]).to_numpy(), rtol=1e-8)


def test_manifests_record_the_policy_and_old_ones_read_as_mixed(both):
    assert BuildSpec().level == "match-clean"
    assert BuildSpec.from_dict({"snr": "-5:20"}).level == "as-mixed"  # built before the policy existed
    assert BuildSpec(level="as-mixed").to_dict()["level"] == "as-mixed"
    with pytest.raises(Exception, match="level"):
        BuildSpec(level="loud")



def test_stats_show_each_row_at_its_clips_level_in_the_committed_demo_benchmark():
    from pathlib import Path

    from noisemix.stats import cue_table, row_level_db

    manifest = load_manifest(Path(__file__).resolve().parents[1] / "manifests" / "demo")
    rows = manifest.mixtures
    level = row_level_db(rows)
    alone = _scaled_alone(rows)
    assert alone.mean() < 0.15  # measured: 11.5% of noisy rows scaled below their clip's level
    kept = rows.drop(alone[alone].index)
    spread = level[kept.index].groupby(kept[S.CLEAN_SOURCE_ID]).agg(lambda v: v.max() - v.min())
    assert spread.max() < 1e-6  # the others: a clip's clean and noisy rows at one level
    clean, noisy = level[rows[S.NOISE_CATEGORY] == ""], level[rows[S.NOISE_CATEGORY] != ""]
    assert abs(clean.median() - noisy.median()) < 0.5  # clean and noisy rows alike as populations
    table = cue_table(manifest)
    assert set(table.columns) == {S.SPLIT, S.NOISE_CATEGORY, "snr_bin", "median_level_db", "looped_share"}
    assert table["looped_share"].between(0, 1).all()


def test_mix_at_snr_equals_the_row_path_to_the_sample(built_manifest):
    """The public function on a row's own arrays gives the row's gains and audio wherever
    the build's clipping guard did not act, and keeps the SNR and the peak everywhere."""
    from noisemix import mix_at_snr

    manifest = load_manifest(built_manifest)
    mixer = Mixer(manifest)
    rows = manifest.mixtures[manifest.mixtures[S.NOISE_CATEGORY] != ""]
    level = manifest.info["spec"]["level"]
    equal = 0
    for _, row in rows.iterrows():
        result = mix_at_snr(mixer.clean(row), mixer.source(row[S.NOISE_SOURCE_ID]), row[S.SNR_DB],
                            manifest.sample_rate, noise_offset=int(row[S.NOISE_OFFSET]), level=level)
        assert result.looped == bool(row[S.NOISE_LOOPED])
        assert result.clean_gain / result.noise_gain == pytest.approx(row[S.CLEAN_GAIN] / row[S.NOISE_GAIN], rel=1e-8)
        assert np.max(np.abs(result.mixture)) < 32767.5 / 32768  # written as 16-bit, nothing clips
        unguarded = row[S.CLEAN_GAIN] == pytest.approx(float(dsp.level_match_scale(row[S.SNR_DB])), rel=1e-9)
        if unguarded:
            assert (result.clean_gain, result.noise_gain) == (row[S.CLEAN_GAIN], row[S.NOISE_GAIN])
            assert np.array_equal(result.mixture, mixer.mix(row))
            equal += 1
    assert level == "match-clean" and equal >= len(rows) // 2, (equal, len(rows))
