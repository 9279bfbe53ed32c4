"""Readers for public corpora in their published layouts, by name.

``--clean mtat=/data/mtat`` or ``--noise musan=/data/musan`` selects an adapter when the
name before ``=`` is one of :data:`ADAPTERS`; the root then takes the adapter's name
(``ADAPTER:ROOT=PATH`` names it otherwise).
"""

from __future__ import annotations

from ..errors import NoisemixError
from .base import Adapter, Listing, parse_options
from . import esc50, mtat, musan, table

__all__ = ["ADAPTERS", "Adapter", "Listing", "get_adapter", "parse_options", "vocabulary"]

ADAPTERS: dict[str, Adapter] = {a.name: a for a in (mtat.ADAPTER, musan.ADAPTER, esc50.ADAPTER, table.ADAPTER)}


def get_adapter(name: str, role: str | None = None) -> Adapter:
    """The adapter called ``name``; refuses one used in the wrong role."""
    if name not in ADAPTERS:
        raise NoisemixError(f"unknown corpus adapter {name!r}; known: {', '.join(sorted(ADAPTERS))}")
    adapter = ADAPTERS[name]
    if role and adapter.role and adapter.role != role:
        flag = "--clean" if adapter.role == "clean" else "--noise"
        raise NoisemixError(f"{name} is a {adapter.role} corpus; give it as {flag} {name}=PATH")
    return adapter


def vocabulary(inputs) -> list[str] | None:
    """The canonical tag order when exactly one adapter with a fixed vocabulary provides clean audio."""
    fixed = {ADAPTERS[i.adapter].vocabulary for i in inputs
             if i.role == "clean" and i.adapter and ADAPTERS[i.adapter].vocabulary}
    return list(next(iter(fixed))) if len(fixed) == 1 else None
