"""Command-line words to library objects: corpus inputs, the build spec, the default corpus."""

from __future__ import annotations

import os
from pathlib import Path

from . import schema as S
from .cache import cache_dir
from .errors import SpecError
from .sources import CorpusInput
from .spec import BuildSpec, parse_snr
from .transforms import parse_transform

__all__ = ["corpus_inputs", "parse_corpus_options", "with_options", "build_spec", "default_inputs"]


def corpus_inputs(clean: list[str], noise: list[str], options: list[str] | None = None) -> list[CorpusInput]:
    """``--clean [NAME=]PATH`` and ``--noise CATEGORY[:NAME]=PATH | PATH`` to inputs.

    Root names default to ``clean`` and to the noise category (``noise`` when the
    categories come from sub-folders), numbered when repeated. A known adapter name in
    place of NAME or CATEGORY (``--clean mtat=PATH``, ``--noise musan:m=PATH``) reads the
    corpus in its published layout; ``options`` (``--corpus-option ROOT.KEY=VALUE``)
    configure adapters by root name.
    """
    from .adapters import ADAPTERS, get_adapter

    inputs: list[CorpusInput] = []
    for role, items in (("clean", clean), ("noise", noise)):
        for text in items:
            key, _, path = text.rpartition("=") if "=" in text else ("", "", text)
            prefix, _, name = key.partition(":")
            if prefix in ADAPTERS:
                get_adapter(prefix, role)
                inputs.append(CorpusInput(name or prefix, _existing(path, f"--{role}"), role, adapter=prefix))
            elif role == "clean":
                inputs.append(CorpusInput(key or _unique("clean", inputs), _existing(path, "--clean"), "clean"))
            else:
                if prefix and prefix not in S.CATEGORIES:
                    raise SpecError(f"--noise {text!r}: category {prefix!r} is not one of {', '.join(S.CATEGORIES)} "
                                    f"nor a corpus adapter ({', '.join(sorted(ADAPTERS))})")
                inputs.append(CorpusInput(name or _unique(prefix or "noise", inputs), _existing(path, "--noise"),
                                          "noise", prefix))
    names = [i.root_name for i in inputs]
    clash = {n for n in names if names.count(n) > 1}
    if clash:
        raise SpecError(f"root name(s) {', '.join(sorted(clash))} used twice; name roots with NAME=PATH")
    return with_options(inputs, parse_corpus_options(options or []))


def parse_corpus_options(items: list[str]) -> dict[str, dict[str, str]]:
    """``ROOT.KEY=VALUE`` items to {root: {key: value}}."""
    options: dict[str, dict[str, str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        root, dot, name = key.partition(".")
        if not sep or not dot or not root or not name:
            raise SpecError(f"--corpus-option {item!r}: expected ROOT.KEY=VALUE, e.g. mtat.allow_partial=true")
        options.setdefault(root, {})[name] = value
    return options


def with_options(inputs: list[CorpusInput], options: dict[str, dict]) -> list[CorpusInput]:
    """Attach adapter options by root name; options for a plain folder or an unknown root are an error."""
    from dataclasses import replace

    by_name = {i.root_name: i for i in inputs}
    for root in options:
        if root not in by_name or not by_name[root].adapter:
            raise SpecError(f"corpus options for {root!r}: no corpus adapter root of that name "
                            f"(adapter roots: {', '.join(sorted(n for n, i in by_name.items() if i.adapter)) or 'none'})")
    from .adapters import get_adapter, parse_options

    result = []
    for item in inputs:
        given = options.get(item.root_name, {})
        if item.adapter:
            parse_options(get_adapter(item.adapter), given)   # fail early, naming the option
        merged = dict(item.options) | given
        result.append(replace(item, options=tuple(sorted(merged.items()))) if given else item)
    return result


def _unique(base: str, inputs: list[CorpusInput]) -> str:
    taken = {i.root_name for i in inputs}
    if base not in taken:
        return base
    return next(f"{base}-{n}" for n in range(2, 10_000) if f"{base}-{n}" not in taken)


def _existing(path: str, option: str) -> Path:
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise SpecError(f"{option} {path}: folder not found")
    return folder


def _pairs(items: list[str], option: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SpecError(f"{option} {item!r}: expected KEY=VALUE")
        pairs[key] = value
    return pairs


def build_spec(*, snr: list[str], segment: str, category_weight: list[str], split_fractions: str,
               noise_transform: list[str], mixture_transform: list[str], **options) -> BuildSpec:
    default = [s for s in snr if "=" not in s]
    if len(default) > 1:
        raise SpecError(f"--snr given {len(default)} times without a category; give one default and CATEGORY=SPEC overrides")
    overrides = {k: parse_snr(v) for k, v in _pairs([s for s in snr if "=" in s], "--snr").items()}
    try:
        weights = {k: float(v) for k, v in _pairs(category_weight, "--category-weight").items()}
        fractions = tuple(float(v) for v in split_fractions.split(","))
        segment_frames = None if segment == "full" else int(segment)
    except ValueError as exc:
        raise SpecError(f"bad number: {exc}") from None
    if default:
        options["snr"] = parse_snr(default[0])
    return BuildSpec(snr_by_category=overrides,
                     segment_frames=segment_frames, category_weights=weights, split_fractions=fractions,
                     noise_transforms=tuple(parse_transform(t) for t in noise_transform),
                     mixture_transforms=tuple(parse_transform(t) for t in mixture_transform), **options)


def default_inputs(progress: bool = True) -> tuple[list[CorpusInput], list[str] | None, str]:
    """The built-in corpus: the demo corpus when it can be assembled, else synthetic audio.

    ``NOISEMIX_DEFAULT_CORPUS=synthetic`` forces the synthetic corpus (quick checks).
    """
    choice = os.environ.get("NOISEMIX_DEFAULT_CORPUS", "auto")
    if choice not in ("auto", "demo", "synthetic"):
        raise SpecError(f"NOISEMIX_DEFAULT_CORPUS={choice!r}: choose auto, demo or synthetic")
    demo = _demo_corpus(progress, required=choice == "demo") if choice != "synthetic" else None
    if demo is not None:
        return _corpus_folder_inputs("demo", demo), None, f"demo corpus of real recordings at {demo}"
    from .synthetic import SYNTHETIC_TAGS, write_synthetic_corpus

    folder = cache_dir() / "synthetic-corpus"
    if not (folder / "clean" / "tags.csv").is_file():
        write_synthetic_corpus(folder)
    return (_corpus_folder_inputs("synthetic", folder), list(SYNTHETIC_TAGS),
            f"SYNTHETIC tones and noises at {folder}; install the demo corpus packages for real recordings")


def _corpus_folder_inputs(name: str, folder: Path) -> list[CorpusInput]:
    return [CorpusInput(name, folder, "clean", subdir="clean"), CorpusInput(name, folder, "noise", subdir="noise")]


def _demo_corpus(progress: bool, required: bool) -> Path | None:
    try:
        from .corpus.demo import build_demo_corpus, missing_requirements
    except ImportError:
        return None
    missing = missing_requirements()
    if missing and required:
        raise SpecError(f"demo corpus unavailable, missing: {', '.join(missing)}")
    if missing:
        return None
    folder = cache_dir() / "demo-corpus"
    build_demo_corpus(folder, progress=progress, replace_outdated=True)  # noisemix's own cache folder
    return folder
