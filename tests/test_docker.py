"""The container packaging, without a Docker engine (these machines have none).

The Dockerfile is read and checked for what the image promises (slim multi-stage build, non-root
user, ports, healthcheck, volume, configuration by environment). Then the package is installed with
`pip install .` into a clean virtual environment, the way the image's build stage does, and started
with the image's own ENTRYPOINT/CMD and ENV, the way the container starts it.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
import signal
import smtplib
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import typer.main
import yaml

from mockhub.cli import app
from mockhub.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"


@dataclass
class Instruction:
    keyword: str
    args: str


def parse_dockerfile(text: str) -> list[list[Instruction]]:
    """The instructions of each build stage (stage 0 holds the ARGs before the first FROM)."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):  # a comment inside a continued instruction
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    stages: list[list[Instruction]] = [[]]
    for line in lines:
        keyword, _, args = line.partition(" ")
        instruction = Instruction(keyword.upper(), args.strip())
        if instruction.keyword == "FROM":
            stages.append([])
        stages[-1].append(instruction)
    return stages


def env_of(stage: list[Instruction]) -> dict[str, str]:
    """The ENV of a stage (`ENV A=1 B="x y"` form)."""
    env: dict[str, str] = {}
    for ins in stage:
        if ins.keyword == "ENV":
            for pair in shlex.split(ins.args):
                name, sep, value = pair.partition("=")
                assert sep, f"use the ENV NAME=value form: {ins.args}"
                env[name] = value
    return env


def exec_form(stage: list[Instruction], keyword: str) -> list[str]:
    [ins] = [i for i in stage if i.keyword == keyword]
    assert ins.args.startswith("["), f"{keyword} should use the exec form (signals reach mockhub directly)"
    value: list[str] = yaml.safe_load(ins.args)
    return value


@pytest.fixture(scope="module")
def stages() -> list[list[Instruction]]:
    return parse_dockerfile(DOCKERFILE.read_text())


def test_multi_stage_slim_python(stages: list[list[Instruction]]) -> None:
    args = {k: v for i in stages[0] if i.keyword == "ARG" for k, _, v in [i.args.partition("=")]}
    froms = [stage[0].args for stage in stages[1:]]
    assert len(froms) >= 2, "multi-stage: a build stage and a runtime stage"
    for base in froms:
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base.split()[0])
        assert re.fullmatch(r"python:3\.\d+-slim", image), image
    assert froms[0].endswith(" AS build")
    runtime = stages[-1]
    copies = [i.args for i in runtime if i.keyword == "COPY"]
    assert any(c.startswith("--from=build ") for c in copies), "the runtime stage copies the built environment"
    # The build installs the package the way `pip install .` does (what test_clean_install_serves runs).
    assert any(re.search(r"pip install [^&]*\s\.(\s|$)", i.args) for i in stages[1] if i.keyword == "RUN")


def test_runs_as_an_unprivileged_user(stages: list[list[Instruction]]) -> None:
    runtime = stages[-1]
    users = [i.args for i in runtime if i.keyword == "USER"]
    assert users and users[-1] not in ("root", "0", "0:0")
    # The user is created in this stage, and USER comes before the command runs.
    assert any("useradd" in i.args and users[-1] in i.args for i in runtime if i.keyword == "RUN")
    keywords = [i.keyword for i in runtime]
    assert keywords.index("USER") < keywords.index("CMD")


def test_ports_volume_and_settings_by_environment(stages: list[list[Instruction]]) -> None:
    runtime = stages[-1]
    exposed = {p for i in runtime if i.keyword == "EXPOSE" for p in i.args.split()}
    assert {"8080", "1025"} <= exposed
    env = env_of(runtime)
    # The ports exposed are the ports mockhub listens on, on every interface.
    assert env["MOCKHUB_HOST"] == "0.0.0.0"
    assert {env["MOCKHUB_HTTP_PORT"], env["MOCKHUB_SMTP_PORT"]} == {"8080", "1025"}
    volumes = [v for i in runtime if i.keyword == "VOLUME" for v in yaml.safe_load(i.args)]
    assert env["MOCKHUB_RECORD_DIR"] in volumes
    assert env["MOCKHUB_RECORD_DIR"].rstrip("/").endswith("/recordings")
    # Every MOCKHUB_* variable the image sets is a real setting (a typo would be silently ignored),
    # apart from MOCKHUB_URL, which the client commands (`mockhub health`, `mockhub calls`) read.
    fields = {f"MOCKHUB_{name.upper()}" for name in Settings.model_fields}
    unknown = {k for k in env if k.startswith("MOCKHUB_")} - fields - {"MOCKHUB_URL"}
    assert not unknown, f"the Dockerfile sets variables mockhub does not read: {unknown}"
    assert exec_form(runtime, "ENTRYPOINT") + exec_form(runtime, "CMD") == ["mockhub", "serve"]


