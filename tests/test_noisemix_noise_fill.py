"""--noise-fill concat (issue 22): short noise is followed by other recordings of its
category and split instead of being looped, each used once before any repeats, with the
same crossfade and exact SNRs; manifests that do not use it stay schema version 1."""

import json

import numpy as np
import pytest

from noisemix import dsp
from noisemix import schema as S
from noisemix.build import build_manifest
from noisemix.manifest import load_manifest
from noisemix.mix import Mixer
from noisemix.sources import CorpusInput
from noisemix.spec import BuildSpec, parse_snr


def test_pieces_are_joined_with_the_equal_power_crossfade_of_loops():
    a, b, c = (np.full(n, v, np.float32) for n, v in ((400, 1.0), (300, -1.0), (500, 0.5)))
    out = dsp.concat_to_length([a, b, c], 900, crossfade=40)
    assert out.dtype == np.float32 and out.size == 900
    assert np.all(out[:360] == 1.0) and np.all(out[400:620] == -1.0) and np.all(out[660:] == 0.5)
    fade_in, fade_out = np.sin(0.5 * np.pi * (np.arange(40) + 0.5) / 40), np.cos(0.5 * np.pi * (np.arange(40) + 0.5) / 40)
    assert np.allclose(out[360:400], fade_out - fade_in, atol=1e-6)  # a fades out while b fades in
    assert np.allclose(dsp.concat_overlaps([400, 300, 100], 40), [0, 40, 25])  # at most a quarter of a piece
    with pytest.raises(ValueError, match="cover"):
        dsp.concat_to_length([a, b], 900, crossfade=40)


def _build(corpus, out, **options):
    inputs = [CorpusInput("demo", corpus, "clean", subdir="clean"), CorpusInput("demo", corpus, "noise", subdir="noise")]
    spec = BuildSpec(seed=0, segment_frames=None, snr=parse_snr("-5:20"), mixtures_per_segment=2,
                     split_fractions=(0.5, 0.0, 0.5), **options)
    build_manifest(inputs, spec, out, progress=False)
    return load_manifest(out, roots={"demo": corpus})


@pytest.fixture(scope="module")
def concat(small_demo_corpus, tmp_path_factory):
    corpus, _ = small_demo_corpus
    return _build(corpus, tmp_path_factory.mktemp("fill") / "concat", noise_fill="concat")


def test_no_recording_repeats_in_a_row_while_others_of_its_pool_are_unused(concat):
    sources = concat.sources
    rows = concat.mixtures[concat.mixtures[S.NOISE_CATEGORY] != ""]
    sequences = rows[rows[S.NOISE_NEXT_IDS].map(len) > 0]
    assert len(sequences) >= len(rows) // 2  # the demo's noise is short: most rows need more than one recording
    for _, row in sequences.iterrows():
        ids = [row[S.NOISE_SOURCE_ID], *row[S.NOISE_NEXT_IDS]]
        pool = sources[(sources[S.ROLE] == "noise") & (sources[S.CATEGORY] == row[S.NOISE_CATEGORY])
                       & (sources[S.SPLIT] == row[S.SPLIT])]
        assert set(ids) <= set(pool[S.SOURCE_ID])  # same category and split: splits never leak
        repeats = len(ids) != len(set(ids))
        assert repeats == bool(row[S.NOISE_LOOPED])
        if repeats:  # only once the whole pool has been used
            assert set(ids) == set(pool[S.SOURCE_ID]) or len(set(ids)) == len(pool)


def test_rows_mix_at_their_snr_and_windows_equal_the_whole(concat):
    mixer = Mixer(concat)
    rows = concat.mixtures[concat.mixtures[S.NOISE_NEXT_IDS].map(len) > 0].head(12)
    for _, row in rows.iterrows():
        clean, noise = mixer.stems(row)
        measured = dsp.power_db(dsp.measured_power(clean)) - dsp.power_db(dsp.measured_power(noise))
        assert measured == pytest.approx(row[S.SNR_DB], abs=1e-3)
        whole = mixer.mix(row)
        assert np.array_equal(mixer.mix(row, 2000, 30000), whole[2000:32000])
        assert np.max(np.abs(whole)) <= dsp.PEAK_LIMIT


