"""Where an application under test finds the fakes: `Urls` (one namespace's URLs) and `app_env`.

Both are built from the server's catalogue (`GET /services`): each fake declares its URLs and the
environment variables an application reads, so a fake added to the server needs nothing here.
"""

from __future__ import annotations

import os
import re
import string
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from mockhub.filters import FIELDS, DataFields

__all__ = [
    "Catalogue",
    "EnvMapError",
    "Urls",
    "app_env",
    "map_env",
    "proxy_env",
    "proxy_url",
    "template_values",
    "trust_dir",
    "write_trust",
]

Catalogue = list[dict[str, Any]]
"""`GET /services`' list: each fake's facts as JSON."""


def learn(catalogue: Catalogue) -> None:
    """Teach the shared filters which `data` fields each fake's calls hold (for failure messages)."""
    for info in catalogue:
        fields = info.get("fields") or {}
        if info.get("name") and info["name"] not in FIELDS:
            FIELDS[info["name"]] = DataFields(
                to=tuple(fields.get("to", ())),
                text=tuple(fields.get("text", ())),
                subject=tuple(fields.get("subject", ())),
                rich=tuple(info.get("rich") or ()),
                files=tuple(info.get("files", ("attachments",))),
            )


class Urls:
    """Where each fake lives, for one namespace: `urls.slack_webhook`, `urls.openai_base`, ... (`GET /services`)."""

    def __init__(self, base: str, paths: Mapping[str, str]) -> None:
        self.base = base
        """The namespace's root: `{server}/ns/{namespace}` (or the server itself when unscoped)."""
        self._paths = dict(paths)

    @classmethod
    def of(cls, base: str, catalogue: Catalogue) -> Urls:
        return cls(base, {name: url["path"] for info in catalogue for name, url in (info.get("urls") or {}).items()})

    def __getattr__(self, name: str) -> str:
        paths = self.__dict__.get("_paths", {})
        if name not in paths:
            raise AttributeError(f"no fake declares a URL named {name!r}; known: {', '.join(sorted(paths))}")
        return f"{self.base}{paths[name]}"

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self._paths})

    def names(self) -> list[str]:
        """The URL names the fakes declare."""
        return sorted(self._paths)

    def webhook(self, name: str = "hook") -> str:
        """A generic webhook URL: any method on `/webhooks/{name...}` is recorded as service `webhook`."""
        root = self._paths.get("webhook", "/webhooks/hook").rsplit("/", 1)[0]
        return f"{self.base}{root}/{name.lstrip('/')}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Urls) and (other.base, other._paths) == (self.base, self._paths)

    def __hash__(self) -> int:
        return hash(self.base)

    def __repr__(self) -> str:
        return f"Urls({self.base!r})"


class _Known(string.Formatter):
    """`str.format`, noting whether the template named anything unknown (then the variable is left out)."""

    def get_value(self, key: int | str, args: Any, kwargs: Mapping[str, Any]) -> Any:
        value = kwargs.get(str(key)) if isinstance(key, str) else None
        if value is None:
            raise KeyError(key)
        return value


def template_values(
    urls: Urls, host: str, listeners: Mapping[str, int | None], namespace: str | None, server: str
) -> dict[str, Any]:
    """What an `EnvVar` template may name: `base`, `server`, `host`, `namespace`, `urls`, the listeners' ports."""
    values: dict[str, Any] = {"base": urls.base, "server": server, "host": host, "namespace": namespace, "urls": urls}
    values.update({name: port for name, port in listeners.items() if port is not None})
    return values


