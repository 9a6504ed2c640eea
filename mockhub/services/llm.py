"""What the LLM fakes (OpenAI, Anthropic, Gemini) share: one view of a conversation, reply selection (a
stub's scripted reply or the deterministic default), token counts (`tokens.py`), timing (`Timing`: time
to first token, tokens per second), SSE frames, billed usage (`billed`), embeddings and API-key checks.
Each provider module only translates its wire format to and from these types, so the matching and
reply logic exists once.

The `data` fields every LLM call records (stubs can match them with `match.data`):
`model`, `messages`, `stream`, `tools`, `max_tokens`, `last_user_message` (the text of the last user
message that is not only tool results), `has_tool_result` (a tool result follows that message: the
model is asked to continue an agent loop), `tool_results` (`[{id, content}]`), and, once answered,
`reply` (the reply text), `reply_tool_calls` (`[{id, name, arguments}]`), the finish/stop reason
and `usage` (`{input_tokens, output_tokens}`).
"""

from __future__ import annotations

import array
import asyncio
import hashlib
import math
import os
import random
import re
import sys
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import BaseModel, ConfigDict

from mockhub.journal import Call, default_summary
from mockhub.rules import StubHit, StubReply
from mockhub.services.tokens import APPROX, Tokenizer
from mockhub.settings import LlmJitter, LlmSeed, LlmTokensPerS, LlmTtftMs
from mockhub.usage import Billed, ModelPrice

if TYPE_CHECKING:
    from mockhub.settings import Settings

__all__ = [
    "DEFAULT_PREFIX",
    "TOOL_RESULT_PREFIX",
    "Conversation",
    "Credentials",
    "Frames",
    "LlmReply",
    "LlmTiming",
    "Shape",
    "StubMismatch",
    "Timing",
    "ToolSpec",
    "ToolUse",
    "Turn",
    "bearer",
    "choose_reply",
    "compose_reply",
    "conversation",
    "count_tokens",
    "embedding",
    "embedding_base64",
    "paced",
    "random_id",
    "record_reply",
    "shaped_reply",
    "sse",
    "text_of",
    "timed_stream",
    "tokenize",
    "trailing_tool_results",
]

DEFAULT_PREFIX = "mock reply to: "
# The default reply echoes at most this much of the prompt, so a long RAG prompt gets a short answer.
ECHO_LIMIT = 200

_WORD = re.compile(r"\w+")


def tokenize(text: str, tokens: Tokenizer = APPROX, model: str | None = None) -> list[str]:
    """`text` in token-sized pieces (what a stream sends one per chunk); they join back to `text`."""
    return [piece for piece, _ in tokens.pieces(text, model)]


def count_tokens(text: str, tokens: Tokenizer = APPROX, model: str | None = None) -> int:
    """The tokens of `text` by `tokens` (`mockhub.services.tokens`: tiktoken when available)."""
    return tokens.count(text, model)


async def warm(tokens: Tokenizer) -> None:
    """Read the tokenizer's encoding files in a worker thread at start, so no LLM call waits for them."""
    await asyncio.to_thread(tokens.load)


def random_id(prefix: str, nbytes: int = 12) -> str:
    return prefix + os.urandom(nbytes).hex()


# --------------------------------------------------------------------------------------------------
# The request side


@dataclass(slots=True)
class Turn:
    """One message of a conversation, reduced to what reply selection needs.

    `role` is one of system, user, assistant, tool (a tool result: OpenAI's `tool` messages,
    Anthropic's `tool_result` blocks).
    """

    role: str
    text: str
    call_id: str | None = None


