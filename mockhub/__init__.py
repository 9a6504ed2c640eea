"""mockhub: one process that poses as the external services your application talks to."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
