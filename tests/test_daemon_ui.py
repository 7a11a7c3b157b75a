"""`foundry daemon` with `ui:`: the web interface (`alloy ui` as the daemon's child process) served
through the daemon's own endpoint — real git remotes, real processes, real HTTP.

Nothing here asserts a duration: every wait is a deadline on a condition that is polled.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from controllers.daemon import ConfigError, Daemon, parse_config
from controllers.daemon_ui import UiConfig, ui_command
from tests.conftest import GitRepo, git, intent_yaml, run_cli
from tests.test_daemon import DEADLINE, QUICK_BLOCK, DaemonProcess, ok, trace_status, traces, until

TOKEN = "daemon-ui-test-token-0123456789"


# -- the world ------------------------------------------------------------------------------------


def publish(repo: GitRepo, tmp_path: Path) -> Path:
    """A bare remote whose default branch holds the compiled intent `app` (it runs on apply and
    accepts requests)."""
    repo.write(
        {
            ".alloy/intents/app.yaml": intent_yaml(
                "app", blocks=QUICK_BLOCK, on="{apply: true, request: true}"
            )
        }
    )
    ok(run_cli("alloy", "compile", cwd=repo.path))
    repo.commit("intent: app")
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo.path), str(remote))
    return remote


def call(
    port: int,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One request to the daemon: status, headers, body (redirects are not followed)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def ui_status(d: DaemonProcess) -> dict[str, Any]:
    code, body = d.get("/healthz")
    assert code == 200, body
    ui: dict[str, Any] = json.loads(body)["ui"]
    return ui


def ui_up(d: DaemonProcess) -> dict[str, Any] | None:
    ui = ui_status(d)
    return ui if ui["state"] == "up" else None


def overview(d: DaemonProcess) -> dict[str, Any] | None:
    code, _, body = call(d.port, "GET", "/?format=json")
    return dict(json.loads(body)) if code == 200 else None


@contextlib.contextmanager
def open_events(d: DaemonProcess) -> Iterator[tuple[socket.socket, bytes]]:
    """`GET /events` through the daemon, read up to its `event: hello` (it then stays open)."""
    with socket.create_connection(("127.0.0.1", d.port), timeout=DEADLINE) as sock:
        sock.sendall(b"GET /events?limit=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        received = b""
        while b"event: hello\n" not in received:
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                pytest.fail(f"no `event: hello` through the proxy; got {received!r}\n{d.log()}")
            assert chunk, f"the stream ended before `event: hello`: {received!r}"
            received += chunk
        yield sock, received


def alive(pid: int) -> bool:
    """Whether `pid` runs (not a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


@pytest.fixture
def ui_daemons() -> Iterator[list[DaemonProcess]]:
    """Daemons started by a test, drained at the end (which stops their interface); a child a
    killed daemon left behind is stopped through the pid file it names it in."""
    started: list[DaemonProcess] = []
    yield started
    for d in started:
        if d.proc is not None and d.proc.poll() is None:
            d.signal(signal.SIGTERM)
            try:
                d.proc.wait(timeout=DEADLINE)
            except subprocess.TimeoutExpired:
                d.kill()
        for pid_file in d.dir.glob("**/ui.pid"):
            with contextlib.suppress(OSError, ValueError):
                child = int(pid_file.read_text(encoding="utf-8").split()[0])
                if b"alloy" in Path(f"/proc/{child}/cmdline").read_bytes():
                    os.killpg(child, signal.SIGKILL)


# -- served through the daemon ----------------------------------------------------------------------


def test_the_web_interface_is_served_through_the_daemon_and_restarted_when_it_dies(
    repo: GitRepo, tmp_path: Path, ui_daemons: list[DaemonProcess]
) -> None:
    remote = publish(repo, tmp_path)
    d = DaemonProcess(
        tmp_path,
        {
            "state": str(tmp_path / "state"),
            "ui": {"poll": 0.2, "as": "daemon-bot"},
            "repositories": [{"repo": str(remote), "interval": "1h"}],
        },
    )
    ui_daemons.append(d.start())
    until(lambda: len(traces(remote)) == 1, "the daemon's first trace", log=d.log)
    [trace] = traces(remote)
    assert trace_status(remote, trace) == "succeeded"
    ui = until(lambda: ui_up(d), "the web interface to be up", log=d.log)
    assert isinstance(ui["port"], int)
    assert ui["port"] != d.port
    assert alive(ui["pid"])

    # The overview's JSON twin, through the daemon: the intent and its last execution.
    def app_row() -> dict[str, Any] | None:
        data = overview(d)
        rows = [r for r in (data or {}).get("intents", []) if r["name"] == "app"]
        last = rows[0]["lastExecution"] if rows else None
        return rows[0] if last and last["status"] == "succeeded" else None

    row = until(app_row, "the overview to show app's succeeded execution", log=d.log)
    assert row["repo"] == "remote"
    data = overview(d)
    assert data is not None
    assert data["view"] == "overview"
    assert [r["url"] for r in data["repositories"]] == [str(remote)]
    assert data["repositories"][0]["writable"] is True

    # An HTML page, with the interface's cookie passed back.
    code, headers, body = call(d.port, "GET", "/r/remote/intents/app")
    assert code == 200, body
    assert headers["Content-Type"].startswith("text/html")
    page = body.decode()
    assert "app" in page
    cookie = headers["Set-Cookie"].split(";", 1)[0]
    assert cookie.startswith("alloy-ui-csrf=")
    # HEAD: the headers, no body.
    code, headers, body = call(d.port, "HEAD", "/r/remote/intents/app")
    assert (code, body) == (200, b"")
    assert headers["Content-Type"].startswith("text/html")

    # A form sent through the daemon (body, cookie, Host and Origin arrive as sent): a run
    # request written on a new branch of the remote, by the identity of `ui.as`.
    match = re.search(
        r'action="/r/remote/actions/request".*?name="csrf" value="([^"]+)"', page, re.S
    )
    assert match is not None, page
    form = urlencode({"csrf": match.group(1), "intent": "app", "reason": "through the daemon"})
    code, headers, body = call(
        d.port,
        "POST",
        "/r/remote/actions/request",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": cookie,
            "Origin": f"http://127.0.0.1:{d.port}",
            "Accept": "application/json",
        },
        body=form.encode(),
    )
    assert code == 201, body
    done = json.loads(body)
    assert done["action"] == "request"
    assert git(remote, "log", "-1", "--format=%an", done["branch"]).strip() == "daemon-bot"

    # Server-Sent Events flow through unbuffered: the stream never ends (limit=1 waits for one
    # change), so `hello` can only arrive if the proxy passed it on at once.
    with open_events(d) as (_, received):
        assert received.startswith(b"HTTP/1.0 200"), received
        assert b"text/event-stream" in received

    # The daemon's own endpoints are still its own.
    assert d.get("/metrics")[0] == 200
    assert call(d.port, "POST", "/healthz")[0] == 405

    # The child dies: it is started again (on a new port), and the interface answers again.
    first = ui["pid"]
    os.kill(first, signal.SIGKILL)
    again = until(
        lambda: (u := ui_up(d)) and u["pid"] != first and u,
        "the web interface to be started again",
        log=d.log,
    )
    assert again["restarts"] >= 1
    assert "exited on signal SIGKILL" in d.log()
    until(app_row, "the restarted interface to show app again", log=d.log)

    # Draining stops the child, and ends the streams still open through the daemon.
    with open_events(d) as (sock, _):
        d.signal(signal.SIGTERM)
        try:
            while sock.recv(4096):
                pass
        except TimeoutError:
            pytest.fail(f"the event stream did not end when the daemon drained\n{d.log()}")
    assert d.wait() == 0, d.log()
    until(lambda: not alive(again["pid"]), "the interface to be stopped with the daemon")
    assert not (tmp_path / "state" / "ui.pid").exists()


