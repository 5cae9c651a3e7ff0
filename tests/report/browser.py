"""A real headless Chromium driven over the DevTools protocol: open a page, read it, screenshot it.

Debian's ``chromium`` (installed by scripts/bootstrap), a fresh profile per
browser, no network features; a small synchronous CDP client over one
websocket. `Page.errors` collects everything a person would see as an error in
the DevTools console: uncaught exceptions, ``console.error``, and the browser's
own error entries (a refused script, a blocked load). `Page.requests` lists
every URL the page asked for, so "nothing fetched" is checkable.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-port=0", "--window-size=1100,900")
DEADLINE_S = 60.0


def chromium_binary() -> str:
    """Debian's chromium; its absence fails the test (scripts/bootstrap installs it), never skips it."""
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("chromium is not installed: run scripts/bootstrap (it installs Debian's chromium)")
    return path


@dataclass
class Page:
    browser: Browser
    session: str
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.browser.send(method, params, session=self.session)

    def evaluate(self, expression: str) -> Any:
        reply = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in reply:
            raise AssertionError(f"{expression!r} threw: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def screenshot(self, path: Path) -> Path:
        reply = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        path.write_bytes(base64.b64decode(reply["data"]))
        return path


class Browser:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.pages: dict[str, Page] = {}
        self._next = 0

    def send(self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None) -> dict[str, Any]:
        self._next += 1
        ident = self._next
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        while True:
            reply = self._receive()
            if reply.get("id") == ident:
                if "error" in reply:
                    raise AssertionError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result

    def wait_event(self, session: str, method: str) -> dict[str, Any]:
        while True:
            message = self._receive()
            if message.get("sessionId") == session and message.get("method") == method:
                params: dict[str, Any] = message.get("params", {})
                return params

    def _receive(self) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(self.ws.recv(timeout=DEADLINE_S))
        page = self.pages.get(message.get("sessionId", ""))
        if page is not None:
            self._note(page, message.get("method", ""), message.get("params", {}))
        return message

    @staticmethod
    def _note(page: Page, method: str, params: dict[str, Any]) -> None:
        if method == "Runtime.exceptionThrown":
            page.errors.append(f"exception: {params['exceptionDetails']}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            page.errors.append(f"console.{params['type']}: {params.get('args')}")
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            page.errors.append(f"log: {params['entry'].get('text')}")
        elif method == "Network.requestWillBeSent":
            page.requests.append(params["request"]["url"])

    def open(self, url: str) -> Page:
        """A new tab showing ``url``, loaded (its load event fired)."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = self.pages[session] = Page(self, session)
        for domain in ("Page", "Runtime", "Log", "Network"):
            page.send(f"{domain}.enable")
        page.send("Page.navigate", {"url": url})
        self.wait_event(session, "Page.loadEventFired")
        return page


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium with a fresh profile, closed (and reaped) on exit."""
    binary = chromium_binary()
    with tempfile.TemporaryDirectory(prefix="soak-chromium-") as profile:
        process = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            ws = connect(_devtools_url(Path(profile), process), max_size=64 * 2**20, open_timeout=DEADLINE_S)
            with ws:
                yield Browser(ws)
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=20)


def _devtools_url(profile: Path, process: subprocess.Popen[bytes]) -> str:
    """Chromium writes its port and browser path to DevToolsActivePort once it listens."""
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"chromium exited with {process.returncode} before listening")
        lines = port_file.read_text().split() if port_file.exists() else []
        if len(lines) >= 2:
            return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
        time.sleep(0.1)
    raise AssertionError("chromium did not open its DevTools port within a minute")


# -- what every report test checks in the browser ------------------------------------

PLOTS_JS = """Array.from(document.querySelectorAll('svg.plot')).map(s => ({
    id: s.id, lines: Number(s.dataset.lines), drawn: s.querySelectorAll('path, circle, rect').length,
    width: s.getBoundingClientRect().width, height: s.getBoundingClientRect().height}))"""


def open_report(browser: Browser, report: Path) -> Page:
    page = browser.open(report.as_uri())
    assert page.evaluate("document.readyState") == "complete"
    return page


def drawn_plots(page: Page) -> dict[str, int]:
    """Chart id -> SVG shapes drawn, for every plot that the browser laid out with a size."""
    plots = page.evaluate(PLOTS_JS)
    assert all(p["width"] > 300 and p["height"] > 50 for p in plots), plots
    return {p["id"]: p["drawn"] for p in plots}


def assert_clean(page: Page, report: Path) -> None:
    assert page.errors == [], page.errors
    assert set(page.requests) <= {report.as_uri()}, page.requests  # nothing fetched but the page itself


def screenshot(page: Page, tmp_path: Path) -> Path:
    path = page.screenshot(tmp_path / "report.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 20_000
    print(f"screenshot: {path}")
    return path
