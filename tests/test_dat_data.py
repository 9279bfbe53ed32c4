"""Manifest -> torch data: domains, label hiding, crops, mixing parity and bad manifests."""

import numpy as np
import pytest
import torch

from dat.config import config_from_dict
from dat.data import (SOURCE_DOMAIN, TARGET_DOMAIN, ChunkDataset, ClipDataset, DomainStream, MixedAudio,
                      labelled_rows, prepare_training_data, target_rows)
from dat.errors import DatError
from noisemix import Mixer, load_manifest
from noisemix import schema as S
from noisemix.testing import SYNTH_TAGS, write_synthetic_manifest


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return load_manifest(write_synthetic_manifest(root / "m", root / "audio", clips={"train": 8, "valid": 3, "test": 3}))


def _config(**data):
    return config_from_dict({"preset": "tiny", "data": data})


def test_target_domain_never_loads_tags(manifest, tmp_path):
    data = prepare_training_data(manifest, _config(), tmp_path / "cache", progress=False)
    assert S.TAGS not in data.target.rows.columns
    assert data.target.labels is None
    item = data.target[(0, 0)]
    assert "labels" not in item
    assert set(item) == {"audio", "domain", "mixture_id"}
    with pytest.raises(ValueError, match="without the tags column"):
        ClipDataset(manifest.split_rows("train"), data.target.audio, 2187, "target", 0, None)
    assert data.source[(0, 0)]["labels"].shape == (len(SYNTH_TAGS),)


def test_source_and_target_domain_labels_differ(manifest, tmp_path):
    data = prepare_training_data(manifest, _config(), tmp_path / "cache", progress=False)
    assert SOURCE_DOMAIN != TARGET_DOMAIN
    assert set(data.source.domains) == {SOURCE_DOMAIN}
    assert set(data.target.domains) == {TARGET_DOMAIN}
    src = next(DomainStream(data.source, 4, 0, 0))
    trg = next(DomainStream(data.target, 4, 1, 0))
    assert torch.all(src["domain"] == SOURCE_DOMAIN) and torch.all(trg["domain"] == TARGET_DOMAIN)
    by_category = prepare_training_data(manifest, config_from_dict({"preset": "tiny", "model": {"dc_mode": "category"}}),
                                        tmp_path / "cache", progress=False)
    assert set(by_category.target.domains) == {1, 2, 3} and set(by_category.source.domains) == {0}


def test_splits_are_the_documented_rows(manifest, tmp_path):
    data = prepare_training_data(manifest, _config(), tmp_path / "cache", progress=False)
    assert data.source.rows[S.NOISE_SOURCE_ID].eq("").all() and data.source.rows[S.SPLIT].eq("train").all()
    assert data.target.rows[S.NOISE_SOURCE_ID].ne("").all() and data.target.rows[S.SPLIT].eq("train").all()
    # Models are selected on clean validation rows only; noisy ones (target labels) are reported apart.
    assert set(data.valid_clean.rows[S.SPLIT]) == {"valid"} and data.valid_clean.rows[S.NOISE_SOURCE_ID].eq("").all()
    assert data.valid_noisy.rows[S.NOISE_SOURCE_ID].ne("").all()
    assert len(data.valid_clean.rows) + len(data.valid_noisy.rows) == len(manifest.split_rows("valid"))
    assert data.noisy_labelled is None
    source_only = prepare_training_data(manifest, config_from_dict({"preset": "tiny", "method": "source-only"}),
                                        tmp_path / "cache", progress=False)
    assert source_only.target is None and source_only.noisy_labelled is None


def test_multicondition_sees_the_same_noisy_audio_as_the_dat_target(manifest, tmp_path):
    dat = prepare_training_data(manifest, _config(), tmp_path / "cache", progress=False)
    multi = prepare_training_data(manifest, config_from_dict({"preset": "tiny", "method": "multicondition"}),
                                  tmp_path / "cache", progress=False)
    assert len(multi.source) == len(dat.source)  # clean source rows only, as for every method
    assert len(multi.noisy_labelled) == len(dat.target)
    unlabelled, labelled = DomainStream(dat.target, 4, 1, 0), DomainStream(multi.noisy_labelled, 4, 1, 0)
    for _ in range(5):
        a, b = next(unlabelled), next(labelled)
        assert a["mixture_id"] == b["mixture_id"] and torch.equal(a["audio"], b["audio"])
        assert "labels" not in a and b["labels"].shape == (4, len(SYNTH_TAGS))


def test_crops_are_mixture_windows_and_independent_of_workers(manifest, tmp_path):
    data = prepare_training_data(manifest, _config(), tmp_path / "cache", progress=False)
    batches = []
    for workers in (0, 2):
        stream = DomainStream(data.target, 4, 7, workers)
        batches.append([next(stream) for _ in range(3)])
    for a, b in zip(*batches):
        assert a["mixture_id"] == b["mixture_id"]
        assert torch.equal(a["audio"], b["audio"])
    mixer = Mixer(manifest)
    rows = data.target.rows.set_index(S.MIXTURE_ID)
    item = batches[0][0]
    full = mixer.mix(rows.loc[item["mixture_id"][0]])
    crop = item["audio"][0].numpy()
    starts = [s for s in range(full.size - crop.size + 1) if np.array_equal(full[s:s + crop.size], crop)]
    assert starts, "a training crop must be a window of the noisemix mixture"


