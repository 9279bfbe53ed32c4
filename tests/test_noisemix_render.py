import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from noisemix import dsp, load_manifest
from noisemix import schema as S
from noisemix.render import render_manifest
from noisemix.verify import verify_manifest


@pytest.fixture(scope="module")
def rendered(built_manifest, tmp_path_factory):
    from noisemix import render

    out = tmp_path_factory.mktemp("render")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(render, "FRAMES_PER_WORKER", 1)  # two processes even for this small manifest
        return out, render_manifest(built_manifest, out, stems=True, fmt="flac", workers=2, progress=False)


def test_workers_are_started_only_for_work_that_pays_for_them(built_manifest):
    from noisemix import render

    job = render._Job(str(built_manifest), {}, "", False, "wav", False, None)
    positions = list(range(len(job.mixer().manifest.mixtures)))
    frames = int(job.mixer().manifest.mixtures[S.NUM_FRAMES].sum())
    tasks = [positions[i:i + 8] for i in range(0, len(positions), 8)]
    assert frames < render.FRAMES_PER_WORKER and render.useful_workers(2, job, tasks) == 1
    assert render.useful_workers(8, job, tasks) == 1
    assert render.useful_workers(1, job, tasks) == 1
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(render, "FRAMES_PER_WORKER", frames // 3)
        assert render.useful_workers(2, job, tasks) == 2
        assert render.useful_workers(8, job, tasks) == 4      # 1 + frames // (frames // 3)
        patch.setattr(render, "FRAMES_PER_WORKER", 1)
        assert render.useful_workers(8, job, tasks[:2]) == 2  # never more processes than tasks


def test_rendered_16bit_stems_hit_the_target_snr(built_manifest, rendered):
    out, table = rendered
    mixtures = load_manifest(built_manifest).mixtures.set_index(S.MIXTURE_ID)
    noisy = table[(table[S.STEM] == "mixture") & table[S.MEASURED_SNR_DB].notna()]
    assert len(noisy) > 50
    for mixture_id, path in zip(noisy[S.MIXTURE_ID], noisy[S.OUTPUT_PATH]):
        clean, _ = sf.read(out / path.replace(".flac", ".clean.flac"), dtype="float64")
        noise, _ = sf.read(out / path.replace(".flac", ".noise.flac"), dtype="float64")
        mix, rate = sf.read(out / path, dtype="int16")
        assert rate == 22050 and mix.size == mixtures.loc[mixture_id, S.NUM_FRAMES]
        assert abs(dsp.snr_db(clean, noise) - mixtures.loc[mixture_id, S.SNR_DB]) < 0.1
    assert (noisy[S.MEASURED_SNR_DB] - mixtures.loc[noisy[S.MIXTURE_ID], S.SNR_DB].to_numpy()).abs().max() < 0.1


def test_renders_table_and_verify(built_manifest, rendered):
    out, table = rendered
    assert set(table[S.STEM]) == {"mixture", "clean", "noise"}
    assert (table[S.PEAK] < 1.0).all()
    assert verify_manifest(built_manifest, renders=out, progress=False) == []


def test_render_is_identical_for_any_worker_count_and_format_is_stable(built_manifest, rendered, tmp_path):
    _, table = rendered
    again = render_manifest(built_manifest, tmp_path, stems=True, workers=1, progress=False)
    pd.testing.assert_frame_equal(table.reset_index(drop=True), again.reset_index(drop=True))


def test_shards_cover_the_manifest_once(built_manifest, tmp_path):
    parts = [render_manifest(built_manifest, tmp_path, shard=(i, 3), progress=False, loudness=False) for i in range(3)]
    ids = pd.concat(parts)[S.MIXTURE_ID]
    assert ids.is_unique and set(ids) == set(load_manifest(built_manifest).mixtures[S.MIXTURE_ID])
    assert sorted(p.name for p in tmp_path.glob("renders*.parquet")) == [f"renders.shard-{i}-of-3.parquet" for i in range(3)]
    assert verify_manifest(built_manifest, renders=tmp_path, progress=False) == []


def test_interrupted_render_resumes_and_repairs(built_manifest, tmp_path):
    reference = render_manifest(built_manifest, tmp_path / "ref", fmt="wav", progress=False, loudness=False)
    out = tmp_path / "run"
    render_manifest(built_manifest, out, fmt="wav", progress=False, loudness=False, shard=(0, 1))
    journal = out / ".journal-0-of-1.jsonl"
    lines = journal.read_text().splitlines()
    # Simulate a kill: the journal lost its tail, one file is half written, one is gone.
    journal.write_text("\n".join(lines[: len(lines) // 2]) + '\n{"mixture_id": "cut')
    victim = out / json.loads(lines[-1])[S.OUTPUT_PATH]
    victim.unlink()
    (victim.parent / f".{victim.name}.x.tmp").write_bytes(b"RIFF half")
    resumed = render_manifest(built_manifest, out, fmt="wav", progress=False, loudness=False)
    pd.testing.assert_frame_equal(reference.reset_index(drop=True), resumed.reset_index(drop=True))
    assert not list(out.rglob("*.tmp"))
    assert verify_manifest(built_manifest, renders=out, progress=False) == []


def test_rerun_with_stems_adds_the_missing_stems(built_manifest, rendered, tmp_path):
    _, with_stems = rendered
    render_manifest(built_manifest, tmp_path, fmt="flac", shard=(0, 1), progress=False)
    table = render_manifest(built_manifest, tmp_path, stems=True, fmt="flac", progress=False)
    pd.testing.assert_frame_equal(with_stems.reset_index(drop=True), table.reset_index(drop=True))
    journal = [json.loads(line) for line in (tmp_path / ".journal-0-of-1.jsonl").read_text().splitlines()]
    assert sum(r[S.STEM] == "mixture" for r in journal) == 2 * len(load_manifest(built_manifest).mixtures)
    assert verify_manifest(built_manifest, renders=tmp_path, progress=False) == []


def test_verify_reports_changed_and_missing_sources(built_manifest, synthetic_corpus, tmp_path):
    import shutil

    copy = tmp_path / "corpus"
    shutil.copytree(synthetic_corpus, copy)
    manifest = load_manifest(built_manifest)
    used = manifest.sources[S.PATH].tolist()
    (copy / used[0]).unlink()
    audio, rate = sf.read(copy / used[1])
    sf.write(copy / used[1], audio * 0.5, rate, format="FLAC", subtype="PCM_16")
    audio, rate = sf.read(copy / used[2], dtype="int16")
    sf.write(copy / used[2], audio, rate, format="FLAC", subtype="PCM_16", compression_level=0.9)
    lines = verify_manifest(built_manifest, roots={"syn": copy}, progress=False)
    assert any("missing" in line and used[0] in line for line in lines)
    assert any("not the same recording" in line and used[1] in line for line in lines)
    assert any("harmless" in line and used[2] in line for line in lines)


def test_blockwise_mixing_gives_the_samples_of_whole_array_mixing(built_manifest):
    from noisemix.mix import Mixer
    from noisemix.render import _render_in_blocks

    manifest = load_manifest(built_manifest)
    mixer = Mixer(manifest)
    rows = manifest.mixtures
    kinds = {"clean": rows[S.NOISE_SOURCE_ID].map(S.is_clean_reference), "looped": rows[S.NOISE_LOOPED],
             "cropped": ~rows[S.NOISE_LOOPED] & ~rows[S.NOISE_SOURCE_ID].map(S.is_clean_reference)}
    for kind, mask in kinds.items():
        assert mask.any(), f"the test manifest has no {kind} row"
        row = rows[mask].iloc[0]
        clean, noise = mixer.stems(row)
        expected = {"mixture": dsp.to_pcm16(mixer.mix(row)), "clean": dsp.to_pcm16(clean)}
        if noise is not None:
            expected["noise"] = dsp.to_pcm16(noise)
        # 1000-sample blocks: many blocks and a partial last one.
        alone, _ = _render_in_blocks(mixer, row, stems=False, block=1000)
        outputs, measured = _render_in_blocks(mixer, row, stems=True, block=1000)
        assert list(alone) == ["mixture"] and np.array_equal(alone["mixture"], expected["mixture"])
        assert list(outputs) == list(expected)
        for stem, pcm in expected.items():
            np.testing.assert_array_equal(outputs[stem], pcm, err_msg=f"{kind} row, {stem}")
        if noise is None:
            assert np.isnan(measured)
        else:
            whole = dsp.snr_db(clean, dsp.from_pcm16(expected["mixture"]) - clean)
            assert abs(measured - whole) < 1e-4 and abs(measured - row[S.SNR_DB]) < 0.1


def test_wav_bytes_are_what_libsndfile_writes():
    import io

    from noisemix.render import _encoded

    pcm = np.random.default_rng(0).integers(-32768, 32768, 12345).astype(np.int16)
    expected = io.BytesIO()
    sf.write(expected, pcm, 22050, subtype="PCM_16", format="WAV")
    assert b"".join(bytes(chunk) for chunk in _encoded(pcm, 22050, "wav")) == expected.getvalue()


def test_a_stream_of_clean_sources_does_not_push_out_the_noise_in_use(built_manifest, monkeypatch):
    from noisemix import audio
    from noisemix.mix import Mixer

    decoded = []
    real = audio.load_mono
    monkeypatch.setattr(audio, "load_mono", lambda path, rate: decoded.append(str(path)) or real(path, rate))
    manifest = load_manifest(built_manifest)
    rows = manifest.mixtures[~manifest.mixtures[S.NOISE_SOURCE_ID].map(S.is_clean_reference)]
    rows = rows.sort_values(S.NOISE_SOURCE_ID, kind="stable")
    mixer = Mixer(manifest, memory_mb=0, clean_memory_mb=0)  # each cache keeps only its latest source
    for _, row in rows.iterrows():
        mixer.stems(row)
    noise_paths = {str(manifest.source_path(s)) for s in rows[S.NOISE_SOURCE_ID]}
    assert sorted(p for p in decoded if p in noise_paths) == sorted(noise_paths)  # each noise decoded once


def test_renders_tables_of_shards_are_read_together_and_the_latest_wins(built_manifest, tmp_path):
    import os

    import pyarrow as pa
    import pyarrow.parquet as pq

    from noisemix import load_renders
    from noisemix.errors import ManifestError

    def record(mixture_id, digest, path="train/x.wav"):
        return {S.MIXTURE_ID: mixture_id, S.STEM: "mixture", S.OUTPUT_PATH: path, S.SHA256: digest,
                S.MEASURED_SNR_DB: 0.0, S.PEAK: 0.0, S.LOUDNESS_LUFS: 0.0, S.RENDER_KEY: "", S.MANIFEST_FINGERPRINT: ""}

    def write(name, records, mtime):
        pq.write_table(pa.Table.from_pylist(records, schema=S.RENDERS_SCHEMA), tmp_path / name)
        os.utime(tmp_path / name, ns=(mtime, mtime))

    write("renders.parquet", [record("a", "old"), record("b", "b")], 1_000_000_000)
    write("renders.shard-0-of-2.parquet", [record("a", "new")], 2_000_000_000)
    write("renders.shard-1-of-2.parquet", [record("c", "c")], 2_000_000_000)
    table = load_renders(tmp_path).set_index(S.MIXTURE_ID)
    assert sorted(table.index) == ["a", "b", "c"] and table.at["a", S.SHA256] == "new"
    write("renders.shard-1-of-2.parquet", [record("c", "c", "../../outside.wav")], 3_000_000_000)
    with pytest.raises(ManifestError, match="outside.wav"):
        load_renders(tmp_path)


# --- issue 26: renders never outlive the rows they were made from -----------------

def _build(corpus_inputs, out, seed, **spec):
    from noisemix.build import build_manifest
    from noisemix.spec import BuildSpec

    build_manifest(corpus_inputs, BuildSpec(seed=seed, mixtures_per_segment=2, **spec), out, progress=False)
    return out


def test_a_rebuilt_manifest_gets_its_rows_rendered_again_and_verify_names_stale_renders(corpus_inputs, tmp_path):
    from noisemix import load_renders
    from noisemix.verify import verify_manifest

    manifest_dir, audio = tmp_path / "m", tmp_path / "audio"
    _build(corpus_inputs, manifest_dir, seed=0)
    render_manifest(manifest_dir, audio, stems=True, progress=False)
    _build(corpus_inputs, manifest_dir, seed=1)  # same mixture ids, other draws
    stale = verify_manifest(manifest_dir, renders=audio, progress=False)
    assert any("stale" in line for line in stale)  # nothing passes for the old audio; its stems
    assert all("stale" in line or "the stems measure" in line for line in stale)  # measure the old SNRs
    with pytest.raises(S.ManifestError, match="made from another version of their manifest row"):
        load_renders(audio, load_manifest(manifest_dir))  # what dat reads its audio through
    render_manifest(manifest_dir, audio, stems=True, progress=False)
    assert verify_manifest(manifest_dir, renders=audio, progress=False) == []
    table = load_renders(audio, load_manifest(manifest_dir))
    built = json.loads((manifest_dir / S.INFO_FILE).read_text())["fingerprints"]["mixtures"]
    assert (table[S.MANIFEST_FINGERPRINT] == built).all()  # every record names the manifest it is current for
    rows = load_manifest(manifest_dir).mixtures.set_index(S.MIXTURE_ID)
    noisy = table[(table[S.STEM] == "mixture") & table[S.MIXTURE_ID].map(rows[S.NOISE_SOURCE_ID]).ne("")]
    measured = noisy[S.MEASURED_SNR_DB].to_numpy()
    assert np.allclose(measured, noisy[S.MIXTURE_ID].map(rows[S.SNR_DB]).to_numpy(), atol=0.1)


def test_a_current_folder_renders_nothing_and_a_format_switch_replaces_the_files(built_manifest, tmp_path, capfd):
    audio = tmp_path / "audio"
    render_manifest(built_manifest, audio, fmt="flac", progress=False)
    before = {p: p.stat().st_mtime_ns for p in audio.rglob("*.flac")}
    render_manifest(built_manifest, audio, fmt="flac", progress=False)
    assert {p: p.stat().st_mtime_ns for p in audio.rglob("*.flac")} == before  # current: nothing rewritten
    capfd.readouterr()
    table = render_manifest(built_manifest, audio, fmt="wav", progress=False)
    assert not list(audio.rglob("*.flac")) and len(list(audio.rglob("*.wav"))) == len(table)
    assert capfd.readouterr().err.count("its row is rendered to .wav now") == len(before)
    assert table[S.OUTPUT_PATH].str.endswith(".wav").all()


def test_renders_of_mixtures_gone_from_the_manifest_are_removed_and_named(corpus_inputs, tmp_path, capfd):
    from noisemix import load_renders
    from noisemix.verify import verify_manifest

    manifest_dir, audio = tmp_path / "m", tmp_path / "audio"
    _build(corpus_inputs, manifest_dir, seed=0)
    render_manifest(manifest_dir, audio, progress=False)
    first = set(load_renders(audio)[S.MIXTURE_ID])
    _build(corpus_inputs, manifest_dir, seed=0, clean_references=False)  # the clean rows are gone
    orphans = verify_manifest(manifest_dir, renders=audio, progress=False)
    assert orphans and all("orphan" in line for line in orphans)
    capfd.readouterr()
    render_manifest(manifest_dir, audio, progress=False)
    gone = first - set(load_manifest(manifest_dir).mixtures[S.MIXTURE_ID])
    assert gone and capfd.readouterr().err.count("no longer in the manifest") == len(gone)
    assert not any(mid in p.name for p in audio.rglob("*.flac") for mid in gone)
    assert set(load_renders(audio)[S.MIXTURE_ID]) == first - gone
    assert verify_manifest(manifest_dir, renders=audio, progress=False) == []


def test_sharded_and_resumed_renders_keep_their_keys(corpus_inputs, tmp_path):
    from noisemix.render import render_keys
    from noisemix.verify import verify_manifest

    manifest_dir, audio = tmp_path / "m", tmp_path / "audio"
    _build(corpus_inputs, manifest_dir, seed=0)
    for index in range(2):
        render_manifest(manifest_dir, audio, shard=(index, 2), progress=False)
    _build(corpus_inputs, manifest_dir, seed=2)
    render_manifest(manifest_dir, audio, shard=(0, 2), progress=False)  # one shard re-rendered, one stale
    stale = verify_manifest(manifest_dir, renders=audio, progress=False)
    assert stale and all("stale" in line for line in stale)
    render_manifest(manifest_dir, audio, shard=(1, 2), progress=False)
    assert verify_manifest(manifest_dir, renders=audio, progress=False) == []
    from noisemix import load_renders

    keys = render_keys(load_manifest(manifest_dir), "flac")
    table = load_renders(audio)
    assert (table[S.RENDER_KEY] == table[S.MIXTURE_ID].map(keys)).all()


def test_a_rebuild_refreshes_the_card_it_finds_and_leaves_other_readmes_alone(corpus_inputs, tmp_path):
    from noisemix.card import write_card

    manifest_dir = _build(corpus_inputs, tmp_path / "m", seed=0)
    card = write_card(manifest_dir)
    _build(corpus_inputs, manifest_dir, seed=1)
    fingerprint = json.loads((manifest_dir / S.INFO_FILE).read_text())["fingerprints"]["mixtures"]
    assert fingerprint in card.read_text() and "seed 1" in card.read_text()
    other = _build(corpus_inputs, tmp_path / "o", seed=0)
    (other / "README.md").write_text("# my notes\n")
    _build(corpus_inputs, other, seed=1)
    assert (other / "README.md").read_text() == "# my notes\n"


def test_stems_of_a_changed_row_are_removed_when_the_rerun_writes_none(corpus_inputs, tmp_path):
    manifest_dir, audio = tmp_path / "m", tmp_path / "audio"
    _build(corpus_inputs, manifest_dir, seed=0)
    render_manifest(manifest_dir, audio, stems=True, progress=False)
    assert list(audio.rglob("*.clean.flac"))
    _build(corpus_inputs, manifest_dir, seed=1)
    render_manifest(manifest_dir, audio, stems=False, progress=False)
    # the noisy rows changed: their stems are gone; the clean rows did not (the seed draws
    # noise, not the clips' level), so their renders, stems included, are still current
    assert not list(audio.rglob("*.noise.flac"))
    assert {p.name.split(".")[0] for p in audio.rglob("*.clean.flac")} == set(
        load_manifest(manifest_dir).mixtures.query("noise_source_id == ''")["mixture_id"])
    assert verify_manifest(manifest_dir, renders=audio, progress=False) == []


def test_verify_remeasures_the_snr_from_the_stems(built_manifest, rendered, tmp_path):
    import shutil

    out, table = rendered
    copy = tmp_path / "audio"
    shutil.copytree(out, copy)
    assert verify_manifest(built_manifest, renders=copy, progress=False) == []
    record = table[(table[S.STEM] == "noise")].iloc[0]
    noise, rate = sf.read(copy / record[S.OUTPUT_PATH], dtype="int16")
    sf.write(copy / record[S.OUTPUT_PATH], (noise // 2).astype("int16"), rate, subtype="PCM_16")  # 6 dB quieter
    lines = verify_manifest(built_manifest, renders=copy, progress=False)
    assert any("the stems measure" in line and record[S.MIXTURE_ID] in line for line in lines)
