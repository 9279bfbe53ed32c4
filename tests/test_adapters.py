"""Corpus adapters against small folders laid out like the real MTAT, MUSAN and ESC-50.

The MTAT clips, paths, split and valid/test labels are taken from the public index of
Pons et al. committed in tests/data/mtat-pons2017; the audio is synthetic.
"""

from __future__ import annotations

import ast
import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from noisemix import schema as S
from noisemix.adapters import ADAPTERS, get_adapter, mtat
from noisemix.errors import NoisemixError
from noisemix.cli_inputs import corpus_inputs
from noisemix.sources import scan

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / "tests" / "data" / "mtat-pons2017"  # the public index files, committed
CLIPS = REPO / "manifests" / "mtat-pons2017" / "clips.csv"
# Some of MTAT's other (non top-50) tag columns, misspellings included as in the dataset.
OTHER_TAGS = ("no voice", "singer", "duet", "plucking", "hard rock", "world", "bongos", "harpsicord", "clasical")
TRAIN_CLIP_IDS = (2, 35644)          # filled in from the index: one normal train clip and a corrupt one


def _tone(seconds: float, rate: int, seed: int) -> np.ndarray:
    generator = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    return (0.2 * np.sin(2 * np.pi * (110 + 40 * seed) * t) + 0.05 * generator.standard_normal(t.size)).astype("float32")


def _index() -> pd.DataFrame:
    return pd.read_csv(SHARED / "index_mtt.tsv", sep="\t", header=None, names=["clip_id", "path"])


def _gt(name: str) -> dict[int, list[str]]:
    table = pd.read_csv(SHARED / name, sep="\t", header=None, names=["clip_id", "vector"])
    return {int(c): [mtat.TOP50[j] for j, v in enumerate(ast.literal_eval(x)) if v > 0.5]
            for c, x in zip(table["clip_id"], table["vector"])}


def pick_mtat_clips() -> pd.DataFrame:
    """Train clips from folders 0, a and b, one corrupt id, valid clips (one untagged) and test clips d-f."""
    index = _index()
    valid, test = _gt("val_gt_mtt.tsv"), _gt("test_gt_mtt.tsv")
    rows = []
    for folder in "0ab":
        clip = index[index["path"].str.startswith(folder + "/")].iloc[0]
        rows.append((int(clip["clip_id"]), clip["path"], ["guitar", "rock"] if folder == "0" else ["piano"]))
    corrupt = index[index["clip_id"] == mtat.CORRUPT_CLIP_IDS[0]].iloc[0]
    rows.append((int(corrupt["clip_id"]), corrupt["path"], ["slow"]))
    tagged_valid = [c for c, tags in valid.items() if tags][:2]
    untagged_valid = [c for c, tags in valid.items() if not tags][:1]
    for clip_id in tagged_valid + untagged_valid:
        rows.append((clip_id, index.loc[index["clip_id"] == clip_id, "path"].iloc[0], valid[clip_id]))
    for folder in "def":
        clip_id = next(c for c, tags in test.items() if tags and
                       index.loc[index["clip_id"] == c, "path"].iloc[0].startswith(folder + "/"))
        rows.append((clip_id, index.loc[index["clip_id"] == clip_id, "path"].iloc[0], test[clip_id]))
    return pd.DataFrame(rows, columns=["clip_id", "path", "tags"])


def make_mtat(folder: Path, seconds: float = 3.0) -> pd.DataFrame:
    """ROOT/annotations_final.csv (tab-separated, quoted) and ROOT/<0-f>/<name>.mp3."""
    clips = pick_mtat_clips()
    columns = ["clip_id", *OTHER_TAGS[:4], *mtat.TOP50, *OTHER_TAGS[4:], "mp3_path"]
    records = []
    for n, (clip_id, path, tags) in enumerate(clips.itertuples(index=False)):
        record = {c: "0" for c in columns}
        record.update({"clip_id": str(clip_id), "mp3_path": path, **{t: "1" for t in tags}, "singer": str(n % 2)})
        records.append(record)
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if clip_id in mtat.CORRUPT_CLIP_IDS:
            target.write_bytes(b"")   # as in the public copies: unusable audio
        else:
            sf.write(target, _tone(seconds, 16000, n), 16000, format="MP3")
    pd.DataFrame(records, columns=columns).to_csv(folder / "annotations_final.csv", sep="\t", index=False,
                                                  quoting=csv.QUOTE_ALL)
    return clips


