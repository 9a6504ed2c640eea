"""An open-loop load generator: requests at a fixed rate, latency measured from the scheduled time.

Measuring from when a request *should* have gone out (not when it did) avoids coordinated omission:
a stalled server shows up as latency instead of silently lowering the rate. Raw asyncio streams keep
the client's own cost far below the server's. Run as a process pinned to the load core.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time


async def _connection(host: str, port: int, request: bytes, times: list[float], t0: float, out: list[float]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for due in times:
            delay = t0 + due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            out.append((time.perf_counter() - (t0 + due)) * 1000)
    finally:
        writer.close()


async def run(url: str, rate: int, seconds: float, connections: int, body: bytes) -> dict[str, float]:
    host, port_path = url.removeprefix("http://").split(":", 1)
    port_text, _, path = port_path.partition("/")
    request = (
        f"POST /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    total = int(rate * seconds)
    schedule = [i / rate for i in range(total)]
    latencies: list[float] = []
    t0 = time.perf_counter() + 0.2
    await asyncio.gather(
        *(
            _connection(host, int(port_text), request, schedule[c::connections], t0, latencies)
            for c in range(connections)
        )
    )
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * p))]

    return {
        "rate": rate,
        "requests": len(latencies),
        "p50_ms": round(pct(0.50), 2),
        "p99_ms": round(pct(0.99), 2),
        "max_ms": round(latencies[-1], 2),
    }


if __name__ == "__main__":
    url, rate, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    body = b'{"severity":"critical","summary":"disk full on db-1"}'
    print(json.dumps(asyncio.run(run(url, rate, seconds, connections=32, body=body))))
