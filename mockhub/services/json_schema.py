"""A small JSON Schema toolkit for the LLM fakes: make a document that fits a schema, check one against it.

The real APIs guarantee the shape an application asks for (structured outputs, forced tool calls), so
the fakes answer with a document generated from the request's schema (`example`), and refuse a stub
whose content does not fit it (`problems`). Both cover the subset the providers accept and pydantic
emits: `type` (also a list, `nullable`), `properties` / `required` / `additionalProperties`, `items` /
`prefixItems` / `minItems` / `maxItems` / `uniqueItems`, `enum`, `const`, string `minLength` /
`maxLength` / `pattern` / `format` (date-time, date, time, email, uuid, uri, hostname, ipv4, ipv6,
duration), number bounds and `multipleOf`, `$ref` into `$defs` / `definitions`, `anyOf` / `oneOf` /
`allOf`. `strict_problem` is OpenAI's check of a `strict: true` schema.

Generation is deterministic: the same schema and `variant` give the same document; another `variant`
gives another document (used for OpenAI's `n` choices).
"""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from datetime import date, datetime, time
from typing import Any

__all__ = ["example", "problems", "strict_problem"]

# Past this depth a recursive schema (a tree of pydantic models) stops: optional parts are left out.
_MAX_DEPTH = 12
_FORMATS: dict[str, str] = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00",
    "email": "mock@example.com",
    "idn-email": "mock@example.com",
    "uri": "https://example.com/mock",
    "url": "https://example.com/mock",
    "iri": "https://example.com/mock",
    "uri-reference": "https://example.com/mock",
    "hostname": "example.com",
    "idn-hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "duration": "P1D",
}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_DURATION = re.compile(r"^P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S*$")


# --------------------------------------------------------------------------------------------------
# Generation


def example(schema: Any, variant: int = 0, hint: str = "value") -> Any:
    """A document valid against `schema` (as far as the subset above goes); `hint` names string values."""
    return _Gen(schema if isinstance(schema, dict) else {}).make(schema, variant, hint, 0)


class _Gen:
    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.active: list[str] = []  # the $refs being expanded, to notice recursion

    def make(self, schema: Any, variant: int, hint: str, depth: int) -> Any:
        if schema is True or not isinstance(schema, dict):
            return f"mock {hint}"
        ref = schema.get("$ref")
        if isinstance(ref, str):
            if ref in self.active:
                depth = _MAX_DEPTH  # a schema inside itself: end the recursion here
            self.active.append(ref)
            try:
                return self.make(_resolve(self.root, schema), variant, hint, depth)
            finally:
                self.active.pop()
        if "const" in schema:
            return schema["const"]
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            return enum[variant % len(enum)]
        if isinstance(schema.get("allOf"), list) and schema["allOf"]:
            return self.make(_merge_all_of(self.root, schema), variant, hint, depth)
        for key in ("anyOf", "oneOf"):
            branches = schema.get(key)
            if isinstance(branches, list) and branches:
                return self.make(self._branch(branches, depth), variant, hint, depth)
        kind = _first_type(schema)
        if kind == "null":
            return None
        if kind == "object":
            return self._object(schema, variant, depth)
        if kind == "array":
            return self._array(schema, variant, hint, depth)
        if kind == "boolean":
            return variant % 2 == 0
        if kind == "integer":
            return _integer(schema, variant)
        if kind == "number":
            return _number(schema, variant)
        return _string(schema, variant, hint)

    def _branch(self, branches: list[Any], depth: int) -> Any:
        """The first branch; deep in a recursive schema, the first that ends the recursion (null, a leaf)."""
        if depth < _MAX_DEPTH:
            return branches[0]
        for branch in branches:
            resolved = _resolve(self.root, branch) if isinstance(branch, dict) else {}
            if _first_type(resolved) not in ("object", "array"):
                return branch
        return branches[0]

    def _object(self, schema: dict[str, Any], variant: int, depth: int) -> dict[str, Any]:
        props = schema.get("properties")
        props = props if isinstance(props, dict) else {}
        required = schema.get("required")
        required = [r for r in required if isinstance(r, str)] if isinstance(required, list) else []
        out: dict[str, Any] = {}
        # Every declared property (a complete answer); only the required ones deep in a recursive schema.
        names = list(props) if depth < _MAX_DEPTH else [n for n in props if n in required]
        for name in names:
            out[name] = self.make(props[name], variant, name, depth + 1)
        for name in required:
            if name not in out:
                extra = schema.get("additionalProperties")
                out[name] = self.make(extra if isinstance(extra, dict) else {}, variant, name, depth + 1)
        return out

    def _array(self, schema: dict[str, Any], variant: int, hint: str, depth: int) -> list[Any]:
        prefix = schema.get("prefixItems")
        prefix = prefix if isinstance(prefix, list) else []
        low = _int(schema.get("minItems"), 0)
        high = _int(schema.get("maxItems"), None)
        count = max(low, len(prefix), 1 if depth < _MAX_DEPTH else 0)
        if high is not None:
            count = min(count, high)
        items = schema.get("items")
        out: list[Any] = []
        for i in range(count):
            sub = prefix[i] if i < len(prefix) else items if isinstance(items, dict) else {}
            # Each item its own variant, so uniqueItems holds and the items differ.
            out.append(self.make(sub, variant + i, _singular(hint), depth + 1))
        return out


