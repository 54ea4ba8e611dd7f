"""`chime web` for tests: in-process (uvicorn in a thread, real HTTP on loopback) or as the
real `chime web` subprocess."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import requests
import uvicorn
from daemon_fixtures import child_env, chime_cmd

from daemon.app import App
from daemon.web.server import create_app


class WebServer:
    """The web application of ``app`` served by uvicorn on 127.0.0.1 (a free port).

    ``listen`` is what the application believes it listens on: "0.0.0.0" turns the token on
    for every request while the socket itself stays on loopback.
    """

    def __init__(self, app: App, listen: str = "127.0.0.1") -> None:
        self.app = app
        config = uvicorn.Config(create_app(app, listen=listen), host="127.0.0.1", port=0,
                                log_level="warning", lifespan="off", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise AssertionError("the web server did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.http = requests.Session()

    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        return self.http.request(method, self.url + path, timeout=60, allow_redirects=False, **kw)

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.http.get(self.url + path, timeout=30, allow_redirects=False, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return self.http.post(self.url + path, timeout=60, allow_redirects=False, **kw)

    def patch(self, path: str, **kw: Any) -> requests.Response:
        return self.http.patch(self.url + path, timeout=30, **kw)

    def delete(self, path: str, **kw: Any) -> requests.Response:
        return self.http.delete(self.url + path, timeout=30, **kw)

    def csrf(self) -> str:
        """Open a page once, so the session holds the CSRF cookie; return its value."""
        if "chime_csrf" not in self.http.cookies:
            self.get("/", headers={"Accept": "text/html"})
        return str(self.http.cookies["chime_csrf"])

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.http.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class WebProcess:
    """The real `chime web` in a subprocess on a free loopback port."""

    def __init__(self, db: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = db.with_suffix(".web.log")
        self.proc = subprocess.Popen(
            [*chime_cmd(), "--db", str(db), "web", "--listen", "127.0.0.1", "--port",
             str(self.port), *args],
            stdout=subprocess.DEVNULL, stderr=self.log.open("w"), env=child_env(**(env or {})))
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(self.url + "/static/style.css", timeout=2)
                return
            except requests.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("chime web did not start:\n" + self.log.read_text()) from None
                time.sleep(0.1)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(30)


def dump(db: Path) -> list[str]:
    """The whole database as SQL text (to prove that nothing changed)."""
    with sqlite3.connect(db, timeout=10) as conn:
        return list(conn.iterdump())
