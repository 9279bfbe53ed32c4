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