def _string(schema: dict[str, Any], variant: int, hint: str) -> str:
    fmt = schema.get("format")
    if fmt == "uuid":
        value = str(uuid.UUID(bytes=hashlib.blake2b(f"{hint}:{variant}".encode(), digest_size=16).digest(), version=4))
    elif isinstance(fmt, str) and fmt in _FORMATS:
        value = _FORMATS[fmt]
        if variant and fmt in ("date-time", "date"):
            value = (
                value.replace("-01T", f"-{1 + variant % 28:02d}T")
                if fmt == "date-time"
                else f"2024-01-{1 + variant % 28:02d}"
            )
        elif variant and fmt in ("email", "idn-email"):
            value = f"mock{variant + 1}@example.com"
        elif variant and fmt in ("uri", "url", "iri", "uri-reference"):
            value = f"{value}/{variant + 1}"
    else:
        value = f"mock {hint}" if not variant else f"mock {hint} {variant + 1}"
    low = _int(schema.get("minLength"), 0)
    high = _int(schema.get("maxLength"), None)
    if len(value) < low:
        value += "x" * (low - len(value))
    if high is not None and len(value) > high:
        value = value[:high]
    return value


def _integer(schema: dict[str, Any], variant: int) -> int:
    low, high = _bounds(schema, True)
    step = schema.get("multipleOf")
    value = 1 + variant
    if isinstance(step, int) and not isinstance(step, bool) and step > 0:
        value = step * (1 + variant)
        if low is not None and value < low:
            value = math.ceil(low / step) * step
        if high is not None and value > high:
            value = math.floor(high / step) * step
        return int(value)
    if low is not None and value < low:
        value = math.ceil(low)
    if high is not None and value > high:
        value = math.floor(high)
    return int(value)


def _number(schema: dict[str, Any], variant: int) -> float | int:
    step = schema.get("multipleOf")
    if isinstance(step, int | float) and not isinstance(step, bool) and step > 0:
        low, high = _bounds(schema, False)
        n = 1 + variant
        if low is not None and n * step < low:
            n = math.ceil(low / step)
        if high is not None and n * step > high:
            n = math.floor(high / step)
        return n * step
    low, high = _bounds(schema, False)
    value: float = 1.5 + variant
    if (low is not None and value < low) or (high is not None and value > high):
        if low is not None and high is not None:
            value = (low + high) / 2
        elif low is not None:
            value = low + 1 + variant
        elif high is not None:
            value = high - 1 - variant
    return value