def test_a_daemon_restarted_after_sigkill_stops_the_interface_its_predecessor_left(
    repo: GitRepo, tmp_path: Path, ui_daemons: list[DaemonProcess]
) -> None:
    remote = publish(repo, tmp_path)
    config = {
        "state": str(tmp_path / "state"),
        "ui": True,
        "repositories": [{"repo": str(remote), "interval": "1h"}],
    }
    first = DaemonProcess(tmp_path, config)
    ui_daemons.append(first.start())
    orphan = until(lambda: ui_up(first), "the web interface to be up", log=first.log)["pid"]
    first.kill()  # SIGKILL: the child is left running in its own process group
    assert alive(orphan)

    second = DaemonProcess(tmp_path, config)
    ui_daemons.append(second.start())
    until(lambda: not alive(orphan), "the left-over interface to be stopped", log=second.log)
    assert f"stopping alloy ui (pid {orphan}) left running by an earlier daemon" in second.log()
    fresh = until(lambda: ui_up(second), "the new interface to be up", log=second.log)
    assert fresh["pid"] != orphan
    until(lambda: overview(second), "the interface to answer through the daemon", log=second.log)


def test_read_only_and_a_token_file_are_passed_on(
    repo: GitRepo, tmp_path: Path, ui_daemons: list[DaemonProcess]
) -> None:
    remote = publish(repo, tmp_path)
    (tmp_path / "tokens").write_text(f"reader {TOKEN}\n", encoding="utf-8")
    d = DaemonProcess(
        tmp_path,
        {
            "state": str(tmp_path / "state"),
            "ui": {"readOnly": True, "tokenFile": "tokens"},  # relative to the config file
            "repositories": [{"repo": str(remote), "interval": "1h"}],
        },
    )
    ui_daemons.append(d.start())
    until(lambda: ui_up(d), "the web interface to be up", log=d.log)
    # Without the token: the interface's login redirect (not followed) and 401, as they are.
    code, headers, _ = call(d.port, "GET", "/")
    assert (code, headers["Location"]) == (303, "/login")
    assert call(d.port, "GET", "/?format=json")[0] == 401
    code, _, body = call(
        d.port, "GET", "/?format=json", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert code == 200, body
    assert json.loads(body)["repositories"][0]["writable"] is False
    # The daemon's own endpoints need no token.
    assert d.health()["ui"]["state"] == "up"


def test_an_interface_that_cannot_start_is_reported_and_the_daemon_runs_on(
    tmp_path: Path, ui_daemons: list[DaemonProcess]
) -> None:
    d = DaemonProcess(
        tmp_path,
        {
            "state": str(tmp_path / "state"),
            "ui": True,
            "repositories": [{"repo": str(tmp_path / "not-yet.git"), "interval": "1h"}],
        },
    )
    ui_daemons.append(d.start())
    until(
        lambda: "before it answered GET /healthz" in d.log(),
        "the daemon to report that the interface did not come up",
        log=d.log,
    )
    assert "not-yet.git" in d.log()  # the child's own message, in the daemon's log
    until(lambda: "starting alloy ui again in" in d.log(), "a restart to be planned", log=d.log)
    assert ui_status(d)["state"] in ("starting", "down")
    code, headers, body = call(d.port, "GET", "/")
    assert code == 503
    assert b"the web interface is" in body
    assert headers["Retry-After"] == "1"
    d.signal(signal.SIGTERM)
    assert d.wait() == 0, d.log()


# -- config ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        ("ui: 3\n", 1, ["ui must be `true`, `false` or a mapping", "e.g. `ui: {readOnly: true}`"]),
        (
            "ui:\n  readonly: true\n",
            2,
            ["unknown key 'readonly' in ui; did you mean `readOnly`?", "the keys are: readOnly"],
        ),
    ],
)
def test_ui_config_errors_exit_1_naming_the_file_the_key_and_the_fix(
    tmp_path: Path, text: str, line: int, expected: list[str]
) -> None:
    config = tmp_path / "daemon.yaml"
    config.write_text(text + "repositories:\n  - repo: remote.git\n", encoding="utf-8")
    for extra in ([], ["--check"]):
        result = ok(run_cli("foundry", "daemon", "--config", str(config), *extra, cwd=tmp_path), 1)
        assert f"{config}:{line}: " in result.err
        for part in expected:
            assert part in result.err
        assert "Traceback" not in result.err + result.out


