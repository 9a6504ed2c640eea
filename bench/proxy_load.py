"""A closed-loop load generator for interception: keep-alive connections, plain or through CONNECT + TLS.

`plain`: POSTs to the HTTP port, as an application with a base URL sends them. `connect`: each
connection opens a `CONNECT hooks.slack.com:443` tunnel through mockhub's proxy, does the TLS
handshake (verifying mockhub's CA for the real name) and then sends its POSTs inside it, as an
unchanged application behind `HTTPS_PROXY` does. `https`: the same over the HTTPS listener. The same
generator measures every mode, so the figures compare the transports, not the clients. Run as a
process pinned to the load core; prints JSON.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
import time

HOST = "hooks.slack.com"
PATH = "/services/T000/B000/XXXXXXXXXXXXXXXX"


async def _open(mode: str, port: int, context: ssl.SSLContext) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if mode == "https":
        return await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname=HOST)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if mode == "connect":
        writer.write(f"CONNECT {HOST}:443 HTTP/1.1\r\nHost: {HOST}:443\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        await writer.start_tls(context, server_hostname=HOST)
    return reader, writer


async def _connection(
    mode: str, port: int, context: ssl.SSLContext, request: bytes, until: float, out: list[float], errors: list[int]
) -> None:
    reader, writer = await _open(mode, port, context)
    try:
        while time.perf_counter() < until:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            if not head.startswith(b"HTTP/1.1 200"):
                errors[0] += 1
            out.append((time.perf_counter() - started) * 1000)
    finally:
        writer.close()


async def run(mode: str, port: int, ca_file: str, seconds: float, connections: int) -> dict[str, float]:
    context = ssl.create_default_context(cafile=ca_file)
    body = b'{"text":"disk full on db-1"}'
    host = HOST if mode != "plain" else f"127.0.0.1:{port}"
    request = (
        f"POST {PATH} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    latencies: list[float] = []
    errors = [0]
    started = time.perf_counter()
    until = started + seconds
    await asyncio.gather(
        *(_connection(mode, port, context, request, until, latencies, errors) for _ in range(connections))
    )
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * p))]

    return {
        "calls_per_s": round(len(latencies) / elapsed),
        "p50_ms": round(pct(0.50), 2),
        "p99_ms": round(pct(0.99), 2),
        "errors": errors[0],
        "requests": len(latencies),
    }


if __name__ == "__main__":
    mode, port, ca, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    print(json.dumps(asyncio.run(run(mode, port, ca, seconds, connections=16))))
