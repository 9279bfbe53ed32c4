"""A manifest as a Lhotse ``CutSet``, built with Lhotse's own objects (``pip install lhotse``).

Each mixture becomes one cut whose ``load_audio()`` is our render of that row:

* every source is a ``Recording`` of its file (an absolute path: roots resolve as ``render``
  resolves them), resampled lazily to the manifest's rate where its own differs, and each
  track is that recording's segment at our offset (exact: offsets are samples at the
  manifest's rate, and a cut's sample index is ``round(seconds x rate)``);
* our exact linear gains are volume perturbations of the tracks (Lhotse's ``snr`` would
  rescale the noise by whole-track energies, which is not how a row's gains were drawn);
  the row's SNR is kept as a custom field instead;
* every row is a ``MixedCut``: a clean row's of its clean track alone, a noisy row's of the
  clean track and the noise, a looped noise as one track per repetition;
* a multi-channel source is a ``MultiCut`` scaled by 1 / channels: ``load_audio(mono_downmix
  =True)`` sums channels, which then is our mean;
* the row's fields (split, tags, SNR, category, source ids) are the first track's custom
  fields, so ``cut.tags`` and ``cut.custom["split"]`` read them on any cut.

What Lhotse cannot say is named per row in ``custom["noisemix_inexact"]``: the equal-power
crossfade at each loop or concatenation joint (the cut joins the pieces without one),
audiomentations transforms (the cut omits them) and resampling (Lhotse loads a segment
from the source sample nearest its start and resamples that segment, so the noise can be
shifted by a fraction of a source sample: broadband noise then differs audibly from ours).
A row without such a note is our float mixture (``Mixer.mix``) to float rounding. For the
others, ``--renders DIR`` exports cuts over the rendered files themselves, exact by
construction.
"""

from __future__ import annotations

from pathlib import Path

from .. import dsp
from .. import schema as S
from ..errors import NoisemixError
from ..io import atomic_path
from ..manifest import Manifest
from ..mix import is_elementwise
from .fields import complete_renders, row_fields

__all__ = ["lhotse_cuts", "write_cutset", "inexact_counts", "INEXACT"]

INEXACT = "noisemix_inexact"  # custom field: why this cut's audio is not our render's (absent when it is)


def _lhotse():
    try:
        import lhotse
    except ImportError:
        raise NoisemixError("--format lhotse needs Lhotse: pip install 'noisemix-dat[lhotse]' (or pip install lhotse)") from None
    return lhotse


def lhotse_cuts(manifest: Manifest, renders: Path | None = None):
    """The manifest's mixtures as a ``lhotse.CutSet`` (manifest order): mixed from the sources
    (see the module docstring) or, with ``renders``, over the rendered mixture files."""
    _lhotse()
    if renders is not None:
        return _rendered_cuts(manifest, Path(renders))
    builder = _CutBuilder(manifest)
    from lhotse import CutSet

    return CutSet.from_cuts(builder.cut(row) for row in manifest.mixtures.to_dict("records"))


def write_cutset(cuts, out: Path) -> None:
    """``CutSet.to_jsonl``, atomically (``.jsonl.gz`` compresses: Lhotse reads the name)."""
    with atomic_path(out, keep_suffix=True) as temporary:
        cuts.to_jsonl(temporary)


def inexact_counts(cuts) -> dict[str, int]:
    """How many cuts carry each reason for not being our render (one count per reason)."""
    counts: dict[str, int] = {}
    for cut in cuts:
        for reason in filter(None, (cut.custom or {}).get(INEXACT, "").split("; ")):
            counts[reason] = counts.get(reason, 0) + 1
    return counts


