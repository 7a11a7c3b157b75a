"""`alloy ui` in a real browser: headless Chromium (Debian's) driven by Playwright, against the
real server process (`alloy ui`) on a repository run by real `foundry reconcile` passes.

* navigation overview -> intent -> execution, with a screenshot of every view, each checked to
  show what it should (set ALLOY_UI_SCREENSHOTS=DIR to keep them, as docs/ui.md's are made);
* live: a reconcile that runs while a page is open updates it without a reload;
* the GitOps loop: approve a waiting gate from the page, merge the branch it made, reconcile,
  and see the execution resume and succeed on the open page;
* keyboard navigation and a label for every control of every form.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.request
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import git
from tests.ui_support import UiWorld

if TYPE_CHECKING:
    from playwright.sync_api import Page

KEY = "remote"
WAIT_MS = 20_000


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(ui_world: UiWorld, tmp_path: Path) -> Iterator[Server]:
    port = _free_port()
    log = tmp_path / "ui.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "alloy",
                "ui",
                "--repo",
                str(ui_world.bare),
                "--listen",
                f"127.0.0.1:{port}",
                "--cache",
                str(tmp_path / "ui-cache"),
                "--as",
                "bob",
                "--poll",
                "0.2",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"alloy ui did not come up: {log.read_text()}")
        time.sleep(0.1)
    try:
        yield Server(url, proc, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail(f"alloy ui did not stop on SIGTERM: {log.read_text()}")


def _png_size_and_colours(path: Path) -> tuple[int, int, int]:
    """Width, height and the number of distinct byte values of the decoded image rows: a
    blank page has very few."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    chunks = b""
    pos = 8
    while pos < len(data):
        length = struct.unpack(">I", data[pos : pos + 4])[0]
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            chunks += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    return width, height, len(set(zlib.decompress(chunks)))


def _shot(page: Page, name: str, tmp_path: Path, must_show: list[str]) -> Path:
    """A screenshot of the whole page, after checking the page shows `must_show`."""
    text = page.inner_text("main")
    for words in must_show:
        assert words in text, f"{name}: {words!r} is not on the page:\n{text[:2000]}"
    where = Path(os.environ.get("ALLOY_UI_SCREENSHOTS") or tmp_path)
    where.mkdir(parents=True, exist_ok=True)
    path = where / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    width, height, colours = _png_size_and_colours(path)
    assert width >= 800, (path, width)
    assert height >= 300, (path, height)
    assert colours > 20, f"{path} looks blank"
    return path


def _live(page: Page) -> None:
    page.wait_for_selector("body[data-live='on']", timeout=WAIT_MS)


def test_navigate_overview_intent_execution_with_a_screenshot_of_each_view(
    browser_page: Page, server: Server, ui_world: UiWorld, tmp_path: Path
) -> None:
    page = browser_page
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(server.url + "/")
    assert page.title() == "Overview · Alloy"
    first = page.locator("table.intents tbody tr").first
    assert first.get_attribute("data-intent") == "flaky"  # needs attention first
    _shot(page, "overview", tmp_path, ["flaky", "deploy", "docs-build", "waiting-on-person"])

    page.get_by_role("link", name="docs-build", exact=True).first.click()
    page.wait_for_url(f"**/r/{KEY}/intents/docs-build")
    assert page.locator("svg.graph").count() == 1
    _shot(page, "intent", tmp_path, ["Every change to main", "AC-1", "fresh", "old-docs", "build"])

    page.get_by_role("link", name=ui_world.executions["docs-build"]).first.click()
    page.wait_for_url(f"**/executions/{ui_world.executions['docs-build']}")
    _shot(page, "execution", tmp_path, ["succeeded", "build", "site/index.html", "Trace JSON"])

    page.goto(f"{server.url}/r/{KEY}/executions/{ui_world.executions['deploy']}")
    _shot(page, "execution-waiting", tmp_path, ["waiting", "bob, carol", "alloy approve"])
    for view, words in [
        ("approvals", ["ship/0", "bob, carol"]),
        ("reviews", ["propose-x", "release-notes"]),
        ("lanes", ["Lanes"]),
        ("activity", ["Build the docs site", "failed"]),
    ]:
        page.get_by_role("navigation", name="Views").get_by_role("link", name=view.title()).click()
        page.wait_for_url(f"**/{view}")
        _shot(page, view, tmp_path, words)


