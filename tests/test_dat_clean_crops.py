"""Issue 24's data path: each unlabelled target crop comes with the clean music of the very
same window, at its clip's level, mixed on the fly (no labels on the noisy side)."""

import numpy as np
import pytest

from dat.data import ClipDataset, MixedAudio, crop_start, target_rows
from dat.errors import DatError
from noisemix import dsp, load_manifest
from noisemix import schema as S
from noisemix.mix import Mixer

LENGTH = 4096


def test_target_crops_carry_the_aligned_clean_music_at_the_clips_level(built_manifest, tmp_path):
    manifest = load_manifest(built_manifest)
    assert manifest.info["spec"]["level"] == "match-clean"
    rows = target_rows(manifest, "train")
    dataset = ClipDataset(rows, MixedAudio(manifest, tmp_path / "cache"), LENGTH, "target", 0, None, with_clean=True)
    mixer = Mixer(manifest)
    references = manifest.mixtures[manifest.mixtures[S.NOISE_CATEGORY] == ""].set_index([S.CLEAN_SOURCE_ID,
                                                                                          S.CLEAN_OFFSET], drop=False)
    at_reference_level = 0
    for index in range(min(len(rows), 8)):
        item = dataset[(index, 1)]
        row = rows.iloc[index]
        assert "labels" not in item and item["clean_audio"].shape == item["audio"].shape == (LENGTH,)
        total = int(row[S.NUM_FRAMES])
        start = crop_start(0, "target", 1, row[S.MIXTURE_ID], total, min(total, LENGTH))
        clean_stem, noise_stem = mixer.stems(row)
        window = slice(start, start + LENGTH)
        scale = float(dsp.level_match_scale(row[S.SNR_DB]))
        # the clean part of this very mixture window, undone of the SNR's level match
        assert np.allclose(item["clean_audio"].numpy() * scale, clean_stem[window], rtol=1e-5, atol=1e-7)
        assert np.allclose(item["audio"].numpy(), clean_stem[window] + noise_stem[window], atol=1e-6)
        reference = references.loc[(row[S.CLEAN_SOURCE_ID], row[S.CLEAN_OFFSET])]  # the segment's clean row
        if row[S.CLEAN_GAIN] == pytest.approx(reference[S.CLEAN_GAIN] * scale, rel=1e-8):
            clean_row = mixer.mix(reference, start, LENGTH)  # the clip's clean copy, same window
            assert np.allclose(item["clean_audio"].numpy(), clean_row, rtol=1e-5, atol=1e-7)
            at_reference_level += 1
    assert at_reference_level >= 1


@pytest.mark.parametrize("stems", [True, False])
def test_clean_crops_come_from_rendered_clean_stems_as_from_mixing(built_manifest, tmp_path, stems):
    from dat.data import RenderedAudio
    from noisemix.render import render_manifest

    manifest = load_manifest(built_manifest)
    rows = target_rows(manifest, "train").head(6)
    render_manifest(built_manifest, tmp_path / "audio", stems=stems, progress=False)
    rendered = ClipDataset(rows, RenderedAudio(manifest, tmp_path / "audio"), LENGTH, "target", 0, None,
                           with_clean=True)
    if not stems:
        with pytest.raises(DatError, match="no rendered clean file .*with --stems"):
            rendered[(0, 1)]
        return
    mixed = ClipDataset(rows, MixedAudio(manifest, tmp_path / "cache"), LENGTH, "target", 0, None, with_clean=True)
    for index in range(len(rows)):
        a, b = rendered[(index, 1)], mixed[(index, 1)]
        scale = float(dsp.level_match_scale(rows.iloc[index][S.SNR_DB]))
        # 16-bit stems: within one quantisation step of the stem, undone of the level match
        np.testing.assert_allclose(a["clean_audio"].numpy(), b["clean_audio"].numpy(), atol=1.01 / 32768 / scale)
        np.testing.assert_allclose(a["audio"].numpy(), b["audio"].numpy(), atol=1.01 / 32768)
