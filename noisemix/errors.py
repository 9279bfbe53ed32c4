"""User-facing errors: each renders as one line naming the file and the problem."""

from __future__ import annotations

from .schema import ManifestError

__all__ = ["NoisemixError", "AudioError", "SpecError", "ManifestError"]


class NoisemixError(Exception):
    """Base of errors caused by the user's input rather than by a bug."""


class AudioError(NoisemixError):
    """An audio file that cannot be used: unreadable, empty, silent, NaN, odd shape."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")

    def __reduce__(self):
        # Keeps the error intact when it crosses from a worker process to the parent.
        return (type(self), (self.path, self.problem))


class SpecError(NoisemixError, ValueError):
    """A build option or recipe value out of range; the message says how to fix it."""