def _bounds(schema: dict[str, Any], integer: bool) -> tuple[float | None, float | None]:
    """Inclusive bounds from minimum/maximum and their exclusive forms (integers step past an exclusive one)."""
    nudge = 1 if integer else 0
    low = _num(schema.get("minimum"))
    xlow = _num(schema.get("exclusiveMinimum"))
    if xlow is not None and (low is None or xlow >= low):
        low = xlow + nudge
    high = _num(schema.get("maximum"))
    xhigh = _num(schema.get("exclusiveMaximum"))
    if xhigh is not None and (high is None or xhigh <= high):
        high = xhigh - nudge
    return low, high


def _singular(hint: str) -> str:
    if hint.endswith("ies") and len(hint) > 3:
        return hint[:-3] + "y"
    if hint.endswith("s") and not hint.endswith("ss") and len(hint) > 1:
        return hint[:-1]
    return hint


# --------------------------------------------------------------------------------------------------
# Validation


def problems(value: Any, schema: Any, limit: int = 5) -> list[str]:
    """Why `value` does not fit `schema` (at most `limit` reasons, each with its JSON path); [] when it fits."""
    out: list[str] = []
    _check(schema if isinstance(schema, dict) else {}, value, schema, "$", out, limit)
    return out[:limit]


def _check(root: dict[str, Any], value: Any, schema: Any, path: str, out: list[str], limit: int) -> None:
    if len(out) >= limit or schema is True or not isinstance(schema, dict):
        if schema is False:
            out.append(f"{path}: no value is allowed here")
        return
    schema = _resolve(root, schema)
    if schema.get("nullable") is True and value is None:
        return
    if "const" in schema and not _same(value, schema["const"]):
        out.append(f"{path}: expected {_show(schema['const'])}")
        return
    enum = schema.get("enum")
    if isinstance(enum, list) and not any(_same(value, e) for e in enum):
        out.append(f"{path}: {_show(value)} is not one of {_show(enum)}")
        return
    for sub in schema.get("allOf") or ():
        _check(root, value, sub, path, out, limit)
    any_of = schema.get("anyOf")
    if isinstance(any_of, list) and any_of and not any(not problems_at(root, value, s) for s in any_of):
        out.append(f"{path}: {_show(value)} matches none of the anyOf branches")
        return
    one_of = schema.get("oneOf")
    if isinstance(one_of, list) and one_of:
        matching = sum(1 for s in one_of if not problems_at(root, value, s))
        if matching != 1:
            out.append(f"{path}: {_show(value)} matches {matching} of the oneOf branches, not exactly one")
            return
    types = _types(schema)
    if types and not any(_is(value, t) for t in types):
        if not (value is None and schema.get("nullable") is True):
            out.append(f"{path}: expected {' or '.join(types)}, got {_json_type(value)}")
        return
    if isinstance(value, dict):
        _check_object(root, value, schema, path, out, limit)
    elif isinstance(value, list):
        _check_array(root, value, schema, path, out, limit)
    elif isinstance(value, str):
        _check_string(value, schema, path, out)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        _check_number(value, schema, path, out)


def problems_at(root: dict[str, Any], value: Any, schema: Any) -> list[str]:
    out: list[str] = []
    _check(root, value, schema, "$", out, 1)
    return out


def _check_object(
    root: dict[str, Any], value: dict[str, Any], schema: dict[str, Any], path: str, out: list[str], limit: int
) -> None:
    props = schema.get("properties")
    props = props if isinstance(props, dict) else {}
    for name in schema.get("required") or ():
        if isinstance(name, str) and name not in value:
            out.append(f"{path}: missing required property '{name}'")
    extra = schema.get("additionalProperties")
    for name, item in value.items():
        where = f"{path}.{name}"
        if name in props:
            _check(root, item, props[name], where, out, limit)
        elif extra is False:
            out.append(f"{path}: unexpected property '{name}'")
        elif isinstance(extra, dict):
            _check(root, item, extra, where, out, limit)