def test_stream_position_resumes_exactly(manifest, tmp_path):
    data = prepare_training_data(manifest, _config(), tmp_path / "cache", progress=False)
    straight = DomainStream(data.target, 4, 3, 0)
    ids = [next(straight)["mixture_id"] for _ in range(40)]  # crosses epoch boundaries
    first = DomainStream(data.target, 4, 3, 0)
    for _ in range(17):
        next(first)
    resumed = DomainStream(data.target, 4, 3, 0)
    resumed.load_state_dict(first.state_dict())
    assert [next(resumed)["mixture_id"] for _ in range(23)] == ids[17:]


def test_eval_chunks_cover_each_clip_without_overlap(manifest, tmp_path):
    rows = labelled_rows(manifest, "test")
    chunks = ChunkDataset(rows, MixedAudio(manifest, tmp_path / "cache"), 2187)
    assert len(chunks) == 4 * len(rows)  # 8748-sample mixtures, 2187-sample inputs
    full = Mixer(manifest).mix(rows.iloc[0])
    joined = np.concatenate([chunks[k]["audio"].numpy() for k in range(4)])
    np.testing.assert_allclose(joined, full, atol=1e-6)


def test_bad_manifests_fail_clearly(tmp_path):
    unlabelled = load_manifest(write_synthetic_manifest(tmp_path / "u", tmp_path / "ua", labelled=False,
                                                        clips={"train": 4, "valid": 2, "test": 2}))
    with pytest.raises(DatError, match="no tag vocabulary"):
        prepare_training_data(unlabelled, _config(), tmp_path / "c", progress=False)
    no_valid = load_manifest(write_synthetic_manifest(tmp_path / "n", tmp_path / "na",
                                                      clips={"train": 4, "valid": 0, "test": 2}))
    with pytest.raises(DatError, match="split 'valid' has no rows"):
        prepare_training_data(no_valid, _config(), tmp_path / "c", progress=False)
    other_rate = load_manifest(write_synthetic_manifest(tmp_path / "r", tmp_path / "ra", sample_rate=16000,
                                                        clips={"train": 4, "valid": 2, "test": 2}))
    with pytest.raises(DatError, match="16000 Hz, but the model expects 22050 Hz"):
        prepare_training_data(other_rate, _config(), tmp_path / "c", progress=False)
    small = ClipDataset(target_rows(unlabelled).head(3), None, 2187, "target", 0, None)
    with pytest.raises(DatError, match="3 rows give no full batch of 4"):
        DomainStream(small, 4, 0, 0)


@pytest.mark.parametrize("tables", [1, 2])
def test_rendered_files_give_the_same_input_as_on_the_fly_mixing(manifest, tmp_path, tables):
    import pyarrow as pa
    import pyarrow.parquet as pq
    import soundfile as sf

    from dat.data import RenderedAudio
    from noisemix.render import render_keys

    rows = labelled_rows(manifest, "test").head(4)
    mixer, records, keys = Mixer(manifest), [], render_keys(manifest, "wav", rows)
    for _, row in rows.iterrows():
        rel = f"{row[S.MIXTURE_ID]}.wav"
        sf.write(tmp_path / rel, mixer.mix(row), manifest.sample_rate, subtype="FLOAT")
        records.append({S.MIXTURE_ID: row[S.MIXTURE_ID], S.STEM: "mixture", S.OUTPUT_PATH: rel, S.SHA256: "",
                        S.MEASURED_SNR_DB: 0.0, S.PEAK: 0.0, S.LOUDNESS_LUFS: 0.0, S.RENDER_KEY: keys[row[S.MIXTURE_ID]],
                        S.MANIFEST_FINGERPRINT: ""})
    # One renders table, or one per shard as `noisemix render --shard I/2` writes them.
    names = [S.RENDERS_FILE] if tables == 1 else [f"renders.shard-{i}-of-2.parquet" for i in range(2)]
    for i, name in enumerate(names):
        pq.write_table(pa.Table.from_pylist(records[i::len(names)], schema=S.RENDERS_SCHEMA), tmp_path / name)
    rendered = ChunkDataset(rows, RenderedAudio(manifest, tmp_path), 2187)
    mixed = ChunkDataset(rows, MixedAudio(manifest, tmp_path / "cache"), 2187)
    for k in range(len(mixed)):
        np.testing.assert_allclose(rendered[k]["audio"].numpy(), mixed[k]["audio"].numpy(), atol=1e-6)
    with pytest.raises(DatError, match="no renders table"):
        RenderedAudio(manifest, tmp_path / "elsewhere")
    records[0][S.RENDER_KEY] = "made-for-another-row"  # e.g. the manifest was rebuilt since
    pq.write_table(pa.Table.from_pylist(records, schema=S.RENDERS_SCHEMA), tmp_path / names[-1])
    with pytest.raises(DatError, match="1 render.s. were made from another version"):
        RenderedAudio(manifest, tmp_path)
