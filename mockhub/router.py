"""The router: which fake (and which of its routes) answers a path."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from mockhub.services.base import Route, Service

__all__ = ["Router"]


class Router:
    """Finds the fake and route for a path, trying only the routes that share its first segment."""

    def __init__(self, services: Iterable[Service]) -> None:
        self._by_segment: dict[str, list[tuple[Service, Route]]] = {}
        self._anywhere: list[tuple[Service, Route]] = []
        for service in services:
            for r in service.routes():
                segment = r.first_segment
                bucket = self._anywhere if segment is None else self._by_segment.setdefault(segment, [])
                bucket.append((service, r))
        # Routes that look at the request (`accepts`) first: they are the more specific claim on a path.
        for bucket in (*self._by_segment.values(), self._anywhere):
            bucket.sort(key=lambda pair: pair[1].accepts is None)

    def match(
        self, path: str, method: str, scope: Mapping[str, Any] | None = None
    ) -> tuple[Service, Route | None, dict[str, str]] | None:
        """(service, route, params); route is None when the path is known but the method is not.

        `scope` (the ASGI scope) is what a route's `accepts` looks at; without one, such routes are skipped.
        """
        end = path.find("/", 1)
        segment = path[1:] if end < 0 else path[1:end]
        candidates = self._by_segment.get(segment)
        wrong_method: Service | None = None
        for bucket in (candidates, self._anywhere):
            if not bucket:
                continue
            for service, r in bucket:
                m = r.regex.match(path)
                if m is None:
                    continue
                if r.accepts is not None and (scope is None or not r.accepts(scope)):
                    continue
                if r.methods is not None and method not in r.methods:
                    wrong_method = wrong_method or service
                    continue
                return service, r, m.groupdict()
        return (wrong_method, None, {}) if wrong_method else None