def _check_array(
    root: dict[str, Any], value: list[Any], schema: dict[str, Any], path: str, out: list[str], limit: int
) -> None:
    low = _int(schema.get("minItems"), None)
    high = _int(schema.get("maxItems"), None)
    if low is not None and len(value) < low:
        out.append(f"{path}: {len(value)} items, at least {low} expected")
    if high is not None and len(value) > high:
        out.append(f"{path}: {len(value)} items, at most {high} expected")
    prefix = schema.get("prefixItems")
    prefix = prefix if isinstance(prefix, list) else []
    items = schema.get("items")
    for i, item in enumerate(value):
        sub = prefix[i] if i < len(prefix) else items
        if sub is not None:
            _check(root, item, sub, f"{path}[{i}]", out, limit)
    if schema.get("uniqueItems") is True:
        seen: list[Any] = []
        for item in value:
            if any(_same(item, s) for s in seen):
                out.append(f"{path}: items are not unique")
                break
            seen.append(item)


def _check_string(value: str, schema: dict[str, Any], path: str, out: list[str]) -> None:
    low = _int(schema.get("minLength"), None)
    high = _int(schema.get("maxLength"), None)
    if low is not None and len(value) < low:
        out.append(f"{path}: shorter than {low} characters")
    if high is not None and len(value) > high:
        out.append(f"{path}: longer than {high} characters")
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        try:
            if re.search(pattern, value) is None:
                out.append(f"{path}: does not match pattern {pattern!r}")
        except re.error:
            pass  # a pattern Python cannot read: not this fake's business to reject
    fmt = schema.get("format")
    if isinstance(fmt, str) and not _format_ok(fmt, value):
        out.append(f"{path}: {_show(value)} is not a valid {fmt}")


def _check_number(value: float, schema: dict[str, Any], path: str, out: list[str]) -> None:
    low = _num(schema.get("minimum"))
    high = _num(schema.get("maximum"))
    xlow = _num(schema.get("exclusiveMinimum"))
    xhigh = _num(schema.get("exclusiveMaximum"))
    if low is not None and value < low:
        out.append(f"{path}: {value} is below the minimum {low}")
    if high is not None and value > high:
        out.append(f"{path}: {value} is above the maximum {high}")
    if xlow is not None and value <= xlow:
        out.append(f"{path}: {value} is not above {xlow}")
    if xhigh is not None and value >= xhigh:
        out.append(f"{path}: {value} is not below {xhigh}")
    step = _num(schema.get("multipleOf"))
    if step and abs(value / step - round(value / step)) > 1e-9:
        out.append(f"{path}: {value} is not a multiple of {step}")


def _format_ok(fmt: str, value: str) -> bool:
    try:
        if fmt == "date-time":
            datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
            return "T" in value.upper()
        if fmt == "date":
            date.fromisoformat(value)
            return len(value) == 10
        if fmt == "time":
            time.fromisoformat(value.replace("Z", "+00:00"))
            return True
        if fmt == "uuid":
            uuid.UUID(value)
            return len(value) == 36
    except ValueError:
        return False
    if fmt in ("email", "idn-email"):
        return _EMAIL.match(value) is not None
    if fmt in ("uri", "url", "iri"):
        return _URI.match(value) is not None
    if fmt in ("hostname", "idn-hostname"):
        return _HOSTNAME.match(value) is not None
    if fmt == "ipv4":
        parts = value.split(".")
        return len(parts) == 4 and all(p.isdigit() and int(p) < 256 and str(int(p)) == p for p in parts)
    if fmt == "ipv6":
        import ipaddress

        try:
            ipaddress.IPv6Address(value)
        except ValueError:
            return False
        return True
    if fmt == "duration":
        return _DURATION.match(value) is not None
    return True  # formats this module does not know are annotations


# --------------------------------------------------------------------------------------------------
# OpenAI's strict mode