@dataclass(slots=True)
class Conversation:
    """A provider-neutral view of one LLM request; `fields()` records it in the call's `data`."""

    model: str
    last_user_message: str
    has_tool_result: bool
    tool_results: list[dict[str, Any]]
    prompt_tokens: int
    turn_count: int
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    tokens: Tokenizer = APPROX

    def fields(self) -> dict[str, Any]:
        """The derived `data` fields a provider's parser adds to the call (`from_data` reads them back)."""
        out: dict[str, Any] = {
            "max_tokens": self.max_tokens,
            "last_user_message": self.last_user_message,
            "has_tool_result": self.has_tool_result,
            "tool_results": self.tool_results,
            "usage": {"input_tokens": self.prompt_tokens},
        }
        if self.stop:
            out["stop"] = self.stop
        return out

    @classmethod
    def from_data(cls, data: dict[str, Any], tokens: Tokenizer = APPROX) -> Conversation:
        """The conversation again in the fake's handler, from what its parser recorded."""
        messages = data.get("messages")
        return cls(
            model=data["model"],
            last_user_message=data["last_user_message"],
            has_tool_result=data["has_tool_result"],
            tool_results=data["tool_results"],
            prompt_tokens=data["usage"]["input_tokens"],
            turn_count=len(messages) if isinstance(messages, list) else 0,
            max_tokens=data["max_tokens"],
            stop=data.get("stop") or [],
            tokens=tokens,
        )


def conversation(
    model: str,
    turns: list[Turn],
    extra: Iterable[str] = (),
    max_tokens: int | None = None,
    stop: Iterable[str] = (),
    tokens: Tokenizer = APPROX,
) -> Conversation:
    """Build the neutral view; `extra` is prompt text outside the turns (tool definitions)."""
    last_user = -1
    for i in range(len(turns) - 1, -1, -1):
        if turns[i].role == "user":
            last_user = i
            break
    has_tool_result = any(t.role == "tool" for t in turns[last_user + 1 :])
    # Like OpenAI's published estimate: every message costs a few tokens of framing, plus the reply primer.
    prompt_tokens = sum(tokens.count(t.text, model) + 4 for t in turns) + sum(tokens.count(x, model) for x in extra) + 3
    return Conversation(
        model=model,
        last_user_message=turns[last_user].text if last_user >= 0 else "",
        has_tool_result=has_tool_result,
        tool_results=[{"id": t.call_id, "content": t.text} for t in turns if t.role == "tool"],
        prompt_tokens=prompt_tokens,
        turn_count=len(turns),
        max_tokens=max_tokens,
        stop=[s for s in stop if isinstance(s, str) and s],
        tokens=tokens,
    )


def text_of(content: Any) -> str:
    """The text in a message's `content`: a string, or a list of parts with `text` (or `content`)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict):
                text = part.get("text")
                if isinstance(text, str):
                    parts.append(text)
                elif isinstance(part.get("content"), str | list):
                    parts.append(text_of(part["content"]))
        return "\n".join(p for p in parts if p)
    return ""


# --------------------------------------------------------------------------------------------------
# The reply side


@dataclass(slots=True)
class ToolUse:
    """A tool call in the reply: `arguments` as JSON text (OpenAI), `input` as an object (Anthropic)."""

    id: str
    name: str
    arguments: str
    input: dict[str, Any]


@dataclass(slots=True)
class LlmReply:
    """The reply to render. `finish` is neutral: stop, tool_calls, length, stop_sequence, or a stub's own."""

    text: str
    pieces: list[str]
    tool_calls: list[ToolUse]
    finish: str
    input_tokens: int
    output_tokens: int
    chunk_delay_ms: int = 0
    stop_sequence: str | None = None
    stubbed: bool = False
    # The tokens each of `pieces` carries (one, or a few where a token ends inside a character).
    piece_tokens: list[int] = field(default_factory=list)


# Finish reasons a stub may give in either provider's words, mapped to the neutral ones.
_NEUTRAL_FINISH = {
    "stop": "stop",
    "end_turn": "stop",
    "tool_calls": "tool_calls",
    "tool_use": "tool_calls",
    "length": "length",
    "max_tokens": "length",
    "max_output_tokens": "length",
    "stop_sequence": "stop_sequence",
}


