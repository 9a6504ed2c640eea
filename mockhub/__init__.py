"""mockhub: one process that poses as the external services your application talks to."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["AsyncMockHub", "Call", "MockHub", "__version__"]

if TYPE_CHECKING:
    from mockhub.client import AsyncMockHub, Call, MockHub

# The client (httpx, pydantic) loads on first use, so `import mockhub` stays cheap for the server and CLI.
_LAZY = {"MockHub", "AsyncMockHub", "Call"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from mockhub import client

        return getattr(client, name)
    raise AttributeError(f"module 'mockhub' has no attribute {name!r}")