def strict_problem(schema: Any) -> str | None:
    """What OpenAI's strict mode rejects in `schema` (every object closed, every property required), in its words."""
    if not isinstance(schema, dict):
        return "schema must be a JSON Schema of 'type: \"object\"', got 'type: \"None\"'."
    if schema.get("type") != "object" or "anyOf" in schema:
        return f"schema must be a JSON Schema of 'type: \"object\"', got 'type: \"{schema.get('type')}\"'."
    return _strict_walk(schema, ())


def _strict_walk(schema: Any, context: tuple[str, ...]) -> str | None:
    if not isinstance(schema, dict):
        return None
    where = f"In context={context!r}, " if context else "In context=(), "
    if _first_type(schema) == "object" and "$ref" not in schema:
        if schema.get("additionalProperties") is not False:
            return where + "'additionalProperties' is required to be supplied and to be false."
        props = schema.get("properties")
        props = props if isinstance(props, dict) else {}
        required = schema.get("required")
        required = required if isinstance(required, list) else []
        missing = [name for name in props if name not in required]
        if missing:
            return (
                where + "'required' is required to be supplied and to be an array including every key in properties. "
                f"Missing '{missing[0]}'."
            )
        for name, sub in props.items():
            found = _strict_walk(sub, (*context, "properties", name))
            if found:
                return found
    for key in ("items",):
        found = _strict_walk(schema.get(key), (*context, key))
        if found:
            return found
    for key in ("anyOf", "allOf", "oneOf", "prefixItems"):
        branches = schema.get(key)
        if isinstance(branches, list):
            for i, sub in enumerate(branches):
                found = _strict_walk(sub, (*context, key, str(i)))
                if found:
                    return found
    for key in ("$defs", "definitions"):
        defs = schema.get(key)
        if isinstance(defs, dict):
            for name, sub in defs.items():
                found = _strict_walk(sub, (*context, key, name))
                if found:
                    return found
    return None


# --------------------------------------------------------------------------------------------------
# Shared


def _resolve(root: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Follow `$ref` (local JSON pointers only), keeping the referring schema's other keywords."""
    seen = 0
    while isinstance(schema.get("$ref"), str) and seen < 32:
        ref = schema["$ref"]
        target: Any = root
        if ref != "#":
            if not ref.startswith("#/"):
                return {k: v for k, v in schema.items() if k != "$ref"}
            for part in ref[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                target = target.get(part) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            return {k: v for k, v in schema.items() if k != "$ref"}
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        schema = {**target, **rest} if rest else target
        seen += 1
    return schema


def _merge_all_of(root: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    for sub in schema["allOf"]:
        if not isinstance(sub, dict):
            continue
        sub = _resolve(root, sub)
        if isinstance(sub.get("allOf"), list):
            sub = _merge_all_of(root, sub)
        for key, val in sub.items():
            if key == "properties" and isinstance(val, dict):
                merged["properties"] = {**merged.get("properties", {}), **val}
            elif key == "required" and isinstance(val, list):
                merged["required"] = [*merged.get("required", []), *val]
            else:
                merged.setdefault(key, val)
    return merged


def _types(schema: dict[str, Any]) -> list[str]:
    kind = schema.get("type")
    if isinstance(kind, str):
        return [kind]
    if isinstance(kind, list):
        return [k for k in kind if isinstance(k, str)]
    return []


def _first_type(schema: dict[str, Any]) -> str:
    types = _types(schema)
    non_null = [t for t in types if t != "null"]
    if non_null:
        return non_null[0]
    if types:
        return "null"
    if "properties" in schema or "required" in schema or "additionalProperties" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    if any(k in schema for k in ("minimum", "maximum", "multipleOf", "exclusiveMinimum", "exclusiveMaximum")):
        return "number"
    return "string"


def _is(value: Any, kind: str) -> bool:
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    if kind == "array":
        return isinstance(value, list)
    if kind == "object":
        return isinstance(value, dict)
    return True


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _same(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0, but true != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _show(value: Any) -> str:
    import orjson

    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _int(value: Any, default: int | None) -> Any:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default


def _num(value: Any) -> float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None