def choose_reply(conv: Conversation, hit: StubHit | None, tool_id_prefix: str) -> LlmReply:
    """The reply to `conv`: the stub's, else `mock reply to: <last user message>`; same request, same reply."""
    stub = scripted(hit)
    if stub is not None:
        text = stub.content or ""
        tool_calls = [
            _tool_use(tool_id_prefix, conv, i, tc.name, tc.arguments, tc.id) for i, tc in enumerate(stub.tool_calls)
        ]
    else:
        echo = conv.last_user_message
        if len(echo) > ECHO_LIMIT:
            echo = echo[:ECHO_LIMIT] + "..."
        text = DEFAULT_PREFIX + echo
        tool_calls = []
    reply = compose_reply(conv, text, tool_calls, hit)
    if stub is not None and stub.finish_reason:
        # The stub's own word wins, over a stop sequence or max tokens too.
        reply.finish = _NEUTRAL_FINISH.get(stub.finish_reason, stub.finish_reason)
    return reply


def scripted(hit: StubHit | None) -> StubReply | None:
    """The stub's reply when it scripts the answer; None for none, or one that only sets timing (`ttft_ms`...)."""
    stub = hit.reply if hit is not None else None
    if stub is None:
        return None
    if stub.content is None and not stub.tool_calls and stub.finish_reason is None:
        return None  # the default answer, paced as the reply says
    return stub


def _tool_use(
    prefix: str, conv: Conversation, index: int, name: str, arguments: dict[str, Any] | str, given: str | None
) -> ToolUse:
    if isinstance(arguments, str):
        text = arguments
        try:
            parsed = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            parsed = None  # deliberately broken arguments from a stub: the app's error path is under test
        obj = parsed if isinstance(parsed, dict) else {}
    else:
        text = orjson.dumps(arguments).decode()
        obj = arguments
    if given is None:
        # Stable per conversation turn and call, so a repeated request gets the same ids.
        seed = f"{conv.turn_count}:{index}:{name}:{text}".encode()
        given = prefix + hashlib.blake2b(seed, digest_size=12).hexdigest()
    return ToolUse(given, name, text, obj)


def record_reply(data: dict[str, Any], reply: LlmReply, finish_key: str, finish_value: str | None) -> None:
    """Put what was answered into the call's `data`."""
    data["reply"] = reply.text
    data["reply_tool_calls"] = [{"id": t.id, "name": t.name, "arguments": t.input} for t in reply.tool_calls]
    data[finish_key] = finish_value
    data["usage"] = {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens}


# --------------------------------------------------------------------------------------------------
# Streaming


def sse(obj: Any, event: str | None = None) -> bytes:
    """One Server-Sent Events frame with a JSON payload (and an `event:` line when given)."""
    data = orjson.dumps(obj)
    if event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


async def paced(frames: Sequence[bytes], delay_ms: int = 0) -> AsyncIterator[bytes]:
    """Yield `frames` one by one, `delay_ms` apart (a stub's `chunk_delay_ms`)."""
    async for frame in timed_stream(frames, [0.0] * len(frames), delay_ms):
        yield frame


class LlmTiming(BaseModel):
    """The LLM fakes' own fields of a stub's reply: its timing, over the stub's and the `llm_*` settings.

    A reply of only these fields keeps the default answer (or the shaped one) and paces it.
    """

    model_config = ConfigDict(extra="forbid")

    ttft_ms: LlmTtftMs | None = None
    tokens_per_s: LlmTokensPerS | None = None
    jitter: LlmJitter | None = None
    seed: LlmSeed = None


