"""The CLI client commands: typer's CliRunner in-process, and `python -m mockhub` as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from support import free_port
from typer.testing import CliRunner

import mockhub as mockhub_package
from mockhub.cli import app
from mockhub.server import ThreadedHub

ROOT = str(Path(mockhub_package.__file__).resolve().parent.parent)
runner = CliRunner()


def cli(*args: str, url: str | None = None, **env: str) -> tuple[int, str, str]:
    environ = {"MOCKHUB_URL": url or "", "NO_COLOR": "", "FORCE_COLOR": "", **env}
    result = runner.invoke(app, list(args), env=environ)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def mockhub_cmd(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PYTHONPATH": ROOT, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "mockhub", *args], capture_output=True, text=True, env=environ, timeout=timeout
    )


def seed(url: str) -> None:
    httpx.post(f"{url}/webhooks/alerts", json={"summary": "disk full on db-1"})
    httpx.post(f"{url}/ns/team-a/webhooks/alerts", json={"summary": "cpu high"})
    httpx.post(f"{url}/webhooks/billing", data={"invoice": "42"})


def test_calls_table_and_json(base_url: str) -> None:
    seed(base_url)
    code, out, err = cli("calls", "--url", base_url)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["SEQ", "TIME", "SERVICE", "NAMESPACE", "METHOD", "PATH", "STATUS", "SUMMARY"]
    assert len(lines) == 4
    assert "disk full on db-1" in lines[1] and "team-a" in lines[2] and "/webhooks/billing" in lines[3]
    assert "3 call(s)" in err and "3 call(s)" not in out  # messages on stderr, data on stdout

    code, out, _ = cli("calls", "--json", "--service", "webhook", "--contains", "disk", url=base_url)
    assert code == 0
    body = json.loads(out)
    assert body["count"] == 1 and body["calls"][0]["data"] == {"summary": "disk full on db-1"}

    _, out, _ = cli("calls", "--json", "-n", "team-a", url=base_url)
    assert [c["namespace"] for c in json.loads(out)["calls"]] == ["team-a"]
    _, out, _ = cli("calls", "--json", "--path", "/webhooks/*", "--newest-first", "--limit", "1", url=base_url)
    assert [c["path"] for c in json.loads(out)["calls"]] == ["/webhooks/billing"]


def test_calls_wait_exits_1_with_the_explanation(base_url: str) -> None:
    seed(base_url)
    code, out, err = cli("calls", "--contains", "disk full on db-2", "--wait", "0.3", url=base_url)
    assert code == 1 and out == ""
    assert "expected 1 call(s) matching contains='disk full on db-2'" in err
    assert err.index("disk full on db-1") < err.index("cpu high")  # most similar first
    code, out, _ = cli("calls", "--contains", "disk full", "--wait", "5", "--json", url=base_url)
    assert code == 0 and json.loads(out)["count"] == 1


def test_colour_only_when_asked_and_never_with_no_color(base_url: str) -> None:
    seed(base_url)
    _, plain, _ = cli("calls", url=base_url)
    assert "\x1b[" not in plain
    _, forced, _ = cli("calls", url=base_url, FORCE_COLOR="1")
    assert "\x1b[" in forced
    _, no_color, err = cli("calls", url=base_url, FORCE_COLOR="1", NO_COLOR="1")
    assert "\x1b[" not in no_color and "\x1b[" not in err


def test_fault_add_list_clear(base_url: str) -> None:
    code, out, err = cli(
        "fault", "add", "--service", "webhook", "--preset", "rate_limited", "--times", "2",
        "--path", "/webhooks/flaky", url=base_url,
    )  # fmt: skip
    assert code == 0, err
    rule = json.loads(out)
    assert rule["id"].startswith("f_") and rule["preset"] == "rate_limited" and rule["times"] == 2
    assert f"added fault {rule['id']}" in err
    assert [httpx.post(f"{base_url}/webhooks/flaky", json={}).status_code for _ in range(3)] == [429, 429, 200]

    code, out, _ = cli("fault", "list", url=base_url)
    assert code == 0
    assert rule["id"] in out and "error:rate_limited" in out and "path=/webhooks/flaky" in out
    _, out, _ = cli("fault", "list", "--json", url=base_url)
    assert [(f["id"], f["fired"]) for f in json.loads(out)] == [(rule["id"], 2)]

    spec = json.dumps({"service": "webhook", "action": "error", "status": 503, "times": None})
    code, out, _ = cli("fault", "add", "--spec", spec, url=base_url)
    assert code == 0 and json.loads(out)["status"] == 503
    code, _, err = cli("fault", "clear", rule["id"], url=base_url)
    assert code == 0 and "deleted 1 fault(s)" in err
    code, _, err = cli("fault", "clear", url=base_url)
    assert code == 0 and "deleted 1 fault(s)" in err
    assert json.loads(cli("fault", "list", "--json", url=base_url)[1]) == []


def test_fault_add_forever_with_namespace_and_yaml_spec(base_url: str, tmp_path: Path) -> None:
    code, out, _ = cli("fault", "add", "-s", "webhook", "--status", "418", "--forever", "-n", "team-a", url=base_url)
    assert code == 0
    rule = json.loads(out)
    assert rule["match"] == {"namespace": "team-a"} and "times" in rule and rule["times"] is None
    assert httpx.post(f"{base_url}/ns/team-a/webhooks/x").status_code == 418
    assert httpx.post(f"{base_url}/webhooks/x").status_code == 200

    spec = tmp_path / "slow.yaml"
    spec.write_text("service: webhook\naction: delay\ndelay_ms: 1\n")
    code, out, _ = cli("fault", "add", "--spec", f"@{spec}", url=base_url)
    assert code == 0 and json.loads(out)["action"] == "delay"


def test_bad_rules_exit_2_with_the_reason(base_url: str) -> None:
    code, out, err = cli("fault", "add", "--service", "webhook", url=base_url)
    assert code == 2 and out == ""
    assert "needs a 'preset' or a 'status'" in err
    code, _, err = cli("fault", "add", "--spec", "{not json", url=base_url)
    assert code == 2 and "not valid JSON" in err
    code, _, err = cli("stub", "add", "--service", "webhook", url=base_url)
    assert code == 2 and "exactly one of" in err


def test_stub_add_list_clear(base_url: str) -> None:
    code, out, err = cli(
        "stub", "add", "--service", "webhook", "--path", "/webhooks/billing", "--status", "409",
        "--response-json", '{"error": "duplicate"}', url=base_url,
    )  # fmt: skip
    assert code == 0, err
    stub = json.loads(out)
    assert stub["response"] == {"status": 409, "json": {"error": "duplicate"}}
    r = httpx.post(f"{base_url}/webhooks/billing", json={})
    assert (r.status_code, r.json()) == (409, {"error": "duplicate"})

    code, out, _ = cli("stub", "list", url=base_url)
    assert stub["id"] in out and "HTTP 409" in out
    code, out, _ = cli("stub", "add", "-s", "openai", "--content", "critical", url=base_url)
    assert json.loads(out)["reply"]["content"] == "critical"
    _, out, _ = cli("stub", "list", "--json", url=base_url)
    assert [s["hits"] for s in json.loads(out)] == [1, 0]
    code, _, err = cli("stub", "clear", url=base_url)
    assert code == 0 and "deleted 2 stub(s)" in err


def test_rule_flags_parse_json_headers_and_match_shortcuts(base_url: str) -> None:
    code, out, err = cli(
        "fault", "add", "-s", "webhook", "--status", "503", "--body", '{"error": "down"}', "--header", "Retry-After: 7",
        "--regex", "db-[0-9]+", "--after", "1", url=base_url,
    )  # fmt: skip
    assert code == 0, err
    rule = json.loads(out)
    assert rule["body"] == {"error": "down"} and rule["headers"] == {"Retry-After": "7"}
    assert rule["match"] == {"regex": "db-[0-9]+"} and rule["after"] == 1 and "times" not in rule  # 1, the default
    code, out, _ = cli("fault", "add", "-s", "webhook", "--status", "500", "--body", "not json", url=base_url)
    assert code == 0 and json.loads(out)["body"] == "not json"
    code, _, err = cli("fault", "add", "-s", "webhook", "--action", "explode", url=base_url)
    assert code == 2 and "invalid rule" in err
    code, _, err = cli("stub", "add", "-s", "webhook", "--response-json", "{oops", url=base_url)
    assert code == 2 and "--response-json is not valid JSON" in err
    code, _, err = cli("stub", "add", "-s", "webhook", "--header", "no colon", url=base_url)
    assert code == 2 and "--header must look like" in err


def test_reset_whole_or_one_namespace(base_url: str, api: httpx.Client) -> None:
    seed(base_url)
    code, _, err = cli("reset", "-n", "team-a", url=base_url)
    assert code == 0 and "forgot 1 call(s), 0 fault(s), 0 stub(s) in namespace team-a" in err
    assert api.get("/calls/count").json()["count"] == 2
    code, _, err = cli("reset", url=base_url)
    assert code == 0 and "forgot 2 call(s)" in err
    assert api.get("/calls/count").json()["count"] == 0


def test_export_jsonl_to_stdout_and_to_a_file(base_url: str, tmp_path: Path) -> None:
    seed(base_url)
    code, out, _ = cli("export", url=base_url)
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["path"] for r in records] == ["/webhooks/alerts", "/webhooks/alerts", "/webhooks/billing"]
    target = tmp_path / "calls.jsonl"
    code, out, err = cli("export", "-o", str(target), "-n", "team-a", url=base_url)
    assert code == 0 and out == "" and "wrote" in err
    assert [json.loads(line)["namespace"] for line in target.read_text().splitlines()] == ["team-a"]


def test_env_formats(base_url: str, server: ThreadedHub) -> None:
    code, out, _ = cli("env", url=base_url)
    assert code == 0
    assert f"export ALERT_EMAIL_SMTP_PORT={server.smtp_port}" in out.splitlines()
    assert f"export ALERT_SLACK_WEBHOOK_URL={base_url}/services/T000/B000/XXXX" in out.splitlines()
    assert all(line.startswith("export ") for line in out.splitlines())

    _, out, _ = cli("env", "--format", "json", "-n", "ci-7", url=base_url)
    values = json.loads(out)
    assert values["OPENAI_BASE_URL"] == f"{base_url}/ns/ci-7/v1"
    assert values["ALERT_EMAIL_SMTP_USER"] == "ci-7"

    _, out, _ = cli("env", "--format", "dotenv", url=base_url)
    assert "ALERT_EMAIL_SMTP_SERVER=127.0.0.1" in out.splitlines()
    # The shell form really is what a shell can eval.
    _, shell, _ = cli("env", "-n", "ci-7", url=base_url)
    echoed = subprocess.run(
        ["sh", "-c", shell + '\nprintf %s "$ANTHROPIC_BASE_URL"'], capture_output=True, text=True, check=True
    ).stdout
    assert echoed == f"{base_url}/ns/ci-7"

    code, _, err = cli("env", "--format", "yaml", url=base_url)
    assert code == 2 and "--format must be" in err


def test_health_via_runner(base_url: str) -> None:
    code, out, err = cli("health", url=base_url)
    assert code == 0 and out.startswith("ok: mockhub ") and err == ""
    code, out, _ = cli("health", "--json", url=base_url)
    assert code == 0 and json.loads(out)["status"] == "ok"
    code, out, err = cli("health", url="http://127.0.0.1:1")
    assert code == 1 and out == ""
    assert "cannot reach mockhub at http://127.0.0.1:1" in err


def test_unreachable_server_is_one_line_on_stderr() -> None:
    code, out, err = cli("calls", url="http://127.0.0.1:1")
    assert code == 1 and out == ""
    assert err.startswith("mockhub: cannot reach mockhub at http://127.0.0.1:1")
    assert "Traceback" not in err


def test_default_url_is_ipv4_loopback_with_mockhub_http_port(server: ThreadedHub) -> None:
    port = str(server.hub.http_port)
    code, out, _ = cli("health", MOCKHUB_HTTP_PORT=port)
    assert code == 0 and f"http {port}" in out


# -- as a real subprocess -------------------------------------------------------------------------------------


def test_health_subprocess_exit_codes(base_url: str) -> None:
    ok = mockhub_cmd("health", env={"MOCKHUB_URL": base_url})
    assert ok.returncode == 0, ok.stderr
    assert "ok: mockhub" in ok.stdout
    down = mockhub_cmd("health", "--url", f"http://127.0.0.1:{free_port()}")
    assert down.returncode == 1
    assert "cannot reach mockhub" in down.stderr and down.stdout == ""


def test_serve_then_health_as_a_container_healthcheck_would() -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": ROOT, "MOCKHUB_HTTP_PORT": str(port), "MOCKHUB_SMTP_PORT": "0"}
    env.pop("MOCKHUB_URL", None)
    serve = subprocess.Popen(
        [sys.executable, "-m", "mockhub", "serve", "--host", "127.0.0.1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            # No --url: MOCKHUB_HTTP_PORT on 127.0.0.1, as in the container's HEALTHCHECK.
            check = subprocess.run(
                [sys.executable, "-m", "mockhub", "health"], env=env, capture_output=True, text=True, timeout=60
            )
            if check.returncode == 0:
                break
            assert time.monotonic() < deadline, check.stderr
            time.sleep(0.2)
        assert f"http {port}" in check.stdout
    finally:
        serve.terminate()
        serve.wait(30)


def test_tail_follows_live_calls(base_url: str) -> None:
    tail = subprocess.Popen(
        [sys.executable, "-m", "mockhub", "tail", "--json", "--count", "2", "--service", "webhook"],
        env={**os.environ, "PYTHONPATH": ROOT, "MOCKHUB_URL": base_url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Keep posting until tail (which needs a moment to start) has seen two calls.
        deadline = time.monotonic() + 60
        n = 0
        while tail.poll() is None and time.monotonic() < deadline:
            httpx.post(f"{base_url}/webhooks/live", json={"n": n})
            n += 1
            time.sleep(0.2)
        out, err = tail.communicate(timeout=30)
    finally:
        tail.kill()
    assert tail.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 2
    assert lines[1]["seq"] > lines[0]["seq"] and all(c["path"] == "/webhooks/live" for c in lines)


def test_tail_table_shows_backlog_with_after(base_url: str) -> None:
    seed(base_url)
    result = mockhub_cmd("tail", "--after", "0", "--count", "3", "--url", base_url)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3 and "disk full on db-1" in lines[0] and "/webhooks/billing" in lines[2]
    assert "following calls" in result.stderr


@pytest.mark.parametrize("command", [["serve", "--help"], ["fault", "--help"], ["calls", "--help"]])
def test_help_pages(command: list[str]) -> None:
    code, out, _ = cli(*command)
    assert code == 0 and "Usage" in out
