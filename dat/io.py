"""Atomic file writes for run outputs: noisemix's writers, so both packages behave alike."""

from noisemix import atomic_path, write_json, write_text

__all__ = ["atomic_path", "write_text", "write_json"]