class _CutBuilder:
    def __init__(self, manifest: Manifest):
        self.manifest = manifest
        self.rate = manifest.sample_rate
        self.crossfade_s = float(manifest.spec.get("crossfade_s", dsp.DEFAULT_CROSSFADE_S))
        self._recordings = {}

    def recording(self, source_id: str):
        """The source's file at the manifest's rate (one object per source, shared by its cuts)."""
        if source_id not in self._recordings:
            from lhotse import AudioSource, Recording

            source = self.manifest.sources.loc[source_id]
            rate, frames = int(source[S.SOURCE_SAMPLE_RATE]), int(source[S.SOURCE_FRAMES])
            channels = list(range(int(source[S.CHANNELS])))
            recording = Recording(id=source_id, sampling_rate=rate, num_samples=frames, duration=frames / rate,
                                  sources=[AudioSource(type="file", channels=channels,
                                                       source=str(self.manifest.source_path(source_id)))])
            self._recordings[source_id] = recording.resample(self.rate)
        return self._recordings[source_id]

    def track(self, source_id: str, start: int, length: int, gain: float, cut_id: str, custom=None):
        """Samples ``[start, start + length)`` of the source at the manifest's rate, times ``gain``."""
        from lhotse import MonoCut, MultiCut

        recording = self.recording(source_id)
        channels = recording.num_channels
        kind, channel = (MonoCut, 0) if channels == 1 else (MultiCut, list(range(channels)))
        cut = kind(id=cut_id, start=start / self.rate, duration=length / self.rate, channel=channel,
                   recording=recording, custom=custom)
        return cut.perturb_volume(float(gain) / channels, affix_id=False)

    def cut(self, row):
        mid, length = row[S.MIXTURE_ID], int(row[S.NUM_FRAMES])
        custom, inexact, pieces = row_fields(row), [], []
        if not is_elementwise(row):
            inexact.append("audiomentations transforms are not applied")
        if not S.is_clean_reference(row[S.NOISE_SOURCE_ID]):
            pieces = self.noise_pieces(row, length, inexact)
        rates = sorted({int(self.manifest.sources.loc[i, S.SOURCE_SAMPLE_RATE])
                        for i in [row[S.CLEAN_SOURCE_ID], *(piece[0] for piece in pieces)]} - {self.rate})
        if rates:  # Lhotse resamples each segment from the nearest source sample: a sub-sample shift
            inexact.append(f"resampled by Lhotse from {'/'.join(map(str, rates))} Hz per segment (noisemix: "
                           "soxr over the whole file)")
        if inexact:
            custom[INEXACT] = "; ".join(inexact)
        clean = self.track(row[S.CLEAN_SOURCE_ID], int(row[S.CLEAN_OFFSET]), length, row[S.CLEAN_GAIN],
                           f"{mid}-clean", custom)
        from lhotse.cut import MixedCut, MixTrack

        # Every cut is a MixedCut (a clean row's of one track), so load_audio(mono_downmix=True)
        # gives any row's mono audio, whatever its sources' channels.
        noise = [MixTrack(cut=self.track(source_id, start, size, row[S.NOISE_GAIN], f"{mid}-noise-{k}"),
                          offset=position / self.rate)
                 for k, (source_id, start, size, position) in enumerate(pieces)]
        return MixedCut(id=mid, tracks=[MixTrack(cut=clean), *noise])

    def noise_pieces(self, row, length: int, inexact: list[str]) -> list[tuple[str, int, int, int]]:
        """(source id, start, samples, position in the mixture) of each stretch of noise; what
        the pieces leave out (the crossfades at their joints) is added to ``inexact``."""
        source_id, offset = row[S.NOISE_SOURCE_ID], int(row[S.NOISE_OFFSET])
        following = list(row[S.NOISE_NEXT_IDS])
        if following:
            return self._concat_pieces([source_id, *following], offset, length, inexact)
        if not row[S.NOISE_LOOPED]:
            return [(source_id, offset, length, 0)]
        size = self.recording(source_id).num_samples
        crossfade = dsp.crossfade_length(size, self.rate, self.crossfade_s)
        period = size - crossfade  # as dsp.loop_to_length repeats it
        pieces, position, start = [], 0, offset % period
        while position < length:
            take = min(period - start, length - position)
            pieces.append((source_id, start, take, position))
            position, start = position + take, 0
        if crossfade:
            inexact.append(f"loop crossfades ({crossfade} samples each) are hard joins")
        return pieces

    def _concat_pieces(self, source_ids: list[str], offset: int, length: int, inexact: list[str]):
        """The pieces as :func:`dsp.concat_to_length` places them, each joint a hard join."""
        sizes = [self.recording(i).num_samples for i in source_ids]
        sizes[0] -= offset
        overlaps = dsp.concat_overlaps(sizes, dsp.crossfade_samples(self.rate, self.crossfade_s))
        pieces, position = [], 0
        for k, (source_id, size, overlap) in enumerate(zip(source_ids, sizes, overlaps)):
            if position >= length:
                break
            count = min(size - int(overlap), length - position)
            pieces.append((source_id, (offset if k == 0 else 0) + int(overlap), count, position))
            position += count
        if overlaps[1:len(pieces)].any():
            inexact.append("concatenation crossfades are hard joins")
        return pieces


def _rendered_cuts(manifest: Manifest, renders: Path):
    """A cut per rendered mixture file (exact by construction), with the row's fields."""
    from lhotse import AudioSource, CutSet, MonoCut, Recording
    from lhotse.cut import MixedCut, MixTrack

    paths = complete_renders(manifest, renders)[S.STEM_MIXTURE]
    rate, folder = manifest.sample_rate, renders.resolve()

    def cut(row):
        frames = int(row[S.NUM_FRAMES])
        recording = Recording(id=row[S.MIXTURE_ID], sampling_rate=rate, num_samples=frames, duration=frames / rate,
                              sources=[AudioSource(type="file", channels=[0],
                                                   source=str(folder / paths[row[S.MIXTURE_ID]]))])
        file_cut = MonoCut(id=f"{row[S.MIXTURE_ID]}-render", start=0.0, duration=frames / rate, channel=0,
                           recording=recording, custom=row_fields(row))
        return MixedCut(id=row[S.MIXTURE_ID], tracks=[MixTrack(cut=file_cut)])  # read as every other export's

    return CutSet.from_cuts(cut(row) for row in manifest.mixtures.to_dict("records"))