def test_healthcheck_uses_mockhub_health(stages: list[list[Instruction]]) -> None:
    [check] = [i.args for i in stages[-1] if i.keyword == "HEALTHCHECK"]
    command = check.split(" CMD ", 1)[1]
    assert command.startswith("mockhub health")
    assert "${MOCKHUB_HTTP_PORT}" in command  # follows a port changed at `docker run -e`


def test_health_command_exists_in_the_cli() -> None:
    """The HEALTHCHECK runs `mockhub health`: the command must exist, with the `--url` option it is given."""
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    assert "health" in commands, (
        "`mockhub health` is not a command of mockhub.cli.app, but the Dockerfile's HEALTHCHECK runs it "
        "(the CLI client commands are built on another branch; merge it)"
    )
    options = {opt for param in commands["health"].params for opt in getattr(param, "opts", [])}
    assert "--url" in options


def test_dockerignore_keeps_the_build_inputs() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(path: str) -> bool:
        return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path.split("/")[0], p) for p in patterns)

    for needed in ("pyproject.toml", "README.md", "mockhub/__init__.py", "mockhub/services/base.py"):
        assert not ignored(needed), needed
    for junk in (".git", "tests/test_docker.py", ".venv-ci", "recordings/calls.jsonl", ".mypy_cache"):
        assert ignored(junk), junk


def test_compose_example() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.example.yml").read_text())
    services = compose["services"]
    hub = services["mockhub"]
    assert hub["build"] == "."
    assert {"8080:8080", "1025:1025"} <= set(hub["ports"])
    assert "mockhub health" in " ".join(hub["healthcheck"]["test"])
    assert services["app"]["depends_on"]["mockhub"]["condition"] == "service_healthy"
    assert any("mockhub:8080" in str(v) for v in services["app"]["environment"].values())


# -- the package as the image installs and runs it -----------------------------------------------


def _drain(stream: object, into: list[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        into.append(line)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_clean_install_serves(stages: list[list[Instruction]], tmp_path: Path) -> None:
    """`pip install .` into a fresh venv, then the image's ENTRYPOINT + CMD with the image's ENV."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    install = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert install.returncode == 0, install.stderr[-3000:]

    runtime = stages[-1]
    argv = exec_form(runtime, "ENTRYPOINT") + exec_form(runtime, "CMD")
    argv[0] = str(venv / "bin" / argv[0])  # the venv's console script, as on the image's PATH
    image_env = env_of(runtime)
    image_env.pop("PATH")
    records = tmp_path / "recordings"
    records.mkdir()
    env = {
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        **image_env,
        # The image's settings, except: loopback only, free ports, and a record directory of our own.
        "MOCKHUB_HOST": "127.0.0.1",
        "MOCKHUB_HTTP_PORT": "0",
        "MOCKHUB_SMTP_PORT": "0",
        "MOCKHUB_RECORD_DIR": str(records),
    }
    proc = subprocess.Popen(argv, env=env, cwd=tmp_path, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    output: list[str] = []
    reader = threading.Thread(target=_drain, args=(proc.stderr, output), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 30
        ready = None
        while ready is None and time.monotonic() < deadline and proc.poll() is None:
            ready = next((m for line in list(output) if (m := re.search(r"ready: http://([\d.]+):(\d+)", line))), None)
            time.sleep(0.05)
        assert ready is not None, f"no ready line; exit={proc.poll()} output:\n{''.join(output)}"
        url = f"http://{ready.group(1)}:{ready.group(2)}"
        health = httpx.get(f"{url}/health", timeout=5).json()
        assert health["status"] == "ok"
        assert health["http_port"] == int(ready.group(2))

        # The installed server is whole: a fake answers, SMTP accepts mail, the journal has both.
        assert httpx.post(f"{url}/webhooks/docker", json={"hello": "image"}, timeout=5).status_code == 200
        with smtplib.SMTP("127.0.0.1", health["smtp_port"], timeout=5) as smtp:
            smtp.sendmail("a@example.com", ["b@example.com"], b"Subject: from the image\r\n\r\nhi\r\n")
        assert httpx.get(f"{url}/calls/count", timeout=5).json()["count"] == 2

        # The HEALTHCHECK's command, as the image runs it (when this branch's CLI has it).
        commands = subprocess.run([argv[0], "--help"], env=env, capture_output=True, text=True, timeout=60).stdout
        if re.search(r"^\W*health\b", commands, re.MULTILINE):
            check = subprocess.run([argv[0], "health", "--url", url], env=env, capture_output=True, timeout=60)
            assert check.returncode == 0, check
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    log = "".join(output)
    # uvicorn shuts down gracefully, then re-raises the signal so a supervisor sees "terminated by
    # SIGTERM" (exit 143 in a container, what `docker stop` expects); anything else is a failure.
    assert code in (0, -signal.SIGTERM), f"exit {code}\n{log}"
    assert "Application shutdown complete" in log, log
    assert "Traceback" not in log, log
