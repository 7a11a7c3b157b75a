"""The browser fixture works: Debian's Chromium opens a page served on 127.0.0.1 by a real
server process, a click runs the page's JavaScript, and a screenshot is written. Then the shared
browser shuts down leaving nothing behind (no thread, no running asyncio loop) for other tests."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.browser_support import BrowserPool
from tests.reconcile_support import wait_for

if TYPE_CHECKING:
    from playwright.sync_api import Page

PAGE = """\
<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Browser check</title></head>
<body>
  <h1>Browser check</h1>
  <p id="status">waiting</p>
  <button id="go" type="button">Go</button>
  <script>
    document.getElementById("go").addEventListener("click", () => {
      document.getElementById("status").textContent = "clicked by " + navigator.userAgent.split(" ")[0];
    });
  </script>
</body>
</html>
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def static_site(tmp_path: Path) -> Iterator[str]:
    """`python -m http.server` on 127.0.0.1 serving one page; its base URL."""
    root = tmp_path / "site"
    root.mkdir()
    (root / "index.html").write_text(PAGE, encoding="utf-8")
    port = free_port()
    server = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory"]
    proc = subprocess.Popen(
        [*server, str(root), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/"
    try:

        def up() -> bool:
            assert proc.poll() is None, "http.server exited"
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    return bool(response.status == 200)
            except OSError:
                return False

        wait_for("http.server to answer", up, deadline=20)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_click_runs_the_pages_script_and_a_screenshot_is_written(
    browser_page: Page, static_site: str, tmp_path: Path
) -> None:
    page = browser_page
    page.goto(static_site)
    assert page.title() == "Browser check"
    assert page.locator("#status").text_content() == "waiting"
    page.get_by_role("button", name="Go").click()
    page.wait_for_function("document.getElementById('status').textContent !== 'waiting'")
    assert page.locator("#status").text_content() == "clicked by Mozilla/5.0"
    shot = tmp_path / "page.png"
    page.screenshot(path=str(shot), full_page=True)
    data = shot.read_bytes()
    assert len(data) > 100
    assert data.startswith(b"\x89PNG\r\n\x1a\n")


def test_a_second_browser_test_gets_a_blank_page_of_its_own(
    browser_page: Page, static_site: str
) -> None:
    """Another browser test (on the same worker: the shared browser, a new context)."""
    assert browser_page.url == "about:blank"
    browser_page.goto(static_site)
    assert browser_page.evaluate("localStorage.length") == 0
    browser_page.evaluate("localStorage.setItem('seen', '1')")
    assert browser_page.context.cookies() == []


def test_a_closed_browser_leaves_no_thread_and_no_running_loop() -> None:
    """What a test without a browser finds after the browser tests of its worker: every thread
    of Playwright gone and no asyncio loop marked as running."""
    # Threads of earlier tests may still be ending: what counts is that none of the threads the
    # browser started is left.
    before = set(threading.enumerate())
    pool = BrowserPool()
    page = pool.browser().new_page()
    page.set_content("<p id=x>hi</p>")
    assert page.text_content("#x") == "hi"
    pool.hide_loop()
    assert asyncio.events._get_running_loop() is None
    assert pool.browser().version  # shown again, usable again
    pool.close()
    assert not pool.running
    assert asyncio.events._get_running_loop() is None
    left = [t.name for t in set(threading.enumerate()) - before]
    assert left == [], f"threads the browser left running: {left}"
    asyncio.run(asyncio.sleep(0))  # an asyncio program runs again
