"""The comparison point: a plain Starlette app that records webhooks (parse JSON, keep, answer).

Run the way mockhub runs (uvicorn, httptools, uvloop, no access log), on a free port, announcing
itself with the same "ready:" line the harness reads.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

calls: list[dict[str, Any]] = []


async def webhook(request: Request) -> JSONResponse:
    body = await request.body()
    calls.append(
        {
            "seq": len(calls) + 1,
            "time": time.time(),
            "method": request.method,
            "path": request.url.path,
            "headers": dict(request.headers),
            "body": body,
            "data": json.loads(body) if body else {},
        }
    )
    return JSONResponse({"ok": True})


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(
    routes=[
        Route("/health", health),
        Route("/webhooks/{name:path}", webhook, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
    ]
)


def main() -> None:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, http="httptools", loop="uvloop", access_log=False, log_level="warning")
    server = uvicorn.Server(config)
    print(f"baseline ready: http://127.0.0.1:{port}", file=sys.stderr, flush=True)
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
