"""User-facing errors of ``dat``: each one renders as a single line on stderr."""

from __future__ import annotations

__all__ = ["DatError"]


class DatError(Exception):
    """A problem caused by the user's input (manifest, checkpoint, audio, options), not a bug."""
