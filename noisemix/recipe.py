"""Recipes: a TOML file that fully defines a shared benchmark.

A recipe names its corpora by adapter (the folders are given at build time with
``--root NAME=PATH``), and fixes every option that decides the mixtures: seed, sample
rate, segment length, noise category weights and, per split, the design and SNR spec.
The same recipe and the same corpora give the same manifest on any machine.

Example (``manifests/recipes/mtat-musan.toml``)::

    schema_version = 1
    name = "mtat-musan"
    seed = 0
    sample_rate = 22050
    segment = 59049

    [corpora.mtat]
    adapter = "mtat"
    untagged = "keep"          # any other key is an adapter option

    [corpora.musan]
    adapter = "musan"

    [categories]               # noise category weights (random design)
    environmental = 1
    speech = 1
    music = 1

    [splits.train]
    design = "random"
    snr = "-5:20"

    [splits.test]
    design = "grid"
    snr = "-5:20:5"

    [options]                  # any other build option (see noisemix.spec.BuildSpec)
    clean_references = true
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from pathlib import Path

from . import schema as S
from .adapters import get_adapter, parse_options
from .errors import NoisemixError, SpecError
from .sources import CorpusInput
from .spec import DEFAULT_SAMPLE_RATE, DEFAULT_SEGMENT, SPLIT_OPTIONS, BuildSpec, parse_snr

__all__ = ["Recipe", "load_recipe", "RECIPE_SCHEMA_VERSION", "RECIPE_KEYS"]

RECIPE_SCHEMA_VERSION = 1
RECIPE_KEYS = ("schema_version", "name", "title", "description", "seed", "sample_rate", "segment",
               "corpora", "categories", "splits", "options")
CORPUS_KEYS = ("adapter", "role")
# Build options a recipe may set under [options]; the rest are set by their own keys.
OPTION_KEYS = ("design", "snr", "snr_by_category", "mixtures_per_segment", "max_segments_per_clip",
               "snr_definition", "clip_policy", "level", "clean_references", "split_fractions", "crossfade_s",
               "silence_dbfs", "max_redraws")


@dataclass(frozen=True)
class Corpus:
    name: str        # the root name, given on the command line as --root NAME=PATH
    adapter: str
    role: str
    options: tuple   # sorted (key, value) adapter options


@dataclass(frozen=True)
class Recipe:
    path: Path
    name: str
    title: str
    sha256: str          # of the recipe file's bytes
    definition: dict     # the parsed TOML, recorded in manifest.json
    corpora: tuple       # Corpus, in file order
    spec: BuildSpec

    def inputs(self, roots: dict[str, Path], options: dict[str, dict] | None = None) -> list[CorpusInput]:
        """The corpus inputs for folders on this machine; ``options`` override adapter options by root."""
        names = [c.name for c in self.corpora]
        missing = [n for n in names if n not in roots]
        if missing:
            hints = "; ".join(f"--root {n}=PATH ({get_adapter(c.adapter).layout})" for c in self.corpora
                              for n in missing if c.name == n)
            raise SpecError(f"recipe {self.name}: give the corpus folder(s): {hints}")
        unknown = sorted(set(roots) - set(names))
        if unknown:
            raise SpecError(f"recipe {self.name}: --root {', '.join(unknown)} is not one of its corpora ({', '.join(names)})")
        inputs = []
        for corpus in self.corpora:
            folder = Path(roots[corpus.name]).expanduser()
            if not folder.is_dir():
                raise SpecError(f"--root {corpus.name}={roots[corpus.name]}: folder not found")
            merged = dict(corpus.options) | dict((options or {}).get(corpus.name, {}))
            parse_options(get_adapter(corpus.adapter), merged)
            inputs.append(CorpusInput(corpus.name, folder, corpus.role, adapter=corpus.adapter,
                                      options=tuple(sorted((k, _frozen(v)) for k, v in merged.items()))))
        extra = sorted(set(options or {}) - set(names))
        if extra:
            raise SpecError(f"--corpus-option for {', '.join(extra)}: not a corpus of recipe {self.name}")
        return inputs

    def record(self, options: dict[str, dict] | None = None) -> dict:
        """What manifest.json keeps of the recipe (and of option overrides, which change the benchmark)."""
        return {"name": self.name, "title": self.title, "file": self.path.name, "sha256": self.sha256,
                "definition": self.definition,
                "corpus_options": {k: dict(sorted(v.items())) for k, v in sorted((options or {}).items())}}


def _frozen(value):
    return tuple(value) if isinstance(value, list) else value


def load_recipe(path: Path) -> Recipe:
    """Read and check a recipe; every problem is one :class:`SpecError` naming the file and key."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        data = tomllib.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        raise SpecError(f"recipe {path}: not found") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SpecError(f"recipe {path}: not valid TOML ({exc})") from None
    where = f"recipe {path}"
    _check_keys(data, RECIPE_KEYS, where)
    version = data.get("schema_version")
    if version != RECIPE_SCHEMA_VERSION:
        raise SpecError(f"{where}: schema_version {version!r} is not supported (this noisemix reads "
                        f"schema_version = {RECIPE_SCHEMA_VERSION}); "
                        + ("add schema_version = 1" if version is None else "use a noisemix that supports it"))
    name = _text(data.get("name", path.stem), f"{where}: name")
    corpora = _corpora(data.get("corpora"), where)
    try:
        spec = _spec(data, where)
    except SpecError as exc:
        raise SpecError(f"{where}: {exc}") from None
    return Recipe(path, name, str(data.get("title", name)), hashlib.sha256(raw).hexdigest(), data, corpora, spec)


