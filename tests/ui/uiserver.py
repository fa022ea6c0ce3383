"""Run the `lihq ui` app (lihq_cli/ui/app.py) on a free loopback port in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def ui_server(
    client, max_upload_bytes: int = 64 << 20, allowed_hosts: list[str] | None = None
) -> Iterator[str]:
    """Yields the page's base URL, e.g. http://127.0.0.1:PORT."""
    import uvicorn

    from lihq_cli.ui.app import create_app

    port = free_port()
    config = uvicorn.Config(
        create_app(client, max_upload_bytes, allowed_hosts), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not t.is_alive():
            raise RuntimeError("the ui server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        t.join(30)
