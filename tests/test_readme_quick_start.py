"""The README's quick start is what a new user types: its noisemix commands run as written
(with an empty cache, as on a new machine)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def quick_start_commands() -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    block = text[text.index("## Quick start"):]
    block = block[block.index("```\n") + 4:block.index("```", block.index("```\n") + 4)]
    return [shlex.split(line.split("#")[0]) for line in block.splitlines() if line.startswith("noisemix ")]


@pytest.mark.demo_full  # minutes: the default corpus is made, built and rendered from nothing (make test-demo)
def test_the_quick_start_builds_renders_and_shows_a_benchmark(tmp_path):
    commands = quick_start_commands()
    assert [c[:2] for c in commands] == [["noisemix", "build"], ["noisemix", "render"], ["noisemix", "stats"]]
    env = {**os.environ, "NOISEMIX_CACHE": str(tmp_path / "cache")}  # as on a new machine: nothing cached
    for command in commands:
        result = subprocess.run([sys.executable, "-m", "noisemix", *command[1:]], cwd=tmp_path, env=env,
                                capture_output=True, text=True)
        assert result.returncode == 0, f"{' '.join(command)}: {result.stderr}"
    assert (tmp_path / "bench" / "mixtures.parquet").is_file() and (tmp_path / "bench-audio" / "renders.parquet").is_file()
    assert list((tmp_path / "bench-audio").rglob("*.clean.flac")) and (tmp_path / "bench" / "snr_hist.png").is_file()
    assert "speech" in result.stdout  # stats printed its table
