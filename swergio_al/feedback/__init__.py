"""The human-feedback service: store, queue with leases, the Hub's FeedbackService, Labeler."""

from __future__ import annotations

from typing import Any

__all__ = ["SKIP", "Labeler"]


def __getattr__(name: str) -> Any:
    # Imported on first use: `swergio-al export` and the store need no WebSocket client.
    if name in __all__:
        from swergio_al.feedback import labeler

        return getattr(labeler, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