def test_a_reconcile_while_the_page_is_open_updates_it_without_a_reload(
    browser_page: Page, server: Server, ui_world: UiWorld
) -> None:
    page = browser_page
    page.goto(server.url + "/")
    _live(page)
    page.evaluate("window.__notReloaded = true")
    assert "release-notes" not in page.inner_text("main")

    git(ui_world.work.path, "merge", "-q", "--no-ff", "-m", "Merge propose-x", "origin/propose-x")
    git(ui_world.work.path, "push", "-q", "origin", "HEAD:main")
    page.locator("tr[data-intent='release-notes']").wait_for(timeout=WAIT_MS)
    run = ui_world.reconcile()
    assert run.code == 5, run.result  # deploy still waits on its approval
    row = page.locator("tr[data-intent='release-notes']")
    row.locator(".status-succeeded").wait_for(timeout=WAIT_MS)
    assert page.evaluate("window.__notReloaded") is True


def test_approve_from_the_page_merge_reconcile_and_see_it_succeed(
    browser_page: Page, server: Server, ui_world: UiWorld
) -> None:
    page = browser_page
    exe = ui_world.executions["deploy"]
    page.goto(f"{server.url}/r/{KEY}/executions/{exe}")
    _live(page)
    assert "waiting" in page.inner_text(".headline")
    main_before = ui_world.remote("rev-parse", "main").strip()

    page.get_by_label("Comment").fill("v1.0.0 is ready")
    page.get_by_role("button", name="Approve").click()
    page.wait_for_url("**/actions/approve")
    done = page.inner_text("main")
    assert "alloy/ui/approve-" in done
    branch = page.locator("code.branch").inner_text()
    assert ui_world.remote("rev-parse", "main").strip() == main_before  # default branch untouched
    approval = ui_world.remote("show", "--stat", "--format=%an", branch)
    assert "bob" in approval
    assert ".alloy/approvals/" in approval

    # The reviewer merges the branch (a pull request's merge), then a reconcile pass runs.
    page.goto(f"{server.url}/r/{KEY}/executions/{exe}")
    _live(page)
    page.evaluate("window.__notReloaded = true")
    git(ui_world.work.path, "fetch", "-q", "origin")
    git(ui_world.work.path, "merge", "-q", "--no-ff", "-m", f"Merge {branch}", f"origin/{branch}")
    git(ui_world.work.path, "push", "-q", "origin", "HEAD:main")
    run = ui_world.reconcile()
    assert run.code == 0, run.result
    page.locator(".headline .status-succeeded").wait_for(timeout=WAIT_MS)
    assert page.evaluate("window.__notReloaded") is True
    assert "ship" in page.inner_text("table.timeline")
    assert ui_world.trace(exe)["status"] == "succeeded"


FORM_PAGES = [
    "/",
    f"/r/{KEY}/intents/docs-build",
    f"/r/{KEY}/propose",
]


