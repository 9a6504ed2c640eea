"""Intercepted calls no fake serves: answered 502, recorded so a test sees what the application tried to reach."""

from __future__ import annotations

from typing import Any

from mockhub.journal import Call
from mockhub.services.base import Reply, Request, Route, Service, json_reply, route

__all__ = ["UnmatchedService"]


class UnmatchedService(Service):
    """A call through the proxy (or to a fake's host) that no fake serves: 502, never forwarded to the internet."""

    name = "unmatched"
    label = "Unmatched (not forwarded)"
    color = "#c92a2a"
    # Every host no other fake declares, and every path a fake's host does not serve; never by path alone.
    hosts = ("*",)
    by_path = False

    def routes(self) -> list[Route]:
        return [route(None, "/", self.answer, self.parse), route(None, "/{path:path}", self.answer, self.parse)]

    @classmethod
    def summarize(cls, call: Call) -> str:
        return f"{call.method} {call.data.get('url') or call.path} (no fake; not forwarded)"

    def parse(self, request: Request) -> dict[str, Any]:
        query = f"?{request.query_string.decode('latin-1')}" if request.query_string else ""
        return {"url": f"{request.base_url}{request.path}{query}", "error": "no_fake"}

    async def answer(self, request: Request) -> Reply:
        url = request.data.get("url", request.path)
        host = request.base_url.partition("://")[2]
        return json_reply(
            {
                "error": {
                    "code": "not_intercepted",
                    "message": f"mockhub has no fake for {request.method} {url}, and it does not forward requests "
                    "to the internet (this call is recorded as service 'unmatched')",
                    "host": host,
                }
            },
            502,
        )
