"""SMTP load with smtplib: many messages per connection, and one connection per message.

Messages are rendered once (the email package's generator would otherwise be the bottleneck) and
sent from 4 processes (threads would serialise on the GIL), so the figure is the server's.
"""

from __future__ import annotations

import json
import multiprocessing
import smtplib
import sys
import time
from email.message import EmailMessage

CLIENTS = 4


def _message(i: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = "alerts@example.com"
    msg["To"] = "ops@example.com"
    msg["Subject"] = f"[ALERT] disk full on db-{i}"
    msg.set_content("Disk /var is 98% full.\n" * 5)
    return msg.as_bytes()


def _reused(port: int, count: int) -> None:
    raw = _message(0)
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for _ in range(count):
            smtp.sendmail("alerts@example.com", ["ops@example.com"], raw)


def _fresh(port: int, count: int) -> None:
    raw = _message(0)
    for _ in range(count):
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            smtp.sendmail("alerts@example.com", ["ops@example.com"], raw)


def _run(target: object, port: int, total: int) -> float:
    per = total // CLIENTS
    procs = [multiprocessing.Process(target=target, args=(port, per)) for _ in range(CLIENTS)]  # type: ignore[arg-type]
    start = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return per * CLIENTS / (time.perf_counter() - start)


if __name__ == "__main__":
    port, total = int(sys.argv[1]), int(sys.argv[2])
    print(
        json.dumps(
            {
                "messages_per_s_reused_connections": round(_run(_reused, port, total)),
                "messages_per_s_connection_per_message": round(_run(_fresh, port, total // 5)),
                "sent": total + total // 5,
            }
        )
    )