def test_every_form_control_has_a_label_and_the_keyboard_reaches_it(
    browser_page: Page, server: Server, ui_world: UiWorld
) -> None:
    page = browser_page
    pages = [*FORM_PAGES, f"/r/{KEY}/executions/{ui_world.executions['deploy']}"]
    for path in pages:
        page.goto(server.url + path)
        unlabelled = page.evaluate(
            """() => [...document.querySelectorAll('input, select, textarea')]
                .filter(e => e.type !== 'hidden')
                .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
                .map(e => e.name || e.id)"""
        )
        assert unlabelled == [], f"{path}: controls without a label: {unlabelled}"
        buttons = page.evaluate(
            "() => [...document.querySelectorAll('button')].filter(b => !b.innerText.trim()).length"
        )
        assert buttons == 0, f"{path}: a button without a name"
        # Every control is reached by Tab, in order, from the top of the page.
        controls = page.evaluate(
            """() => [...document.querySelectorAll('main input, main select, main textarea, main button')]
                .filter(e => e.type !== 'hidden').length"""
        )
        page.locator("body").focus()
        reached = set()
        for _ in range(200):
            page.keyboard.press("Tab")
            key = page.evaluate(
                """() => { const e = document.activeElement;
                    return e && e.closest('main') && e.matches('input, select, textarea, button')
                      ? (e.id || e.name || e.innerText) + '@' + [...document.querySelectorAll(
                          'input, select, textarea, button')].indexOf(e) : null }"""
            )
            if key:
                reached.add(key)
            if len(reached) >= controls:
                break
        assert len(reached) == controls, f"{path}: Tab reached {len(reached)} of {controls}"

    # The skip link is the first stop, and it moves focus to the content.
    page.goto(server.url + "/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "live"

    # A form sent with the keyboard alone: filter the overview by state.
    page.get_by_label("State").focus()
    page.keyboard.press("ArrowDown")  # "any" -> the first state
    page.get_by_label("Search").focus()
    page.keyboard.type("release")
    page.keyboard.press("Enter")
    page.wait_for_url("**/?*q=release*")


def _slow_intent(mark: Path, go: Path) -> str:
    """`one`, then `two` (which waits until the file `go` exists), then `three`."""
    env = f"        env: {{MARK: {json.dumps(str(mark))}, GO: {json.dumps(str(go))}}}\n"
    wait = json.dumps('echo two >> "$MARK"; while [ ! -f "$GO" ]; do sleep 0.05; done')
    blocks = ""
    for block, run, needs in [
        ("one", json.dumps('echo one >> "$MARK"'), ""),
        ("two", wait, "        needs: [one]\n"),
        ("three", json.dumps('echo three >> "$MARK"'), "        needs: [two]\n"),
    ]:
        blocks += (
            f"      - id: {block}\n{needs}        run: [sh, -c, {run}]\n{env}"
            "        effects: none\n        timeout: 5m\n"
        )
    return (
        "apiVersion: alloy.dev/v1\nkind: Intent\nmetadata:\n  name: slow\n  owners: [alice]\n"
        "spec:\n  state: active\n  goal: The page follows a run block by block.\n"
        "  automation:\n    on: {apply: true}\n    blocks:\n" + blocks
    )


def test_a_running_execution_updates_block_by_block_on_the_open_page(
    browser_page: Page, server: Server, ui_world: UiWorld, tmp_path: Path
) -> None:
    page = browser_page
    go = tmp_path / "go"
    mark = ui_world.mark("slow")
    ui_world.work.write({".alloy/intents/slow.yaml": _slow_intent(mark, go)})
    ui_world.merge("A slow intent")
    runner = subprocess.Popen(
        ui_world.command(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **ui_world.env},
    )
    try:
        deadline = time.monotonic() + 60
        while not (mark.exists() and "two" in mark.read_text()):
            assert runner.poll() is None, runner.communicate()
            assert time.monotonic() < deadline, "block two never started"
            time.sleep(0.05)
        # The overview finds the running execution (from its claim's live trace) ...
        page.goto(server.url + "/?q=slow")
        link = page.locator("tr[data-intent='slow'] a[href*='/executions/']")
        link.wait_for(timeout=WAIT_MS)
        link.click()
        page.wait_for_url("**/executions/exe-*")
        _live(page)
        page.evaluate("window.__notReloaded = true")
        # ... and its page shows how far it got: one done, two running, three not started.
        row = "table.timeline tr[data-block='{}'] .status-{}"
        page.locator(row.format("one", "succeeded")).wait_for(timeout=WAIT_MS)
        page.locator(row.format("two", "running")).wait_for(timeout=WAIT_MS)
        assert "live, from its claim" in page.inner_text(".headline")
        assert page.locator(row.format("three", "succeeded")).count() == 0
        go.write_text("go")
        page.locator(row.format("three", "succeeded")).wait_for(timeout=WAIT_MS)
        page.locator(".headline .status-succeeded").wait_for(timeout=WAIT_MS)
        assert page.evaluate("window.__notReloaded") is True
        _, err = runner.communicate(timeout=120)
        assert runner.returncode == 5, err  # deploy still waits on its approval
    finally:
        go.write_text("go")
        if runner.poll() is None:
            runner.kill()
            runner.wait()


def _server_version(server: Server) -> int:
    with urllib.request.urlopen(f"{server.url}/healthz", timeout=5) as response:  # noqa: S310
        return int(json.loads(response.read())["version"])


def test_a_change_between_the_page_and_its_event_stream_still_reaches_the_page(
    browser_page: Page, server: Server, ui_world: UiWorld
) -> None:
    """The page was drawn at version N; the server moved on before the page's event stream
    connected. The stream starts from the page's version, not from the server's, so the page
    still learns of the change (found in CI: a running execution's page stayed on its first
    block for good, as its next block waited for a person)."""
    page = browser_page
    held: list[object] = []

    def hold(route: object) -> None:  # (a function: Playwright marks its handlers)
        held.append(route)

    page.route("**/events*", hold)
    page.goto(server.url + "/")
    drawn = int(page.get_attribute("main#live", "data-version") or "0")
    deadline = time.monotonic() + 30
    while not held:
        assert time.monotonic() < deadline, "the page never opened its event stream"
        page.wait_for_timeout(50)
    ui_world.add_intent("late-arrival")
    ui_world.merge("An intent that lands while the page connects")
    while _server_version(server) <= drawn:
        assert time.monotonic() < deadline + 30, "the server never saw the merge"
        time.sleep(0.1)
    assert page.locator("tr[data-intent='late-arrival']").count() == 0
    held[0].continue_()  # type: ignore[attr-defined]
    page.locator("tr[data-intent='late-arrival']").wait_for(timeout=WAIT_MS)
    assert "late-arrival" in page.inner_text("main")


def test_a_change_arriving_while_a_form_is_filled_in_waits_until_it_is_left(
    browser_page: Page, server: Server, ui_world: UiWorld
) -> None:
    """A change was told and the page fetched it; the reader focused a form and typed while
    the answer was on its way. What they typed stays: the page swaps once they leave the form
    (found by a second reviewer: the check came before the fetch only)."""
    page = browser_page
    page.goto(server.url + "/")
    _live(page)
    held: list[Any] = []

    def hold(route: Any) -> None:
        if route.request.headers.get("x-alloy-fragment") == "1":
            held.append(route)
        else:
            route.continue_()

    page.route("**/*", hold)
    ui_world.add_intent("late-arrival")
    ui_world.merge("An intent that lands while a form is filled in")
    deadline = time.monotonic() + 60
    while not held:
        assert time.monotonic() < deadline, "the page never fetched the change"
        page.wait_for_timeout(50)
    search = page.get_by_label("Search")
    search.focus()
    search.type("deploy")
    with page.expect_response(lambda r: r.request.headers.get("x-alloy-fragment") == "1"):
        held[0].continue_()
    page.evaluate("() => new Promise((done) => setTimeout(done, 200))")  # its handlers ran
    assert search.input_value() == "deploy"
    assert page.locator("tr[data-intent='late-arrival']").count() == 0
    page.unroute("**/*")
    page.locator("h1").first.click()  # the reader leaves the form: the change is shown now
    page.locator("tr[data-intent='late-arrival']").wait_for(timeout=WAIT_MS)
