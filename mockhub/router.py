"""The router: which fake (and which of its routes) answers a request, by host and by path.

A request whose host one or more fakes declare (`Service.hosts`: `api.twilio.com`, globs such as
`*.webhook.office.com`) is answered by those fakes' routes only, so two fakes sharing a path shape
cannot be confused; a path none of them serves goes to the fakes that declare the host `*` (the
`unmatched` fake). Any other host keeps plain path routing, dispatching on the first path segment.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from typing import Any

from mockhub.services.base import Route, Service

__all__ = ["Router"]

Found = tuple[Service, Route | None, dict[str, str]]

# Host names remembered with the fakes they belong to (bounded: host names come from clients).
_MAX_HOSTS = 4096


class _Paths:
    """Path routing over some fakes' routes, trying only the routes that share the path's first segment."""

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

    def match(self, path: str, method: str, scope: Mapping[str, Any] | None) -> Found | None:
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


class Router:
    """Finds the fake and route for a request: by its host when a fake declares it, else by its path."""

    def __init__(self, services: Iterable[Service]) -> None:
        services = list(services)
        # Fakes reached only through their hosts (`by_path = False`) are left out of path routing.
        self._paths = _Paths(s for s in services if s.by_path)
        self._exact: dict[str, list[Service]] = {}
        globs: list[tuple[str, Service]] = []
        fallback: list[Service] = []
        for service in services:
            for pattern in service.hosts:
                pattern = pattern.lower()
                if pattern == "*":
                    fallback.append(service)
                elif any(c in pattern for c in "*?["):
                    globs.append((pattern, service))
                else:
                    self._exact.setdefault(pattern, []).append(service)
        # The longest (most specific) glob first; a host that an exact name claims never looks at globs.
        globs.sort(key=lambda pair: -len(pair[0]))
        self._globs = [(re.compile(fnmatch.translate(p)), s) for p, s in globs]
        self._fallback = _Paths(fallback) if fallback else None
        self._by_owners: dict[tuple[str, ...], _Paths] = {}
        self._hosts: dict[str, _Paths | None] = {}

    def _owners(self, host: str) -> _Paths | None:
        """Path routing over the fakes that declare `host` (None when none does); remembered per host."""
        try:
            return self._hosts[host]
        except KeyError:
            pass
        owners = self._exact.get(host)
        if owners is None:
            matched = [s for regex, s in self._globs if regex.match(host)]
            owners = matched or None
        paths: _Paths | None = None
        if owners is not None:
            key = tuple(s.name for s in owners)
            paths = self._by_owners.get(key)
            if paths is None:
                paths = self._by_owners[key] = _Paths(owners)
        if len(self._hosts) < _MAX_HOSTS:
            self._hosts[host] = paths
        return paths

    def declared(self, host: str) -> bool:
        """Whether a fake declares `host` (a host name without port, lower case)."""
        return self._owners(host) is not None

    def match(
        self,
        path: str,
        method: str,
        scope: Mapping[str, Any] | None = None,
        host: str = "",
        foreign: bool = False,
    ) -> Found | None:
        """(service, route, params); route is None when the path is known but the method is not.

        `host` (lower case, without port) picks the fakes that declare it; `foreign` says the
        request came through the proxy for a host that is not mockhub itself, so a host no fake
        declares goes to the `*` fakes instead of path routing. `scope` (the ASGI scope) is what a
        route's `accepts` looks at; without one, such routes are skipped.
        """
        if host:
            owners = self._hosts[host] if host in self._hosts else self._owners(host)
            if owners is not None:
                found = owners.match(path, method, scope)
                if found is not None or self._fallback is None:
                    return found
                return self._fallback.match(path, method, scope)
        if foreign:
            return self._fallback.match(path, method, scope) if self._fallback is not None else None
        return self._paths.match(path, method, scope)
