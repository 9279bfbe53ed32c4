"""Set-up on a machine where the demo corpus's Debian packages cannot be installed: one line
that says what to install, before anything runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "noisemix" / "corpus" / "install-demo-deps.sh"


def test_without_root_or_sudo_the_demo_deps_say_what_to_install_in_one_line(tmp_path):
    shims = {"id": "echo 1000", "dpkg-query": "exit 1", "sudo": "exit 1",  # a user, nothing installed, no sudo
             "apt-get": f"touch {tmp_path}/apt-ran"}
    for name, body in shims.items():
        (tmp_path / name).write_text(f"#!/bin/sh\n{body}\n")
        (tmp_path / name).chmod(0o755)
    result = subprocess.run(["bash", str(SCRIPT), sys.executable], capture_output=True, text=True,
                            env={"PATH": f"{tmp_path}:/usr/bin:/bin", "HOME": str(tmp_path)})
    assert result.returncode == 1 and result.stdout == "" and not (tmp_path / "apt-ran").exists()
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "as root run: apt-get install --no-install-recommends fluidsynth" in lines[0]


BROWSER_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "install-browser.sh"


def _shims(folder: Path, shims: dict) -> None:
    for name, body in shims.items():
        (folder / name).write_text(f"#!/bin/sh\n{body}\n")
        (folder / name).chmod(0o755)


def test_without_root_the_browser_step_says_what_to_install_and_lets_the_tests_run(tmp_path):
    _shims(tmp_path, {"id": "echo 1000", "sudo": "exit 1", "apt-get": f"touch {tmp_path}/apt-ran"})
    # PATH holds only the shims: no chromium, and the script needs nothing else (bash builtins).
    result = subprocess.run(["/bin/bash", str(BROWSER_SCRIPT)], capture_output=True, text=True,
                            env={"PATH": str(tmp_path), "HOME": str(tmp_path)})
    assert result.returncode == 0 and result.stdout == "" and not (tmp_path / "apt-ran").exists()
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "as root run: apt-get install --no-install-recommends chromium" in lines[0]


def test_as_root_the_browser_step_installs_debian_s_chromium(tmp_path):
    _shims(tmp_path, {"id": "echo 0", "apt-get": f'echo "$@" >> {tmp_path}/apt-calls'})
    result = subprocess.run(["/bin/bash", str(BROWSER_SCRIPT)], capture_output=True, text=True,
                            env={"PATH": str(tmp_path), "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "apt-calls").read_text().splitlines()
    assert calls[0] == "update -qq" and calls[1].startswith("install -y -qq --no-install-recommends chromium")
