"""The manifest contract: column names, types, schema versions and the keys of manifest.json.

This module is the only place that spells a manifest column name. Everything else,
inside noisemix and in ``dat``, refers to the constants below.

A manifest is a directory with three files:

``sources.parquet``
    One row per audio file a build used (:data:`SOURCES_SCHEMA`).
``mixtures.parquet``
    One row per mixture (:data:`MIXTURES_SCHEMA`). A row with an empty
    ``noise_source_id`` is a clean reference (no noise); every other row mixes
    ``clean_gain * clean[clean_offset : clean_offset + num_frames]`` with
    ``noise_gain * noise_segment``, where the noise segment starts at ``noise_offset``
    of the (looped when ``noise_looped``) noise source, or, where ``noise_next_ids`` is
    not empty (schema version 2), goes on into those recordings one after another,
    crossfaded (``--noise-fill concat``). All offsets and lengths (``num_frames``) are in
    samples at the manifest's ``sample_rate``, after downmix to mono and resampling; a
    source's own length at its own rate is ``source_frames`` (``num_frames`` before
    schema version 3, read under the new name).
``manifest.json``
    Schema and tool versions, the fully resolved build spec, seed, resampler and
    input fingerprints (:data:`INFO_KEYS`).
"""

from __future__ import annotations

import math

import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "SCHEMA_VERSION", "SOURCES_SCHEMA", "MIXTURES_SCHEMA", "RENDERS_SCHEMA",
    "ROLES", "CATEGORIES", "SPLITS", "ManifestError", "INFO_KEYS",
]

SCHEMA_VERSION = 3  # the newest this noisemix reads; a manifest records the oldest that describes it

SOURCES_FILE = "sources.parquet"
MIXTURES_FILE = "mixtures.parquet"
INFO_FILE = "manifest.json"
RENDERS_FILE = "renders.parquet"
RENDERS_GLOB = "renders*.parquet"  # renders.parquet, or renders.shard-I-of-N.parquet per shard

ROLES = ("clean", "noise")
CATEGORIES = ("environmental", "speech", "music")
SPLITS = ("train", "valid", "test")

# --- sources.parquet -------------------------------------------------------------
SOURCE_ID = "source_id"          # stable id: hash of root name + relative path
ROOT = "root"                    # name of the root the path is relative to
PATH = "path"                    # POSIX path relative to the root, never absolute, no '..'
ROLE = "role"                    # 'clean' or 'noise'
CATEGORY = "category"            # noise category; '' for clean sources
SUBCATEGORY = "subcategory"      # finer noise class (e.g. an ESC-50 class), may be ''
TAGS = "tags"                    # list of tag names (clean music)
GROUP = "group"                  # recording / artist / album / speaker: the unit of a split
SPLIT = "split"                  # train / valid / test
DURATION_S = "duration_s"        # duration of the file in seconds
SOURCE_FRAMES = "source_frames"  # frames at the file's own sample rate (``num_frames`` before version 3)
SOURCE_SAMPLE_RATE = "source_sample_rate"
CHANNELS = "channels"
SHA256 = "sha256"                # of the file bytes
AUDIO_FINGERPRINT = "audio_fingerprint"  # of the decoded audio; survives re-encoding losslessly

SOURCES_SCHEMA = pa.schema([
    pa.field(SOURCE_ID, pa.string(), nullable=False),
    pa.field(ROOT, pa.string(), nullable=False),
    pa.field(PATH, pa.string(), nullable=False),
    pa.field(ROLE, pa.string(), nullable=False),
    pa.field(CATEGORY, pa.string(), nullable=False),
    pa.field(SUBCATEGORY, pa.string(), nullable=False),
    pa.field(TAGS, pa.list_(pa.string()), nullable=False),
    pa.field(GROUP, pa.string(), nullable=False),
    pa.field(SPLIT, pa.string(), nullable=False),
    pa.field(DURATION_S, pa.float64(), nullable=False),
    pa.field(SOURCE_FRAMES, pa.int64(), nullable=False),
    pa.field(SOURCE_SAMPLE_RATE, pa.int32(), nullable=False),
    pa.field(CHANNELS, pa.int16(), nullable=False),
    pa.field(SHA256, pa.string(), nullable=False),
    pa.field(AUDIO_FINGERPRINT, pa.string(), nullable=False),
])