def make_musan(folder: Path, seconds: float = 1.5) -> None:
    """ROOT/{music,noise,speech}/<subset>/<id>.wav at 16 kHz with ANNOTATIONS per subset."""
    layout = {
        ("music", "fma"): [("music-fma-0000", "Rock N artist_a composer_a"), ("music-fma-0001", "Rock N artist_a composer_a"),
                           ("music-fma-0002", "Jazz Y artist_b composer_b")],
        ("music", "jamendo"): [("music-jamendo-0000", "Pop Y artist_c composer_c"), ("music-jamendo-0001", "Pop N artist_d composer_d")],
        ("noise", "free-sound"): [(f"noise-free-sound-{i:04d}", f"http://www.freesound.org/people/x/sounds/{i}/") for i in range(3)],
        ("noise", "sound-bible"): [("noise-sound-bible-0000", "http://soundbible.com/0-x.html")],
        ("speech", "librivox"): [("speech-librivox-0000", "spk01 en M"), ("speech-librivox-0001", "spk01 en M"),
                                 ("speech-librivox-0002", "spk02 en F"), ("speech-librivox-0003", "spk03 en F")],
        ("speech", "us-gov"): [("speech-us-gov-0000", "en"), ("speech-us-gov-0001", "en")],
    }
    seed = 100
    for (name, subset), entries in layout.items():
        base = folder / name / subset
        base.mkdir(parents=True, exist_ok=True)
        (base / "ANNOTATIONS").write_text("".join(f"{i} {rest}\n" for i, rest in entries))
        for file_id, _ in entries:
            seed += 1
            sf.write(base / f"{file_id}.wav", _tone(seconds, 16000, seed), 16000, subtype="PCM_16")


def make_esc50(folder: Path, seconds: float = 1.0) -> pd.DataFrame:
    """ROOT/meta/esc50.csv and ROOT/audio/<fold>-<src>-<take>-<target>.wav (44.1 kHz)."""
    rows = []
    for fold in range(1, 6):
        for src, take, target, category in ((f"{fold}0001", "A", 0, "dog"), (f"{fold}0001", "B", 0, "dog"),
                                            (f"{fold}0002", "A", 10, "rain")):
            rows.append({"filename": f"{fold}-{src}-{take}-{target}.wav", "fold": fold, "target": target,
                         "category": category, "esc10": "True", "src_file": src, "take": take})
    table = pd.DataFrame(rows)
    (folder / "meta").mkdir(parents=True, exist_ok=True)
    (folder / "audio").mkdir(parents=True, exist_ok=True)
    table.to_csv(folder / "meta" / "esc50.csv", index=False)
    for n, name in enumerate(table["filename"]):
        sf.write(folder / "audio" / name, _tone(seconds, 44100, 200 + n), 44100, subtype="PCM_16")
    return table


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    base = tmp_path_factory.mktemp("public")
    clips = make_mtat(base / "mtat")
    make_musan(base / "musan")
    make_esc50(base / "ESC-50-master")
    return base, clips


def _listing(name: str, folder: Path, **options):
    return get_adapter(name).listing(folder, options)


