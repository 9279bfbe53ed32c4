"""Shared fixtures: an isolated noisemix cache, a small synthetic corpus and a manifest."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    folder = tmp_path_factory.mktemp("noisemix-cache")
    old = os.environ.get("NOISEMIX_CACHE")
    os.environ["NOISEMIX_CACHE"] = str(folder)
    yield folder
    if old is None:
        os.environ.pop("NOISEMIX_CACHE", None)
    else:
        os.environ["NOISEMIX_CACHE"] = old


@pytest.fixture(scope="session")
def synthetic_corpus(tmp_path_factory) -> Path:
    from noisemix.synthetic import write_synthetic_corpus

    return write_synthetic_corpus(tmp_path_factory.mktemp("corpus"), clips=12, seconds=4.0, noise_per_category=8)


@pytest.fixture(scope="session")
def corpus_inputs(synthetic_corpus):
    from noisemix.sources import CorpusInput

    return [CorpusInput("syn", synthetic_corpus, "clean", subdir="clean"),
            CorpusInput("syn", synthetic_corpus, "noise", subdir="noise")]


@pytest.fixture(scope="session")
def built_manifest(tmp_path_factory, corpus_inputs) -> Path:
    from noisemix.build import build_manifest
    from noisemix.spec import BuildSpec

    out = tmp_path_factory.mktemp("manifest")
    build_manifest(corpus_inputs, BuildSpec(seed=3, mixtures_per_segment=3), out, progress=False)
    return out


def _build_demo_corpus(folder: Path, piece_limit: int | None):
    from noisemix.corpus import demo

    message = demo.missing_message()
    if message:
        pytest.fail(f"demo corpus packages are not installed: {message}")
    out = folder / "corpus"
    return out, demo.build_demo_corpus(out, seed=0, progress=False, piece_limit=piece_limit)


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory):
    """The real demo corpus, built once per test session (CI installs its packages)."""
    return _build_demo_corpus(tmp_path_factory.mktemp("demo"), None)


SMALL_PIECE_LIMIT = 3  # pieces per repertory in the quick suite's corpus


@pytest.fixture(scope="session")
def small_demo_corpus(tmp_path_factory):
    """A demo corpus of a few pieces per repertory (every noise source): the quick suite's."""
    return _build_demo_corpus(tmp_path_factory.mktemp("demo-small"), SMALL_PIECE_LIMIT)
