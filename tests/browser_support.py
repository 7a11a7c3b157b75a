"""A real browser for tests: Debian's Chromium (`/usr/bin/chromium`, headless) driven through
Playwright's sync API. No browser is ever downloaded (`playwright install` is never run):
scripts/test installs the Debian package, and a missing one fails the tests that need it.

A test asks for `browser_page`: a fresh page in its own browser context (no cookies or storage
shared with other tests), closed after the test. The browser behind it is started once and
shared by the browser tests a pytest-xdist worker runs one after another; it is closed before
any other test runs. Playwright's sync API leaves two things in the process while it is up: its
asyncio loop marked as running in the main thread (so `asyncio.run` fails), and on Python 3.11
a thread that waits for its driver process (so Alloy's parallel loader, which forks only when
no other thread runs, works in one process). Neither may reach a test that did not ask for a
browser: the loop is marked as running only while a browser test runs, and the browser is shut
down (and its thread gone) before a test without one starts.

Registered for every test module by tests/conftest.py (`pytest_plugins`); the module imports
Playwright only when a test asks for a browser.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright

#: The only browser the tests use: Debian's package (scripts/test installs it as root).
CHROMIUM = Path("/usr/bin/chromium")

#: Flags for a headless browser in a container, as root, that talks to nothing but the test's
#: own server on 127.0.0.1.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

#: How long one Playwright action or wait may take (milliseconds) before the test fails.
TIMEOUT_MS = 15_000

#: The fixture names that mean "this test runs a browser".
BROWSER_FIXTURES = frozenset({"browser_page", "browser_pool"})


class BrowserPool:
    """One Playwright driver and one Chromium, started on first use and closed on demand."""

    def __init__(self) -> None:
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        #: Playwright's loop, while it is hidden between browser tests.
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def running(self) -> bool:
        return self._playwright is not None

    def browser(self) -> Browser:
        """The shared browser (started now if it is not running); Playwright's loop is shown."""
        if self._playwright is None:
            self._start()
        else:
            self._show_loop()
        assert self._browser is not None
        return self._browser

    def _start(self) -> None:
        if not CHROMIUM.exists():
            pytest.fail(
                f"{CHROMIUM} is missing: the browser tests drive Debian's Chromium. Install it "
                "with `apt-get install --no-install-recommends chromium bubblewrap` (as root, "
                "`bash scripts/test` does it); `playwright install` is never used.",
                pytrace=False,
            )
        if asyncio.events._get_running_loop() is not None:
            pytest.fail(
                "a browser test ran inside a running asyncio loop: Playwright's sync API "
                "cannot; do not mix `browser_page` with async tests or fixtures",
                pytrace=False,
            )
        from playwright.sync_api import Error, sync_playwright

        playwright = sync_playwright().start()
        try:
            self._browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
            )
        except Error as exc:
            playwright.stop()
            _join_waitpid_threads()
            pytest.fail(f"{CHROMIUM} did not start under Playwright: {exc}", pytrace=False)
        self._playwright = playwright

    def hide_loop(self) -> None:
        """Between browser tests: Playwright's loop is no longer the running loop."""
        if self._playwright is not None and self._loop is None:
            self._loop = asyncio.events._get_running_loop()
            asyncio.events._set_running_loop(None)

    def _show_loop(self) -> None:
        if self._loop is not None:
            asyncio.events._set_running_loop(self._loop)
            self._loop = None

    def close(self) -> None:
        """Close the browser and stop the driver; nothing of Playwright is left running."""
        if self._playwright is None:
            return
        self._show_loop()
        playwright, browser = self._playwright, self._browser
        self._playwright = self._browser = None
        try:
            if browser is not None:
                browser.close()
        finally:
            playwright.stop()
            _join_waitpid_threads()


def _join_waitpid_threads() -> None:
    """Wait for asyncio's child-watcher threads (Python 3.11: one per driver process) to end."""
    for thread in threading.enumerate():
        if thread.name.startswith("asyncio-waitpid"):
            thread.join(timeout=10)


@pytest.fixture(scope="session")
def browser_pool(pytestconfig: pytest.Config) -> Iterator[BrowserPool]:
    """The worker's browser pool (session-scoped); `browser_page` is what tests want."""
    pool = pytestconfig.stash.setdefault(_POOL, BrowserPool())
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def browser_page(browser_pool: BrowserPool) -> Iterator[Page]:
    """A new page in a new browser context of the shared headless Chromium (1280x800, actions
    time out after 15 s). Use it with any server on 127.0.0.1:
    `browser_page.goto(url)`, `browser_page.get_by_role(...).click()`, `expect(...)`."""
    browser = browser_pool.browser()
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        try:
            context.close()
        finally:
            browser_pool.hide_loop()


_POOL = pytest.StashKey[BrowserPool]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before a test that runs no browser (and before its fixtures): shut the browser down."""
    names: Any = getattr(item, "fixturenames", ())
    if BROWSER_FIXTURES.isdisjoint(names):
        pool = item.config.stash.get(_POOL, None)
        if pool is not None:
            pool.close()