# --- mixtures.parquet ------------------------------------------------------------
MIXTURE_ID = "mixture_id"        # stable id, unique in the manifest
SAMPLE_RATE = "sample_rate"      # output sample rate of the mixture
CLEAN_SOURCE_ID = "clean_source_id"
CLEAN_OFFSET = "clean_offset"    # first sample of the clean segment
NUM_FRAMES = "num_frames"        # segment length in samples at sample_rate (sources count theirs in SOURCE_FRAMES)
NOISE_SOURCE_ID = "noise_source_id"  # '' for a clean reference row
NOISE_CATEGORY = "noise_category"    # '' for a clean reference row
NOISE_SUBCATEGORY = "noise_subcategory"
NOISE_OFFSET = "noise_offset"    # first sample of the noise segment (in the loop when looped)
NOISE_LOOPED = "noise_looped"    # noise shorter than the segment: looped with a crossfade (or, with
                                 # noise_next_ids, a recording of the sequence repeats)
NOISE_NEXT_IDS = "noise_next_ids"  # recordings joined after noise_source_id, in order ([]: none)
FOLD = "fold"                    # --folds K: the fold (0..K-1) of the clip and of its noise; -1: no folds
SNR_DB = "snr_db"                # target SNR; NaN for a clean reference row
CLEAN_GAIN = "clean_gain"        # final linear gain on the clean segment (clipping guard included)
NOISE_GAIN = "noise_gain"        # final linear gain on the noise segment; 0 for clean rows
NOISE_TRANSFORMS = "noise_transforms"      # JSON list of {name, parameters}: replayed exactly
MIXTURE_TRANSFORMS = "mixture_transforms"  # JSON list, applied to the summed mixture

MIXTURES_SCHEMA = pa.schema([
    pa.field(MIXTURE_ID, pa.string(), nullable=False),
    pa.field(SPLIT, pa.string(), nullable=False),
    pa.field(SAMPLE_RATE, pa.int32(), nullable=False),
    pa.field(CLEAN_SOURCE_ID, pa.string(), nullable=False),
    pa.field(CLEAN_OFFSET, pa.int64(), nullable=False),
    pa.field(NUM_FRAMES, pa.int64(), nullable=False),
    pa.field(DURATION_S, pa.float64(), nullable=False),
    pa.field(TAGS, pa.list_(pa.string()), nullable=False),
    pa.field(NOISE_SOURCE_ID, pa.string(), nullable=False),
    pa.field(NOISE_CATEGORY, pa.string(), nullable=False),
    pa.field(NOISE_SUBCATEGORY, pa.string(), nullable=False),
    pa.field(NOISE_OFFSET, pa.int64(), nullable=False),
    pa.field(NOISE_LOOPED, pa.bool_(), nullable=False),
    pa.field(SNR_DB, pa.float64(), nullable=False),
    pa.field(CLEAN_GAIN, pa.float64(), nullable=False),
    pa.field(NOISE_GAIN, pa.float64(), nullable=False),
    pa.field(NOISE_TRANSFORMS, pa.string(), nullable=False),
    pa.field(MIXTURE_TRANSFORMS, pa.string(), nullable=False),
])

# Columns a manifest carries only where a row uses them (schema version 2 on): absent,
# every row has the default, so manifests that do not use them stay as they were.
# name -> (field, the schema version that added it, the value of every row when absent)
OPTIONAL_MIXTURE_FIELDS = {
    NOISE_NEXT_IDS: (pa.field(NOISE_NEXT_IDS, pa.list_(pa.string()), nullable=False), 2, []),
    FOLD: (pa.field(FOLD, pa.int32(), nullable=False), 2, -1),
}
# Every column a loaded manifest's mixtures have (a build writes this, less unused optional columns).
MIXTURES_FULL_SCHEMA = pa.schema(list(MIXTURES_SCHEMA) + [f for f, _, _ in OPTIONAL_MIXTURE_FIELDS.values()])


# Sources columns a schema version renamed: name -> (the name before, the version that renamed it).
# A manifest older than the rename is read under the new name; every manifest written now is at
# least MIN_WRITTEN_VERSION.
RENAMED_SOURCE_COLUMNS = {SOURCE_FRAMES: ("num_frames", 3)}
MIN_WRITTEN_VERSION = max(since for _, since in RENAMED_SOURCE_COLUMNS.values())
# Fingerprints hash each column under the name it had when fingerprints were first recorded, so a
# rename changes no benchmark's fingerprint: a rebuilt benchmark still shows the ones its card lists.
FINGERPRINT_NAMES = {name: before for name, (before, _) in RENAMED_SOURCE_COLUMNS.items()}


def source_renames(version: int) -> dict[str, str]:
    """``{name in the file: name now}`` of the sources table of a manifest of schema ``version``."""
    return {before: name for name, (before, since) in RENAMED_SOURCE_COLUMNS.items() if version < since}


def with_optional_columns(table: pa.Table, where: str) -> pa.Table:
    """``table`` with every optional mixtures column, checked where present, empty where not."""
    for name, (field, _, default) in OPTIONAL_MIXTURE_FIELDS.items():
        if name in table.column_names:
            column = table.column(name)
            if column.type != field.type:
                raise ManifestError(f"{where}: column {name} has type {column.type}, expected {field.type}")
            if column.null_count:
                raise ManifestError(f"{where}: column {name} has {column.null_count} empty value(s)")
        else:
            table = table.append_column(field, pa.array([default] * table.num_rows, type=field.type))
    return table


