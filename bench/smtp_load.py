"""SMTP load with smtplib: many messages per connection, and one connection per message."""

from __future__ import annotations

import json
import smtplib
import sys
import threading
import time
from email.message import EmailMessage

THREADS = 4


def _message(i: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "alerts@example.com"
    msg["To"] = "ops@example.com"
    msg["Subject"] = f"[ALERT] disk full on db-{i}"
    msg.set_content("Disk /var is 98% full.\n" * 5)
    return msg


def _reused(port: int, count: int) -> None:
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for i in range(count):
            smtp.send_message(_message(i))


def _fresh(port: int, count: int) -> None:
    for i in range(count):
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            smtp.send_message(_message(i))


def _run(target: object, port: int, total: int) -> float:
    per = total // THREADS
    threads = [threading.Thread(target=target, args=(port, per)) for _ in range(THREADS)]  # type: ignore[arg-type]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return per * THREADS / (time.perf_counter() - start)


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