@dataclass(frozen=True, slots=True)
class Timing:
    """How one answer is paced: the first token after `ttft_ms`, each next one `1/tokens_per_s` later.

    A plain answer waits what its stream would have taken (`total`). `jitter` varies each wait by up to
    that fraction either way, drawn from `Random(seed)` when a seed is given: the same answer, the same pacing.
    """

    ttft_ms: float = 0.0
    tokens_per_s: float = 0.0
    jitter: float = 0.0
    seed: int | None = None

    @classmethod
    def of(cls, settings: Settings, hit: StubHit | None) -> Timing:
        """The settings' timing, with the stub's over it, and its reply's over that."""
        given = (hit.reply.model_extra or {}) if hit is not None and hit.reply is not None else {}
        spec = hit.rule.spec if hit is not None else None

        def pick(name: str, default: Any) -> Any:
            value = given.get(name)
            if value is None and spec is not None:
                value = getattr(spec, name)
            return default if value is None else value

        return cls(
            float(pick("ttft_ms", settings.llm_ttft_ms)),
            float(pick("tokens_per_s", settings.llm_tokens_per_s)),
            float(pick("jitter", settings.llm_jitter)),
            pick("seed", settings.llm_seed),
        )

    @property
    def active(self) -> bool:
        return bool(self.ttft_ms or self.tokens_per_s)

    def _vary(self, rng: random.Random) -> float:
        return 1.0 + rng.uniform(-self.jitter, self.jitter) if self.jitter else 1.0

    def waits(self, tokens: Sequence[int]) -> list[float]:
        """Seconds to wait before each frame; `tokens[i]` is how many output tokens frame i carries.

        The first frame waits the time to first token, and every frame up to the first that carries
        tokens goes with it; each later frame waits for the tokens it carries; the others go at once.
        """
        if not self.active or not tokens:
            return [0.0] * len(tokens)
        rng = random.Random(self.seed) if self.seed is not None else random.Random()
        out = [self.ttft_ms / 1000 * self._vary(rng)]
        started = tokens[0] > 0
        per_token = 1 / self.tokens_per_s if self.tokens_per_s else 0.0
        for n in tokens[1:]:
            if n and started and per_token:
                out.append(n * per_token * self._vary(rng))
            else:
                out.append(0.0)
            started = started or n > 0
        return out

    def total(self, output_tokens: int) -> float:
        """The seconds a plain answer of `output_tokens` waits: what its stream would take."""
        if not self.active:
            return 0.0
        rng = random.Random(self.seed) if self.seed is not None else random.Random()
        first = self.ttft_ms / 1000 * self._vary(rng)
        rest = max(output_tokens - 1, 0) / self.tokens_per_s if self.tokens_per_s else 0.0
        return first + rest * self._vary(rng)


class Frames:
    """A stream's frames, each with the output tokens it carries (what its pacing waits for)."""

    __slots__ = ("frames", "tokens")

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.tokens: list[int] = []

    def __len__(self) -> int:
        return len(self.frames)

    def add(self, frame: bytes, tokens: int = 0) -> None:
        self.frames.append(frame)
        self.tokens.append(tokens)

    def stream(self, timing: Timing, delay_ms: int = 0) -> AsyncIterator[bytes]:
        return timed_stream(self.frames, timing.waits(self.tokens), delay_ms)


async def timed_stream(frames: Sequence[bytes], waits: Sequence[float], delay_ms: int = 0) -> AsyncIterator[bytes]:
    """Yield `frames`, each after its wait (plus a stub's `chunk_delay_ms` between frames).

    The waits add up from the start against the loop's clock, so a long stream does not drift by each
    sleep's overshoot. Only this answer waits: other requests go on meanwhile.
    """
    loop = asyncio.get_running_loop()
    delay = delay_ms / 1000
    due = loop.time()
    for i, frame in enumerate(frames):
        due += waits[i] + (delay if i else 0.0)
        pause = due - loop.time()
        if pause > 0:
            await asyncio.sleep(pause)
        yield frame


# --------------------------------------------------------------------------------------------------
# Embeddings