def test_concat_manifests_regenerate_and_only_they_carry_the_next_ids_column(
        concat, small_demo_corpus, tmp_path):
    corpus, _ = small_demo_corpus
    assert concat.info["schema_version"] == 3 and concat.info["spec"]["noise_fill"] == "concat"
    again = _build(corpus, tmp_path / "again", noise_fill="concat")
    assert again.info["fingerprints"] == concat.info["fingerprints"]
    loop = _build(corpus, tmp_path / "loop")
    assert loop.info["schema_version"] == 3 and "noise_fill" not in loop.info["spec"]
    written = json.loads((tmp_path / "loop" / S.INFO_FILE).read_text())
    assert written["schema_version"] == 3  # the oldest that names sources' source_frames
    import pyarrow.parquet as pq

    assert S.NOISE_NEXT_IDS not in pq.read_schema(tmp_path / "loop" / S.MIXTURES_FILE).names
    assert loop.mixtures[S.NOISE_NEXT_IDS].map(len).sum() == 0  # read back as empty sequences
    looped = loop.mixtures[loop.mixtures[S.NOISE_CATEGORY] != ""][S.NOISE_LOOPED].mean()
    assert looped > 0.5 and concat.mixtures[concat.mixtures[S.NOISE_CATEGORY] != ""][S.NOISE_LOOPED].mean() < looped


def test_render_measures_the_rows_snr_and_verify_passes(concat, tmp_path):
    from noisemix.render import render_manifest
    from noisemix.verify import verify_manifest

    out = tmp_path / "audio"
    table = render_manifest(concat.directory, out, roots=concat.roots, split="test", loudness=False, progress=False)
    rows = concat.mixtures.set_index(S.MIXTURE_ID).loc[table[S.MIXTURE_ID]]
    noisy = rows[S.NOISE_NEXT_IDS].map(len).to_numpy() > 0
    assert noisy.sum() >= 5
    measured = table[S.MEASURED_SNR_DB].to_numpy()[noisy]
    assert np.allclose(measured, rows[S.SNR_DB].to_numpy()[noisy], atol=0.05)  # 16-bit rounding only
    problems = verify_manifest(concat.directory, roots=concat.roots, renders=out, progress=False)
    assert [p for p in problems if "not rendered" not in p] == []  # only the train split is left out


def _loops(manifest) -> np.ndarray:
    """How often each noisy row's recording starts over, from the manifest alone."""
    rows = manifest.mixtures[manifest.mixtures[S.NOISE_CATEGORY] != ""]
    mixer = Mixer(manifest)
    frames = np.array([mixer.source(i).size for i in rows[S.NOISE_SOURCE_ID]])  # at the manifest's rate
    crossfade = np.minimum(round(0.01 * manifest.sample_rate), frames // 4)
    period = frames - crossfade
    loops = -(-(rows[S.NOISE_OFFSET].to_numpy() % period + rows[S.NUM_FRAMES].to_numpy()) // period) - 1
    return np.where(rows[S.NOISE_LOOPED].to_numpy(), loops, 0)


def test_max_loops_redraws_beyond_the_limit_and_refuses_in_one_line_when_it_cannot(small_demo_corpus, tmp_path):
    from noisemix.errors import NoisemixError

    corpus, _ = small_demo_corpus
    inputs = [CorpusInput("demo", corpus, "clean", subdir="clean"), CorpusInput("demo", corpus, "noise", subdir="noise")]
    limited = BuildSpec(seed=0, segment_frames=59049, max_segments_per_clip=2, snr=parse_snr("-5:20"),
                        split_fractions=(0.5, 0.0, 0.5), max_loops=1)
    info = build_manifest(inputs, limited, tmp_path / "limited", progress=False)
    manifest = load_manifest(tmp_path / "limited", roots={"demo": corpus})
    assert info["report"]["counts"]["noise segments redrawn (would loop more than --max-loops)"] > 0
    loops = _loops(manifest)
    assert loops.max() <= 1 and (loops == 1).any()  # the limit holds, and was needed
    assert any(note.startswith("looped noise: ") for note in info["report"]["notes"])  # the build summary
    whole = BuildSpec(seed=0, segment_frames=None, snr=parse_snr("-5:20"), split_fractions=(0.5, 0.0, 0.5), max_loops=0)
    with pytest.raises(NoisemixError, match="--max-loops 0 .* use --noise-fill concat") as error:
        build_manifest(inputs, whole, tmp_path / "whole", progress=False)
    assert "\n" not in str(error.value)
    build_manifest(inputs, BuildSpec(**{**whole.__dict__, "noise_fill": "concat"}), tmp_path / "whole", progress=False)
