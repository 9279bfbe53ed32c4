"""One mixing kernel: every path from a manifest row to samples gives the same samples.

The paths are the block renderer (``noisemix render``), the whole-row mixer
(:meth:`Mixer.mix`, :meth:`Mixer.stems`, used by the trainer and ``MixtureDataset``),
windows of it (the trainer's random crops) and :func:`noisemix.mix_at_snr`. The manifests
below cover what the kernel does: crops and crossfaded loops, concatenated noise, both
level policies, the clipping guard and clipping itself (``clip_policy none`` at negative
SNRs), and noise and mixture transforms. The pinned digests were first taken before the kernel
was merged into one function (its arithmetic, and so every rendered byte, came through
unchanged), and taken again when the synthetic corpus's pitches were mended (its input
changed, not the kernel); later refactors must keep them.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from noisemix import dsp
from noisemix import schema as S
from noisemix.build import build_manifest
from noisemix.manifest import load_manifest
from noisemix.mix import Mixer, is_elementwise
from noisemix.render import _Job, _render_in_blocks, _render_transformed, render_manifest
from noisemix.spec import BuildSpec, parse_snr
from noisemix.transforms import parse_transform

VARIANTS = {
    "loop-match-clean": dict(mixtures_per_segment=2),
    "clipping": dict(level="as-mixed", clip_policy="none", snr=parse_snr("-15:-5"), mixtures_per_segment=2),
    "guarded": dict(level="as-mixed", snr=parse_snr("-15:-5"), mixtures_per_segment=2),
    "concat": dict(noise_fill="concat", segment_frames=None, max_segments_per_clip=1),
    "transforms": dict(
        noise_transforms=(parse_transform("HighPassFilter:min_cutoff_freq=200,max_cutoff_freq=800,p=1.0"),),
        mixture_transforms=(parse_transform("Gain:min_gain_db=0,max_gain_db=12,p=1.0"),
                            parse_transform("LowPassFilter:p=0.5")), mixtures_per_segment=2),
}
EXPECTED_COVERAGE = {
    "loop-match-clean": {"clean row", "noisy row", "looped", "cropped"},
    "clipping": {"noisy row", "looped", "cropped", "clipped"},
    "guarded": {"noisy row", "looped", "cropped", "within full scale"},
    "concat": {"noisy row", "concatenated"},
    "transforms": {"clean row", "noisy row", "looped", "cropped", "transformed"},
}
# sha256 over the sorted (path, sha256) of every rendered WAV file (mixtures and stems).
PINNED = {
    "clipping": "73acca0f440553343e62697333ad7422201c82e60a0f7bdc403f0119b739070e",
    "concat": "2c8156644f66df3b57d2d24b9a61456bc0732c827b6d105356dad23bbbaaf1ac",
    "guarded": "5f13cd26e060b51d6610e193702c1e0592e319dc91974161ea43965a3b33bbeb",
    "loop-match-clean": "0defad79ca0b83041da07191de64c37090368d27a1070ec6ea4df3e9e964f947",
    "transforms": "6008570b51a8b02dc1b52cb856b15382cc17913081d0fc606f16a485e971741a",
}


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def variant(request, tmp_path_factory, corpus_inputs):
    out = tmp_path_factory.mktemp(request.param)
    build_manifest(corpus_inputs, BuildSpec(seed=11, **VARIANTS[request.param]), out, progress=False)
    return request.param, out


def renders_digest(table) -> str:
    lines = sorted(f"{path} {sha}" for path, sha in zip(table[S.OUTPUT_PATH], table[S.SHA256]))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def test_rendered_bytes_are_the_pinned_ones(variant, tmp_path):
    name, manifest_dir = variant
    table = render_manifest(manifest_dir, tmp_path / "audio", stems=True, fmt="wav", progress=False, loudness=False)
    assert renders_digest(table) == PINNED[name]


def test_every_path_gives_the_samples_of_the_kernel(variant):
    """Every row, with seeded random blocks and windows: the block renderer (small blocks, a partial last
    one), the whole-row mixer, its stems, and windows of it agree to the sample."""
    name, manifest_dir = variant
    manifest = load_manifest(manifest_dir)
    mixer = Mixer(manifest)
    job = _Job(str(manifest_dir), {}, "", stems=True, fmt="wav", loudness=False, cache_dir=None)
    rows = manifest.mixtures
    rng = np.random.default_rng(sum(map(ord, name)))
    covered = set()
    for position in range(len(rows)):
        row = job.row(position)
        clean, noise, mixture = mixer.mixed(row)
        covered |= {"clean row" if noise is None else "noisy row", "looped" if row[S.NOISE_LOOPED] else "cropped",
                    "clipped" if np.max(np.abs(mixture)) > 1.0 else "within full scale"}
        covered |= {"concatenated"} if len(row[S.NOISE_NEXT_IDS]) else set()
        covered |= set() if is_elementwise(row) else {"transformed"}
        if is_elementwise(row):
            outputs, _ = _render_in_blocks(mixer, row, True, block=int(rng.integers(500, 5000)))
        else:
            outputs, _ = _render_transformed(mixer, row, True)
        expected = {"mixture": mixture, "clean": clean} | ({} if noise is None else {"noise": noise})
        assert list(outputs) == list(expected)
        for stem, samples in expected.items():
            np.testing.assert_array_equal(outputs[stem], dsp.to_pcm16(samples), err_msg=f"{name} {stem}")
        np.testing.assert_array_equal(mixer.mix(row), mixture)
        start = int(rng.integers(0, mixture.size - 1))
        length = int(rng.integers(0, mixture.size - start))
        window = mixer.mixed(row, start, length)
        for part, whole in zip(window, (clean, noise, mixture)):
            assert (part is None) == (whole is None)
            if part is not None:
                np.testing.assert_array_equal(part, whole[start:start + length])
    assert covered >= EXPECTED_COVERAGE[name], covered