def test_committed_split_table_is_the_public_index(tmp_path):
    committed = pd.read_csv(CLIPS, dtype={"tags": str, "label_source": str}, keep_default_na=False)
    regenerated = mtat.split_table(SHARED)
    assert committed.astype(str).equals(regenerated.astype(str))
    assert committed["split"].value_counts().to_dict() == mtat.EXPECTED_COUNTS
    assert not committed["clip_id"].isin(mtat.CORRUPT_CLIP_IDS).any()
    assert (committed["path"].map(mtat.pons2017_split) == committed["split"]).all()
    labels = ast.literal_eval((SHARED / "output_labels_mtt.txt").read_text().split("=", 1)[1].strip())
    assert tuple(labels) == mtat.TOP50
    # The generator script is the committed command.
    out = tmp_path / "clips.csv"
    subprocess.run([sys.executable, "-m", "noisemix.adapters.mtat", "make-split-table", "--shared", SHARED, "--out", out],
                   check=True, cwd=REPO, capture_output=True)
    assert out.read_bytes() == CLIPS.read_bytes()


def test_mtat_split_tags_and_corrupt_clips(corpora):
    base, clips = corpora
    listing = _listing("mtat", base / "mtat", allow_partial=True)
    table = pd.read_csv(CLIPS, dtype=str, keep_default_na=False).set_index("path")
    expected = clips[~clips["clip_id"].isin(mtat.CORRUPT_CLIP_IDS)]
    assert listing.files == sorted(expected["path"])
    for path in listing.files:
        entry = listing.meta[path]
        assert entry["split"] == table.at[path, "split"]
        if entry["split"] != "train":   # the shared labels exist for valid and test
            assert ";".join(entry["tags"]) == table.at[path, "tags"]
        assert entry["group"].startswith("mtat/") and not entry["group"].endswith(".mp3")
    assert any(not listing.meta[p]["tags"] for p in listing.files)      # untagged clips are kept
    assert any("partial copy" in n and "25,860" not in n and "18,706" in n for n in listing.notes)
    dropped = _listing("mtat", base / "mtat", allow_partial=True, untagged="drop")
    assert len(dropped.files) == len(listing.files) - 1


def test_mtat_partial_copy_and_layout_errors(corpora, tmp_path):
    base, _ = corpora
    with pytest.raises(NoisemixError, match=r"pons2017 has 18,706 / 1,825 / 5,329.*allow_partial = true"):
        _listing("mtat", base / "mtat")
    with pytest.raises(NoisemixError, match="annotations_final.csv: not found; mtat expects the layout"):
        _listing("mtat", tmp_path)
    copy = tmp_path / "copy"
    make_mtat(copy)
    victim = sorted(copy.glob("c/*.mp3"))[0]
    victim.unlink()
    notes = _listing("mtat", copy, allow_partial=True).notes
    assert any("1 of 9 listed file(s) missing" in n and victim.name in n for n in notes)
    # A complete annotations_final.csv with a partial audio copy: the missing clips are named.
    index = _index()
    full = pd.DataFrame({"clip_id": index["clip_id"], **{t: 0 for t in mtat.TOP50}, "mp3_path": index["path"]})
    full.to_csv(copy / "annotations_final.csv", sep="\t", index=False, quoting=csv.QUOTE_ALL)
    with pytest.raises(NoisemixError, match=r"mtat: 25,85\d of 25,860 listed file\(s\) missing under .*: f/.*allow_partial"):
        _listing("mtat", copy)
    (copy / "annotations_final.csv").write_text('"clip_id"\t"guitar"\t"mp3_path"\n"1"\t"0"\t"0/x.mp3"\n')
    with pytest.raises(NoisemixError, match="missing column"):
        _listing("mtat", copy, allow_partial=True)
    with pytest.raises(NoisemixError, match="unknown option.*untaged"):
        _listing("mtat", copy, untaged="drop")


