"""MkDocs hooks (registered in mkdocs.yml `hooks:`): pages filled from the code at build time.

- `<!-- mockhub:settings -->` becomes the table of every `mockhub.settings.Settings` field, so
  docs/configuration.md cannot drift from the settings the server really has.
- `<!-- mockhub:include PATH -->` becomes the text of PATH (relative to the repository root),
  without its title line.
- A fence opened with ```` ```python run ```` (a block that tests/test_docs.py executes) is shown
  as a plain ```` ```python ```` block: the marker is for the test, not for readers.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_MARKER = "<!-- mockhub:settings -->"
MODELS_MARKER = "<!-- mockhub:client-models -->"
INCLUDE = re.compile(r"^<!-- mockhub:include (?P<path>\S+) -->$", re.MULTILINE)
RUN_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>```+)python run[ \t]*$", re.MULTILINE)


def _default(field: Any) -> str:
    value = field.default
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "off" if not value else "on"
    if isinstance(value, int) and value >= 1024 and value % 1024 == 0:
        for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
            if value % size == 0:
                return f"`{value}` ({value // size} {unit})"
    return f"`{value}`"


def settings_table() -> str:
    """One row per `Settings` field: name, env var, flag, default, description."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from mockhub.settings import Settings

    rows = [
        "| setting | environment variable | `mockhub serve` flag | default | description |",
        "|---|---|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        if field.annotation is bool:
            flag = f"{flag}` / `--no-{flag[2:]}"
        description = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{name}` | `MOCKHUB_{name.upper()}` | `{flag}` | {_default(field)} | {description} |")
    return "\n".join(rows)


def _type_name(annotation: Any) -> str:
    import typing

    text = str(annotation) if typing.get_origin(annotation) else getattr(annotation, "__name__", str(annotation))
    return text.replace("typing.", "").replace("mockhub.client.models.", "").replace("datetime.datetime", "datetime")


def client_models_table() -> str:
    """The client's `Call` and the models inside it: every attribute, its type and meaning, then its methods."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import inspect

    from mockhub.client.models import Call, CallResponse, FaultHit, StubHit

    out: list[str] = []
    for model, where in (
        (Call, "call"),
        (CallResponse, "call.response"),
        (FaultHit, "call.fault"),
        (StubHit, "call.stub"),
    ):
        out += [
            f"`{where}` (`{model.__name__}`): {inspect.getdoc(model) or ''}",
            "",
            "| attribute | type | what |",
            "|---|---|---|",
        ]
        for name, field in model.model_fields.items():
            description = (field.description or "").replace("|", "\\|")
            kind = _type_name(field.annotation).replace("|", "\\|")
            out.append(f"| `{where}.{name}` | `{kind}` | {description} |")
        for name, member in vars(model).items():
            if name.startswith("_") or not (isinstance(member, property) or inspect.isfunction(member)):
                continue
            doc = (inspect.getdoc(member) or "").split("\n")[0].replace("|", "\\|")
            if not doc:
                continue
            call = "" if isinstance(member, property) else "()"
            out.append(f"| `{where}.{name}{call}` | {'property' if call == '' else 'method'} | {doc} |")
        out.append("")
    return "\n".join(out)


def _include(path: str) -> str:
    text = (ROOT / path).read_text(encoding="utf-8")
    first, _, rest = text.partition("\n")
    return rest.lstrip("\n") if first.startswith("# ") else text


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if SETTINGS_MARKER in markdown:
        markdown = markdown.replace(SETTINGS_MARKER, settings_table())
    if MODELS_MARKER in markdown:
        markdown = markdown.replace(MODELS_MARKER, client_models_table())
    markdown = INCLUDE.sub(lambda m: _include(m["path"]), markdown)
    return RUN_FENCE.sub(lambda m: f"{m['indent']}{m['fence']}python", markdown)
