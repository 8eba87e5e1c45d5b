"""Critic diagnostics: gradient norms at interpolates, Lipschitz probes, the health verdict."""

from __future__ import annotations

from typing import Any


def tick_diagnostics(trainer) -> dict[str, Any]:
    """Diagnostics recorded at every tick (filled in by the diagnostics work)."""
    return {}