def test_musan_categories_groups_and_partial_copies(corpora, tmp_path):
    base, _ = corpora
    listing = _listing("musan", base / "musan")
    assert len(listing.files) == 15 and not listing.notes
    meta = listing.meta
    assert {m["category"] for m in meta.values()} == set(S.CATEGORIES)
    assert meta["noise/free-sound/noise-free-sound-0000.wav"]["category"] == "environmental"
    assert meta["music/fma/music-fma-0000.wav"]["group"] == meta["music/fma/music-fma-0001.wav"]["group"]
    assert meta["speech/librivox/speech-librivox-0000.wav"]["group"] == meta["speech/librivox/speech-librivox-0001.wav"]["group"]
    assert meta["speech/us-gov/speech-us-gov-0000.wav"]["group"] != meta["speech/us-gov/speech-us-gov-0001.wav"]["group"]
    assert meta["speech/us-gov/speech-us-gov-0000.wav"]["subcategory"] == "us-gov"
    copy = tmp_path / "musan"
    make_musan(copy)
    (copy / "speech" / "librivox" / "speech-librivox-0003.wav").unlink()
    with pytest.raises(NoisemixError, match="musan: 1 of 4 listed file.*speech-librivox-0003.wav.*allow_partial"):
        _listing("musan", copy)
    assert any("partial copy" in n for n in _listing("musan", copy, allow_partial=True).notes)
    (copy / "music" / "fma" / "ANNOTATIONS").unlink()
    with pytest.raises(NoisemixError, match="ANNOTATIONS: not found; musan expects the layout"):
        _listing("musan", copy, allow_partial=True)
    with pytest.raises(NoisemixError, match="no music/, noise/ or speech/ folder"):
        _listing("musan", copy / "music")


def test_esc50_folds_classes_and_groups(corpora, tmp_path):
    base, _ = corpora
    listing = _listing("esc50", base / "ESC-50-master")
    meta = listing.meta
    assert len(listing.files) == 15
    assert {m["split"] for p, m in meta.items() if p.startswith("audio/4-")} == {"valid"}
    assert {m["split"] for p, m in meta.items() if p.startswith("audio/5-")} == {"test"}
    assert meta["audio/1-10001-A-0.wav"]["group"] == meta["audio/1-10001-B-0.wav"]["group"] == "esc50/10001"
    assert meta["audio/1-10002-A-10.wav"]["subcategory"] == "rain"
    custom = _listing("esc50", base / "ESC-50-master", train_folds="1,2", valid_folds="3", test_folds=[4, 5])
    assert custom.meta["audio/3-30001-A-0.wav"]["split"] == "valid"
    with pytest.raises(NoisemixError, match="fold 4 is in both"):
        _listing("esc50", base / "ESC-50-master", train_folds=[1, 2, 3, 4])
    bad = tmp_path / "esc"
    (bad / "meta").mkdir(parents=True)
    (bad / "meta" / "esc50.csv").write_text("filename,fold,target\n1-1-A-0.wav,1,0\n")
    with pytest.raises(NoisemixError, match="missing column.*expected the header filename,fold,target,category,esc10,src_file,take"):
        _listing("esc50", bad)


def test_csv_adapter_and_duplicates_by_hash(tmp_path):
    folder = tmp_path / "corpus"
    (folder / "a").mkdir(parents=True)
    for n, name in enumerate(("a/x.wav", "a/y.wav", "z.wav")):
        sf.write(folder / name, _tone(1.0, 16000, 300 + n), 16000, subtype="PCM_16")
    (folder / "a" / "copy_of_x.wav").write_bytes((folder / "a" / "x.wav").read_bytes())
    (folder / "unlisted.wav").write_bytes((folder / "z.wav").read_bytes())
    (folder / "index.csv").write_text("path,tags,group,split\na/x.wav,rock;pop,g1,train\na/y.wav,jazz,g2,test\n"
                                      "a/copy_of_x.wav,rock,g3,valid\n")
    result = scan(corpus_inputs([f"csv:mine={folder}"], []), progress=False)
    assert sorted(result.sources[S.PATH]) == ["a/copy_of_x.wav", "a/x.wav", "a/y.wav"]   # the table is the authority
    assert set(result.sources[S.ROOT]) == {"mine"}
    row = result.sources.set_index(S.PATH).loc["a/x.wav"]
    assert list(row[S.TAGS]) == ["rock", "pop"] and row[S.GROUP] == "g1" and row[S.SPLIT] == "train"
    assert any("duplicate files" in n and "mine:a/copy_of_x.wav" in n and "mine:a/x.wav" in n for n in result.notes)
    (folder / "index.csv").write_text("path,tags,colour\na/x.wav,rock,red\n")
    with pytest.raises(NoisemixError, match="columns must be path and any of"):
        scan(corpus_inputs([f"csv={folder}"], []), progress=False)


