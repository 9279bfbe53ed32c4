"""Paths relative to named roots: a manifest stores (root name, relative path) so it works on
another machine; here a stored path is checked and resolved to a file on this one."""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

from .errors import AudioError
from .schema import ManifestError

__all__ = ["check_relative_path", "resolve", "parse_roots"]


def check_relative_path(path: str, where: str) -> str:
    """Return ``path`` if it is a clean relative POSIX path; raise otherwise.

    Manifests must work on another machine, so a stored path is always relative to a
    named root and may never climb out of it.
    """
    if not path or path.startswith("/") or (len(path) > 1 and path[1] == ":") or "\\" in path:
        raise ManifestError(f"{where}: path {path!r} must be relative to its root (POSIX form)")
    normal = posixpath.normpath(path)
    if normal != path or normal == ".." or normal.startswith("../"):
        raise ManifestError(f"{where}: path {path!r} climbs out of its root or is not normalised")
    return path


def resolve(roots: dict[str, Path], root: str, relative: str, where: str = "manifest") -> Path:
    """The file a (root name, relative path) pair names; never outside that root."""
    # A normalised relative path without a leading '..' cannot leave the folder it is joined to.
    check_relative_path(relative, where)
    if root not in roots:
        known = ", ".join(sorted(roots)) or "none"
        raise AudioError(relative, f"root {root!r} is not given (known roots: {known}); pass --root {root}=PATH")
    return Path(os.path.normpath(os.path.join(roots[root], relative)))


def parse_roots(pairs) -> dict[str, Path]:
    """``["name=/path", ...]`` to a dict; a clear error for anything else."""
    roots = {}
    for pair in pairs or []:
        name, sep, path = str(pair).partition("=")
        if not sep or not name or not path:
            raise ManifestError(f"--root {pair!r}: expected NAME=PATH")
        roots[name] = Path(path).expanduser()
    return roots