def without_unused_optional_columns(table: pa.Table) -> tuple[pa.Table, int]:
    """``table`` without the optional columns no row uses, and the schema version the manifest needs."""
    version = MIN_WRITTEN_VERSION
    for name, (field, since, default) in OPTIONAL_MIXTURE_FIELDS.items():
        if name not in table.column_names:
            continue
        column = table.column(name)
        used = (pc.greater(pc.list_value_length(column), 0) if pa.types.is_list(field.type)
                else pc.not_equal(column, default))
        if pc.any(used).as_py():
            version = max(version, since)
        else:
            table = table.drop_columns([name])
    return table, version


# --- renders.parquet (written by `noisemix render` next to the audio) -------------
OUTPUT_PATH = "output_path"      # relative to the render directory
MEASURED_SNR_DB = "measured_snr_db"  # clean stem vs the rest of the 16-bit mixture; NaN for clean rows
PEAK = "peak"                    # peak absolute sample value of the written mixture
LOUDNESS_LUFS = "loudness_lufs"  # BS.1770 integrated loudness of the mixture
STEM = "stem"                    # one of STEMS
# What a renders record's file holds: the mixture, or one of the scaled stems that sum to it.
STEM_MIXTURE, STEM_CLEAN, STEM_NOISE = "mixture", "clean", "noise"
STEMS = (STEM_MIXTURE, STEM_CLEAN, STEM_NOISE)
RENDER_KEY = "render_key"        # of everything that determines the file's samples (noisemix.render.render_keys)
MANIFEST_FINGERPRINT = "manifest_fingerprint"  # mixtures fingerprint of the manifest the render was last run for

RENDERS_SCHEMA = pa.schema([
    pa.field(MIXTURE_ID, pa.string(), nullable=False),
    pa.field(STEM, pa.string(), nullable=False),
    pa.field(OUTPUT_PATH, pa.string(), nullable=False),
    pa.field(SHA256, pa.string(), nullable=False),
    pa.field(MEASURED_SNR_DB, pa.float64(), nullable=False),
    pa.field(PEAK, pa.float64(), nullable=False),
    pa.field(LOUDNESS_LUFS, pa.float64(), nullable=False),
    pa.field(RENDER_KEY, pa.string(), nullable=False),  # '' in tables written before keys existed: stale
    pa.field(MANIFEST_FINGERPRINT, pa.string(), nullable=False),  # '' in tables written before it was recorded
])

# --- manifest.json ---------------------------------------------------------------
INFO_SCHEMA_VERSION = "schema_version"  # int: the oldest schema version that describes the tables
INFO_TOOL_VERSION = "tool_version"      # noisemix version string
INFO_SPEC = "spec"                      # the fully resolved build spec (dict, noisemix.spec.BuildSpec.to_dict)
INFO_SEED = "seed"                      # int
INFO_RESAMPLER = "resampler"            # e.g. "soxr 0.5.0 VHQ"
INFO_ROOTS = "roots"                    # {root name: path given at build time}
INFO_FINGERPRINTS = "fingerprints"      # {FINGERPRINT_SOURCES: sha256 over the rows, FINGERPRINT_MIXTURES: ...}
INFO_REPORT = "report"                  # counts: mixtures per split, redraws, skipped files with reasons
INFO_TAGS = "tags"                      # tag vocabulary in canonical order (the trainer's label order)
INFO_CORPORA = "corpora"                # optional: {root name: {adapter, role, options}} of adapter-read roots
INFO_RECIPE = "recipe"                  # optional: the benchmark recipe the build came from
INFO_KEYS = (INFO_SCHEMA_VERSION, INFO_TOOL_VERSION, INFO_SPEC, INFO_SEED, INFO_RESAMPLER, INFO_ROOTS,
             INFO_FINGERPRINTS, INFO_REPORT, INFO_TAGS)  # every manifest.json has these
FINGERPRINT_SOURCES, FINGERPRINT_MIXTURES = "sources", "mixtures"  # the keys of INFO_FINGERPRINTS


class ManifestError(ValueError):
    """A manifest (or a table in one) that does not follow this schema."""


def is_clean_reference(noise_source_id: str) -> bool:
    """A mixture row without noise: the clean reference of its segment."""
    return noise_source_id == ""


def snr_is_defined(snr_db: float) -> bool:
    return not math.isnan(snr_db)


def tags_from_text(text: str) -> list[str]:
    """Tags as written in a CSV/TSV cell: ``;``-separated, blanks ignored."""
    return [tag.strip() for tag in text.split(";") if tag.strip()]