def test_scan_cli_names_roots_by_adapter_and_refuses_wrong_roles(corpora, tmp_path):
    base, _ = corpora
    out = tmp_path / "sources.parquet"
    run = subprocess.run([sys.executable, "-c", "import noisemix.cli as c; c.main()", "scan",
                          "--clean", f"mtat={base / 'mtat'}", "--noise", f"esc50={base / 'ESC-50-master'}",
                          "--corpus-option", "mtat.allow_partial=true", "--out", str(out)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    sources = pd.read_parquet(out)
    assert set(sources[S.ROOT]) == {"mtat", "esc50"}
    assert set(sources.loc[sources[S.ROOT] == "esc50", S.SUBCATEGORY]) == {"dog", "rain"}
    assert "partial copy: mtat" in run.stdout
    for args, message in (
        (["--clean", f"musan={base / 'musan'}"], "musan is a noise corpus; give it as --noise musan=PATH"),
        (["--clean", f"mtat={base / 'mtat'}", "--noise", f"esc50={base / 'ESC-50-master'}"], "allow_partial = true"),
        (["--noise", f"musan={base / 'musan'}", "--corpus-option", "musan.allow_partal=1"], "unknown option"),
        (["--clean", f"mtat={base / 'musan'}"], "annotations_final.csv: not found"),
    ):
        run = subprocess.run([sys.executable, "-c", "import noisemix.cli as c; c.main()", "scan", *args, "--out", str(out)],
                             capture_output=True, text=True)
        assert run.returncode == 2 and message in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr


def test_every_adapter_documents_layout_and_licence():
    for adapter in ADAPTERS.values():
        assert adapter.layout and adapter.licence and adapter.title


def test_option_values_are_refused_when_read_not_when_listing():
    from noisemix.adapters import parse_options

    with pytest.raises(NoisemixError, match="untagged='dorp': choose keep or drop"):
        parse_options(ADAPTERS["mtat"], {"untagged": "dorp"})
    with pytest.raises(NoisemixError, match="train_folds: fold 6 is not one of 1-5"):
        parse_options(ADAPTERS["esc50"], {"train_folds": "1,6"})
    with pytest.raises(NoisemixError, match="fold 3 is in both"):
        parse_options(ADAPTERS["esc50"], {"valid_folds": "3"})
    assert parse_options(ADAPTERS["mtat"], {"untagged": "drop"})["untagged"] == "drop"


def test_option_files_are_relative_to_the_corpus_folder(tmp_path):
    copy = tmp_path / "mtat"
    make_mtat(copy)
    (copy / "labels").mkdir()
    (copy / "annotations_final.csv").rename(copy / "labels" / "tags.csv")
    listing = _listing("mtat", copy, annotations="labels/tags.csv", allow_partial=True)
    assert len(listing.files) == len(pick_mtat_clips()) - 1  # all but the corrupt clip
    folder = tmp_path / "speech"
    (folder / "meta").mkdir(parents=True)
    for name in ("a.wav", "b.wav"):
        sf.write(folder / name, _tone(1.0, 16000, 400), 16000, subtype="PCM_16")
    (folder / "index.tsv").write_text("path\tgroup\na.wav\tg1\n")
    assert _listing("csv", folder).meta == {"a.wav": {"group": "g1"}}
    (folder / "meta" / "list.csv").write_text("path,category\na.wav,\nb.wav,music\n")
    meta = _listing("csv", folder, table="meta/list.csv", category="speech").meta
    assert meta == {"a.wav": {"category": "speech"}, "b.wav": {"category": "music"}}  # the table's own value wins


def test_adapter_roots_take_the_name_given_before_the_path(corpora):
    base, _ = corpora
    (noise,) = corpus_inputs([], [f"musan:m={base / 'musan'}"])
    assert (noise.root_name, noise.adapter, noise.role) == ("m", "musan", "noise")