@pytest.mark.parametrize(
    ("ui", "expected"),
    [
        ("null", "<c>:1: ui must be `true`, `false` or a mapping"),
        ("{readOnly: 1}", "<c>:1: ui.readOnly must be true or false, not 1"),
        ("{tokenFile: 7}", "<c>:1: ui.tokenFile must be the path of a file"),
        ("{as: ''}", "<c>:1: ui.as must be a name actions are recorded as"),
        ("{poll: 0}", "<c>:1: ui.poll: 0 is not a duration from 0.05 to 60 seconds"),
        ("{poll: 2m}", "<c>:1: ui.poll: '2m' is not a duration from 0.05 to 60 seconds"),
        ("{pol: 1}", "<c>:1: unknown key 'pol' in ui; did you mean `poll`?"),
    ],
)
def test_ui_config_is_checked_strictly(tmp_path: Path, ui: str, expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(f"ui: {ui}\nrepositories: [x]\n", source="<c>", base=tmp_path)
    assert expected in str(raised.value)


def test_ui_config_and_the_command_it_starts(tmp_path: Path) -> None:
    assert parse_config("repositories: [x]\n", base=tmp_path).ui is None
    assert parse_config("ui: false\nrepositories: [x]\n", base=tmp_path).ui is None
    assert parse_config("ui: true\nrepositories: [x]\n", base=tmp_path).ui == UiConfig()
    config = parse_config(
        "ui: {readOnly: true, tokenFile: secrets/tokens, as: ops-bot, poll: 250ms}\n"
        "repositories:\n  - repo: a.git\n  - repo: https://git.example.com/b.git\n",
        base=tmp_path,
    )
    assert config.ui == UiConfig(
        read_only=True, token_file=tmp_path / "secrets/tokens", identity="ops-bot", poll=0.25
    )
    repos = [r.repo for r in config.repositories]
    assert ui_command(config.ui, repos, tmp_path / "cache", 7, python="py") == [
        "py", "-P", "-m", "alloy", "ui",
        "--repo", str(tmp_path / "a.git"),
        "--repo", "https://git.example.com/b.git",
        "--listen-fd", "7",
        "--cache", str(tmp_path / "cache"),
        "--read-only",
        "--token-file", str(tmp_path / "secrets/tokens"),
        "--as", "ops-bot",
        "--poll", "0.25",
    ]  # fmt: skip
    assert ui_command(UiConfig(), ["r"], Path("c"), 1, python="py")[-2:] == ["--poll", "0.5"]


def test_without_ui_healthz_says_so(tmp_path: Path) -> None:
    daemon = Daemon(parse_config("repositories: [x]\n", base=tmp_path))
    assert daemon.ui is None
    assert daemon.health()[1]["ui"] is None


def test_alloy_ui_serves_on_the_listening_socket_it_inherits(repo: GitRepo, tmp_path: Path) -> None:
    """How the daemon starts its child: the daemon binds the port and the child inherits the
    listening socket, so the port is never free for another process between the two. A
    descriptor that is no listening TCP socket is a clear error, exit 1."""
    remote = publish(repo, tmp_path)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    command = ui_command(UiConfig(), [str(remote)], tmp_path / "cache", listener.fileno())
    proc = subprocess.Popen(
        command, pass_fds=(listener.fileno(),), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    listener.close()
    try:
        status, _, body = until(lambda: _healthz(port), "the child's /healthz")
        assert status == 200, body
        assert json.loads(body)["ok"] is True
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert f"on http://127.0.0.1:{port}/" in out.decode(), out
    # Not a listening socket: refused, saying why.
    idle = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    fd = idle.fileno()
    with idle:
        refused = subprocess.run(
            ui_command(UiConfig(), [str(remote)], tmp_path / "cache", fd),
            pass_fds=(fd,),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert refused.returncode == 1, refused.stderr
    assert f"--listen-fd {fd}: the socket is not listening" in refused.stderr
    assert "Traceback" not in refused.stderr


def _healthz(port: int) -> tuple[int, Any, bytes] | None:
    try:
        return call(port, "GET", "/healthz")
    except OSError:
        return None