def _service_env(info: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    formatter = _Known()
    for var in info.get("env") or []:
        if any(values.get(name) is None for name in var.get("requires", [])):
            continue
        try:
            env[var["name"]] = formatter.format(var["value"], **values)
        except (KeyError, AttributeError):
            continue  # names a namespace, a listener or a URL this server does not have
    return env


def app_env(
    catalogue: Catalogue,
    urls: Urls,
    host: str,
    listeners: Mapping[str, int | None],
    namespace: str | None,
    server: str,
) -> dict[str, str]:
    """The environment each fake declares for an application under test (`GET /services` `env`), filled in."""
    values = template_values(urls, host, listeners, namespace, server)
    env = {"MOCKHUB_URL": server}
    if namespace is not None:
        env["MOCKHUB_NAMESPACE"] = namespace
    for info in catalogue:
        env.update(_service_env(info, values))
    return dict(sorted(env.items()))


class EnvMapError(ValueError):
    """A `--map` entry that names nothing mockhub knows: the message says what it could have been."""


def map_env(
    mapping: Mapping[str, str], catalogue: Catalogue, env: Mapping[str, str], values: Mapping[str, Any]
) -> dict[str, str]:
    """The project's own variable names filled in (`mockhub env --map NAME=SOURCE`, `env(mapping=...)`).

    A SOURCE is one of:

    - `service.key`: the fake's URL named `key` (`slack.slack_webhook`), its listener (`smtp.port`,
      `smtp.host`), or the one variable of that fake whose name ends in `_KEY` (`twilio.account_sid`
      is `TWILIO_ACCOUNT_SID`, `smtp.user` is `ALERT_EMAIL_SMTP_USER`);
    - the name of a variable mockhub sets (`OPENAI_BASE_URL`);
    - a template over the same values as the fakes' own (`{urls.openai_base}`, `{smtp_port}`, `{namespace}`);
    - `=text`: that text, as it is.
    """
    by_name = {str(info.get("name")): info for info in catalogue}
    out: dict[str, str] = {}
    for name, source in mapping.items():
        source = source.strip()
        if source.startswith("="):
            out[name] = source[1:]
        elif "{" in source:
            try:
                out[name] = _Known().format(source, **values)
            except (KeyError, AttributeError, IndexError, ValueError) as exc:
                raise EnvMapError(f"{name}: the template {source!r} names something unknown ({exc})") from None
        elif source in env:
            out[name] = env[source]
        elif "." in source:
            out[name] = _service_value(name, source, by_name, values)
        else:
            raise EnvMapError(f"{name}: {source!r} is no variable mockhub sets, and not of the form service.key")
    return out


def _service_value(name: str, source: str, by_name: Mapping[str, Any], values: Mapping[str, Any]) -> str:
    service, _, key = source.partition(".")
    info = by_name.get(service)
    if info is None:
        raise EnvMapError(f"{name}: no fake named {service!r} (known: {', '.join(sorted(by_name))})")
    urls = values["urls"]
    if key in (info.get("urls") or {}):
        return str(getattr(urls, key))
    if key in ("port", "host") and info.get("transport") != "http":
        port = values.get(f"{info.get('transport')}_port")
        if key == "host":
            return str(values["host"])
        if port is not None:
            return str(port)
    own = _service_env(info, values)
    suffix = "_" + key.upper()
    found = [var for var in own if var.upper() == key.upper() or var.upper().endswith(suffix)]
    if len(found) == 1:
        return own[found[0]]
    choices = [*(info.get("urls") or {}), *(f"{v.rsplit('_', 1)[-1].lower()} ({v})" for v in own)]
    what = "matches several variables" if found else "names nothing of that fake"
    raise EnvMapError(f"{name}: {source!r} {what}; {service} has: {', '.join(choices) or 'nothing to map'}")


def proxy_url(server: str, namespace: str | None) -> str:
    """The forward proxy (mockhub's HTTP port), with the namespace as its user name when there is one."""
    parts = urlsplit(server)
    # Any password does; one is given because urllib (slack_sdk) sends no Proxy-Authorization without it.
    user = f"{quote(namespace, safe='')}:mockhub@" if namespace else ""
    return f"http://{user}{parts.netloc.rpartition('@')[2]}"


def trust_dir(server: str) -> Path:
    """Where `env(proxy=True)` writes the CA and the bundle: `$TMPDIR/mockhub-<uid>/<host>-<port>/`."""
    parts = urlsplit(server)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = re.sub(r"[^A-Za-z0-9_.-]", "_", parts.hostname or "localhost")
    owner = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir(), f"mockhub-{owner}", f"{host}-{port}")


def write_trust(server: str, ca_pem: bytes, bundle_pem: bytes, directory: Path | None = None) -> tuple[Path, Path]:
    """Write `ca.pem` and `bundle.pem` (atomically: a running application may be reading them); their paths."""
    folder = directory or trust_dir(server)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, content in (("ca.pem", ca_pem), ("bundle.pem", bundle_pem)):
        path = folder / name
        tmp = folder / f".{name}.{os.getpid()}"
        tmp.write_bytes(content)
        tmp.replace(path)
        paths.append(path)
    return paths[0], paths[1]


def proxy_env(server: str, namespace: str | None, ca_file: Path, bundle_file: Path) -> dict[str, str]:
    """What an unchanged application needs to reach the fakes through the proxy, trusting mockhub's CA."""
    proxy = proxy_url(server, namespace)
    host = urlsplit(server).hostname or "127.0.0.1"
    # The inspection API (and anything else on mockhub's own address) is reached directly.
    no_proxy = ",".join(dict.fromkeys([host, "localhost", "127.0.0.1", "::1"]))
    return {
        "HTTPS_PROXY": proxy,
        "HTTP_PROXY": proxy,
        "NO_PROXY": no_proxy,
        # These two *replace* the default roots: the bundle is certifi's roots plus mockhub's CA.
        "SSL_CERT_FILE": str(bundle_file),
        "REQUESTS_CA_BUNDLE": str(bundle_file),
        "CURL_CA_BUNDLE": str(bundle_file),
        # Node adds these to its own roots.
        "NODE_EXTRA_CA_CERTS": str(ca_file),
        # Node's fetch (undici) ignores the proxy variables without it (Node 22.21+ / 24.5+).
        "NODE_USE_ENV_PROXY": "1",
    }
