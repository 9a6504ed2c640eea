"""The runnable examples of README.md and docs/: every ```python run block is executed.

Each block runs against the session's real mockhub (started in-process by tests/conftest.py) after a
reset. Blocks are written against the default addresses (http://localhost:8080, SMTP port 1025);
they are rewritten to the test server's ports before running. See docs/architecture.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from mockhub.server import ThreadedHub

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<fence>```+)python run[ \t]*\n(?P<code>.*?)^(?P=indent)(?P=fence)[ \t]*$", re.M | re.S
)
HTTP = re.compile(r"http://(?:localhost|127\.0\.0\.1):8080")
SMTP_PORT = re.compile(r"\b1025\b")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    code: str

    @property
    def name(self) -> str:
        path = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        return f"{path}:{self.line}"


def collect(paths: list[Path]) -> list[Block]:
    blocks = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        for m in FENCE.finditer(text):
            indent = len(m["indent"])
            code = "\n".join(line[indent:] for line in m["code"].splitlines())
            blocks.append(Block(path, text.count("\n", 0, m.start()) + 1, code))
    return blocks


BLOCKS = collect(SOURCES)


def run_block(block: Block, url: str, smtp_port: int) -> None:
    """Execute one block against the server at `url`; whatever it raises propagates."""
    code = SMTP_PORT.sub(str(smtp_port), HTTP.sub(url, block.code))
    exec(compile(code, block.name, "exec"), {"__name__": "__docs__"})


@pytest.fixture
def hub(server: ThreadedHub, monkeypatch: pytest.MonkeyPatch) -> ThreadedHub:
    monkeypatch.setenv("MOCKHUB_URL", server.url)
    httpx.post(server.url + "/reset").raise_for_status()
    return server


@pytest.mark.parametrize("block", BLOCKS, ids=[b.name for b in BLOCKS])
def test_example_runs(block: Block, hub: ThreadedHub) -> None:
    run_block(block, hub.url, hub.smtp_port)


def test_the_readme_and_the_docs_have_runnable_examples() -> None:
    files = {b.path.relative_to(ROOT).as_posix() for b in BLOCKS}
    assert "README.md" in files, "the README's 30-second example must be marked ```python run"
    assert len([f for f in files if f.startswith("docs/")]) >= 5, files


def test_a_failing_example_fails(hub: ThreadedHub, tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "x\n\n```python run\nimport httpx\nhttpx.get('http://localhost:8080/calls/nope').raise_for_status()\n```\n"
    )
    [block] = collect([page])
    assert block.line == 3
    with pytest.raises(httpx.HTTPStatusError):
        run_block(block, hub.url, hub.smtp_port)


def test_examples_are_rewritten_to_the_test_server() -> None:
    block = Block(ROOT / "README.md", 1, 'URL = "http://localhost:8080/v1"\nPORT = ("localhost", 1025)\n')
    seen: dict[str, object] = {}
    code = SMTP_PORT.sub("4242", HTTP.sub("http://127.0.0.1:5555", block.code))
    exec(code, seen)
    assert seen["URL"] == "http://127.0.0.1:5555/v1"
    assert seen["PORT"] == ("localhost", 4242)