def _check_keys(table, allowed, where: str) -> None:
    if not isinstance(table, dict):
        raise SpecError(f"{where}: expected a table")
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")


def _text(value, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise SpecError(f"{where}: expected non-empty text")
    return value


def _corpora(table, where: str) -> tuple:
    if not isinstance(table, dict) or not table:
        raise SpecError(f"{where}: needs a [corpora.NAME] table per corpus, e.g. [corpora.mtat] adapter = \"mtat\"")
    corpora = []
    for name, entry in table.items():
        here = f"{where}: [corpora.{name}]"
        if not isinstance(entry, dict) or "adapter" not in entry:
            raise SpecError(f"{here}: needs adapter = one of mtat, musan, esc50, csv")
        try:
            adapter = get_adapter(entry["adapter"])
        except NoisemixError as exc:
            raise SpecError(f"{here}: {exc}") from None
        role = entry.get("role", adapter.role)
        if role not in S.ROLES or (adapter.role and role != adapter.role):
            raise SpecError(f"{here}: role {role!r} must be {adapter.role or 'clean or noise'}")
        options = {k: v for k, v in entry.items() if k not in CORPUS_KEYS}
        try:
            parse_options(adapter, options)
        except NoisemixError as exc:
            raise SpecError(f"{here}: {exc}") from None
        corpora.append(Corpus(name, adapter.name, role, tuple(sorted((k, _frozen(v)) for k, v in options.items()))))
    if not any(c.role == "clean" for c in corpora) or not any(c.role == "noise" for c in corpora):
        raise SpecError(f"{where}: needs at least one clean and one noise corpus")
    return tuple(corpora)


def _spec(data: dict, where: str) -> BuildSpec:
    options = data.get("options", {})
    _check_keys(options, OPTION_KEYS, f"{where}: [options]")
    fields = {k: _snr_value(v, k) if k in ("snr", "snr_by_category") else v for k, v in options.items()}
    if "split_fractions" in fields:
        fields["split_fractions"] = tuple(fields["split_fractions"])
    segment = data.get("segment", DEFAULT_SEGMENT)
    fields["segment_frames"] = None if segment == "full" else _integer(segment, "segment")
    fields["seed"] = _integer(data.get("seed", BuildSpec.seed), "seed")
    fields["sample_rate"] = _integer(data.get("sample_rate", DEFAULT_SAMPLE_RATE), "sample_rate")
    categories = data.get("categories", {})
    _check_keys(categories, S.CATEGORIES, f"{where}: [categories]")
    fields["category_weights"] = {k: _number(v, f"categories.{k}") for k, v in sorted(categories.items())}
    splits = data.get("splits", {})
    _check_keys(splits, S.SPLITS, f"{where}: [splits]")
    fields["splits"] = {}
    for split, table in splits.items():
        _check_keys(table, SPLIT_OPTIONS, f"{where}: [splits.{split}]")
        fields["splits"][split] = {k: _snr_value(v, k) if k in ("snr", "snr_by_category") else
                                   {c: _number(w, k) for c, w in v.items()} if k == "category_weights" else v
                                   for k, v in table.items()}
    try:
        return BuildSpec(**fields)
    except TypeError as exc:
        raise SpecError(f"bad option type ({exc})") from None


def _snr_value(value, key: str):
    """``"-5:20"``, ``[-5, 0, 5]`` or ``{category: spec}`` (for snr_by_category)."""
    if isinstance(value, dict) and key == "snr_by_category":
        return {c: _snr_value(v, "snr") for c, v in value.items()}
    if isinstance(value, list):
        value = ",".join(str(v) for v in value)
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise SpecError(f"{key}: expected text like \"-5:20\" or a list of levels")
    return parse_snr(str(value))


def _integer(value, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{key}: expected an integer (got {value!r})")
    return value


def _number(value, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(f"{key}: expected a number (got {value!r})")
    return float(value)