def embedding(text: str, dims: int) -> list[float]:
    """A deterministic unit vector for `text`: hashed word features plus text-specific noise.

    The same text always gives the same vector, and texts sharing words point in similar directions,
    so similarity search over mock embeddings behaves plausibly.
    """
    vec = [0.0] * dims
    for word in _WORD.findall(text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=32).digest()
        for j in range(0, 32, 4):
            n = int.from_bytes(digest[j : j + 4], "little")
            vec[(n >> 1) % dims] += 1.0 if n & 1 else -1.0
    noise = array.array("h", hashlib.shake_256(b"mockhub:" + text.encode()).digest(2 * dims))
    signal = math.sqrt(math.fsum(v * v for v in vec))
    noise_norm = math.sqrt(math.fsum(float(x) * x for x in noise)) or 1.0
    scale = (0.3 * signal if signal else 1.0) / noise_norm
    vec = [v + x * scale for v, x in zip(vec, noise, strict=True)]
    norm = math.sqrt(math.fsum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


def embedding_base64(vector: list[float]) -> str:
    """The vector as OpenAI's `encoding_format: base64`: little-endian float32, base64."""
    import base64

    packed = array.array("f", vector)
    if sys.byteorder == "big":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


# --------------------------------------------------------------------------------------------------
# Auth


class Credentials:
    """The API keys a fake accepts: any non-empty one, unless `MOCKHUB_CREDENTIALS` pins a list."""

    def __init__(self, allowed: frozenset[str] | None) -> None:
        self.allowed = allowed

    def problem(self, key: str | None) -> str | None:
        """None when `key` is accepted, else `missing` or `invalid`."""
        if not key:
            return "missing"
        if self.allowed is not None and key not in self.allowed:
            return "invalid"
        return None


def bearer(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer ...` header."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def billed(call: Call, embedding: bool = False) -> Billed | None:
    """What an answered LLM call was billed for (`GET /usage`): the usage its answer reported.

    Counted: calls the fake answered with 2xx, streams included (a stream cut short was still generated).
    Not counted: refused requests, fault answers, raw `response` stubs (no `reply` was made) and stubs
    that did not fit the request. `embedding`: an embeddings call, billed for its input alone.
    """
    response = call.response
    if response is None or not 200 <= response.status < 300:
        return None
    data = call.data
    usage, model = data.get("usage"), data.get("model")
    if not isinstance(usage, dict) or not isinstance(model, str):
        return None
    if not embedding and "reply" not in data:
        return None
    tokens_in, tokens_out = usage.get("input_tokens"), usage.get("output_tokens", 0)
    if not isinstance(tokens_in, int) or not isinstance(tokens_out, int):
        return None
    return Billed(model, tokens_in, 0 if embedding else tokens_out)


def prices(table: dict[str, tuple[float, float]]) -> dict[str, ModelPrice]:
    """A fake's price table from `{model: (input, output)}` in USD per million tokens."""
    return {model: ModelPrice(input=i, output=o) for model, (i, o) in table.items()}


def summary(call: Call) -> str:
    """`gpt-4o: <last user message> → <reply>`: what the application asked and what it was told."""
    data = call.data
    model = data.get("model")
    asked = data.get("last_user_message")
    reply = data.get("reply")
    parts = [f"{model}:" if isinstance(model, str) else ""]
    if isinstance(asked, str) and asked:
        parts.append(" ".join(asked.split())[:120])
    if isinstance(reply, str) and reply:
        parts.append(f"→ {' '.join(reply.split())[:120]}")
    elif data.get("reply_tool_calls"):
        names = [t.get("name") for t in data["reply_tool_calls"] if isinstance(t, dict)]
        parts.append(f"→ tool call {', '.join(str(n) for n in names)}")
    text = " ".join(p for p in parts if p)
    return text if text.rstrip(":") else default_summary(call)


# --------------------------------------------------------------------------------------------------
# Structured outputs and tool choice (the shape a request demands of its reply)

TOOL_RESULT_PREFIX = "mock reply to tool result: "


@dataclass(slots=True)
class ToolSpec:
    """A declared function tool: its name, its parameters' JSON Schema, and whether it is strict."""

    name: str
    schema: dict[str, Any]
    strict: bool = False


@dataclass(slots=True)
class Shape:
    """What the request demands of the reply: a format (text, json_object, json_schema) and a tool choice.

    `tool_choice` is neutral: auto, none, required (OpenAI `required`, Anthropic `any`) or named.
    """

    format: str = "text"
    schema: dict[str, Any] | None = None
    schema_name: str | None = None
    tool_choice: str = "auto"
    tool_name: str | None = None
    tools: list[ToolSpec] = field(default_factory=list)

    def forced_tool(self) -> ToolSpec | None:
        """The tool the reply must call, when the tool choice forces one."""
        if self.tool_choice == "named":
            return next((t for t in self.tools if t.name == self.tool_name), None)
        if self.tool_choice == "required" and self.tools:
            return self.tools[0]
        return None

    def fields(self) -> dict[str, Any]:
        """The `data` fields recorded for it: `response_format` and `tool_choice`."""
        fmt: dict[str, Any] | None = None
        if self.format != "text":
            fmt = {"type": self.format, "name": self.schema_name, "schema": self.schema}
        choice: Any = {"type": "function", "name": self.tool_name} if self.tool_choice == "named" else self.tool_choice
        return {"response_format": fmt, "tool_choice": choice}


class StubMismatch(Exception):
    """A stub's reply does not fit the shape the request demands (the real API would never answer it)."""


def trailing_tool_results(turns: Sequence[Turn]) -> list[str]:
    """The contents of the tool results that end the conversation (what the next reply answers)."""
    out: list[str] = []
    for turn in reversed(turns):
        if turn.role != "tool":
            break
        out.append(turn.text)
    return out[::-1]


def compose_reply(
    conv: Conversation, text: str, tool_calls: list[ToolUse], hit: StubHit | None = None, finish: str | None = None
) -> LlmReply:
    """An LlmReply of `text` and `tool_calls`, cut by the request's stop sequences and max tokens."""
    finish = finish or ("tool_calls" if tool_calls else "stop")
    stop_sequence: str | None = None
    if conv.stop:
        cut = min(((text.find(s), s) for s in conv.stop if s in text), default=None)
        if cut is not None:
            text, stop_sequence, finish, tool_calls = text[: cut[0]], cut[1], "stop_sequence", []
    split = conv.tokens.pieces(text, conv.model)
    if conv.max_tokens is not None and sum(n for _, n in split) > conv.max_tokens:
        kept, budget = [], conv.max_tokens
        for piece, n in split:
            if n > budget:
                break
            kept.append((piece, n))
            budget -= n
        split = kept
        text = "".join(p for p, _ in split)
        finish, tool_calls, stop_sequence = "length", [], None
    output_tokens = sum(n for _, n in split) + sum(tool_tokens(conv, t) for t in tool_calls)
    return LlmReply(
        text=text,
        pieces=[p for p, _ in split],
        tool_calls=tool_calls,
        finish=finish,
        input_tokens=conv.prompt_tokens,
        output_tokens=max(output_tokens, 1),
        chunk_delay_ms=hit.chunk_delay_ms if hit is not None else 0,
        stop_sequence=stop_sequence,
        stubbed=scripted(hit) is not None,
        piece_tokens=[n for _, n in split],
    )


def tool_tokens(conv: Conversation, tool: ToolUse) -> int:
    """The output tokens a tool call costs: its name, its arguments and a few of framing."""
    return conv.tokens.count(tool.name, conv.model) + conv.tokens.count(tool.arguments, conv.model) + 3


def argument_pieces(conv: Conversation, tool: ToolUse) -> list[tuple[str, int]]:
    """A tool call's arguments as a stream sends them, with the tokens of each fragment."""
    return conv.tokens.pieces(tool.arguments, conv.model)


def shaped_reply(
    conv: Conversation,
    hit: StubHit | None,
    tool_id_prefix: str,
    shape: Shape,
    tool_results: Sequence[str] = (),
    variant: int = 0,
) -> LlmReply:
    """The reply in the shape the request demands; raises StubMismatch for a stub that does not fit it.

    Without a stub: a forced tool choice gets a call of that tool with arguments generated from its
    schema, a JSON format gets a document generated from the schema, a turn ending in tool results
    gets `mock reply to tool result: ...`, anything else the usual echo. `variant` (OpenAI's `n`)
    makes each choice distinct; the same request and variant give the same reply.
    """
    from mockhub.services import json_schema

    if scripted(hit) is not None:
        assert hit is not None
        reply = choose_reply(conv, hit, tool_id_prefix)
        _check_stub(reply, hit, shape)
        return reply
    forced = shape.forced_tool()
    if forced is not None:
        arguments = json_schema.example(forced.schema, variant)
        tool = _tool_use(tool_id_prefix, conv, variant, forced.name, arguments, None)
        return compose_reply(conv, "", [tool], hit)
    if shape.format == "json_schema":
        text = orjson.dumps(json_schema.example(shape.schema or {}, variant)).decode()
    elif shape.format == "json_object":
        text = orjson.dumps({"reply": _default_text(conv, tool_results, variant)}).decode()
    else:
        text = _default_text(conv, tool_results, variant)
    return compose_reply(conv, text, [], hit)


def _default_text(conv: Conversation, tool_results: Sequence[str], variant: int) -> str:
    if tool_results:
        prefix, echo = TOOL_RESULT_PREFIX, "; ".join(" ".join(r.split()) for r in tool_results)
    else:
        prefix, echo = DEFAULT_PREFIX, conv.last_user_message
    if len(echo) > ECHO_LIMIT:
        echo = echo[:ECHO_LIMIT] + "..."
    return prefix + echo + (f" (choice {variant + 1})" if variant else "")


def _check_stub(reply: LlmReply, hit: StubHit, shape: Shape) -> None:
    """Raise StubMismatch when the stub's reply breaks the request's guarantees."""
    from mockhub.services import json_schema

    if reply.finish == "length":
        return  # a truncated answer may break the shape on the real API too
    who = f"stub {hit.rule.id}"
    if shape.tool_choice == "none" and reply.tool_calls:
        raise StubMismatch(f"{who} answers a tool call, but the request's tool_choice is 'none'")
    forced = shape.forced_tool()
    if shape.tool_choice in ("required", "named") and not reply.tool_calls:
        wanted = f"a call of '{shape.tool_name}'" if shape.tool_choice == "named" else "a tool call"
        raise StubMismatch(f"{who} answers text, but the request's tool_choice demands {wanted}")
    if forced is not None and shape.tool_choice == "named" and reply.tool_calls[0].name != forced.name:
        raise StubMismatch(
            f"{who} calls '{reply.tool_calls[0].name}', but the request's tool_choice demands '{forced.name}'"
        )
    declared = {t.name: t for t in shape.tools}
    for call in reply.tool_calls:
        spec = declared.get(call.name)
        if spec is None or not spec.strict:
            continue  # without strict the real API does not promise valid arguments either
        try:
            args = orjson.loads(call.arguments)
        except orjson.JSONDecodeError:
            raise StubMismatch(f"{who}: the arguments of its call of '{call.name}' are not JSON") from None
        found = json_schema.problems(args, spec.schema)
        if found:
            raise StubMismatch(
                f"{who}: the arguments of its call of '{call.name}' do not fit the tool's strict schema: "
                + "; ".join(found)
            )
    if shape.format == "text" or (reply.tool_calls and not reply.text):
        return
    try:
        doc = orjson.loads(reply.text)
    except orjson.JSONDecodeError:
        raise StubMismatch(
            f"{who}: its content is not JSON, but the request's response format is {shape.format}"
        ) from None
    if shape.format == "json_object" and not isinstance(doc, dict):
        raise StubMismatch(f"{who}: its content is not a JSON object, but the request's response format is json_object")
    if shape.format == "json_schema":
        found = json_schema.problems(doc, shape.schema or {})
        if found:
            name = f" '{shape.schema_name}'" if shape.schema_name else ""
            raise StubMismatch(f"{who}: its content does not fit the request's JSON schema{name}: " + "; ".join(found))
