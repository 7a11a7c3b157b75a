"""The Starlette application: routes, the JSON twins, live updates, actions.

Every view is one URL; the same URL answers JSON with `?format=json` (or `Accept:
application/json`) — the data the page is drawn from. `GET /events` streams Server-Sent
Events: `change` with the new version whenever a repository's refs moved; the page's script
then fetches the same URL as a fragment (`X-Alloy-Fragment: 1`) and swaps its `<main>`.
Without JavaScript every page and form works as plain HTML.
"""

from __future__ import annotations

import asyncio
import datetime
import gc
import json
import secrets
import subprocess
import sys
import threading
import time
import traceback
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from alloy import status as status_mod
from alloy.errors import AlloyError
from alloy.web import _actions, _history, _reviews, _views
from alloy.web._graph import automation_svg
from alloy.web._repo import RepoState
from alloy.web._security import CSRF_COOKIE, TOKEN_COOKIE, Security

STATIC = Path(__file__).parent / "static"
#: What a form may hold: no form of the dashboard has a file, or more than a dozen fields, or a
#: field near this size (a comment or a goal is at most 10,000 characters). A body beyond it is
#: refused while it is parsed: never spooled to disk, never held whole.
FORM_LIMITS: dict[str, int] = {"max_files": 0, "max_fields": 32, "max_part_size": 256 * 1024}
#: Event streams open at once, by default: each holds a connection (a file descriptor) for as
#: long as its reader stays; the refresh needs descriptors too (git processes).
MAX_STREAMS = 200
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
DOWNLOADS = {
    "json": "application/json",
    "markdown": "text/markdown",
    "otlp": "application/json",
    "intoto": "application/json",
}


class Hub:
    """The repositories, their refreshes, and who waits for the next change."""

    def __init__(
        self, states: Sequence[RepoState], *, poll: float, writable: bool, freeze: bool = False
    ) -> None:
        self.states = list(states)
        #: the server's own process (not a test's): freeze what a refresh read, see `refresh`
        self.freeze = freeze
        self.by_key = {s.key: s for s in self.states}
        self.poll = poll
        self.writable = writable
        self.version = 0
        self.rows: list[dict[str, Any]] = []
        self._rows_of: dict[str, _views.Rows] = {}
        self.history: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.reviews: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        #: set, and replaced by a new one, at each change: a stream waits on the one it took
        #: (no lock a cancelled reader could leave held)
        self.changed = asyncio.Event()
        #: the bodies of the event streams open now (an abandoned one leaves by itself)
        self.streams: weakref.WeakSet[AsyncIterator[bytes]] = weakref.WeakSet()
        self.lock = threading.Lock()

    def refresh(self) -> bool:
        """Refresh every repository (a thread); True when anything shown changed."""
        with self.lock:
            changed = False
            for state in self.states:
                changed = state.refresh() or changed
            if changed or not self.version:
                if not self.version:
                    # Versions of this process start at its start time (ms): above every
                    # version an earlier server gave a page that reconnects to this one.
                    self.version = time.time_ns() // 1_000_000
                rows = []
                for state in self.states:
                    kept = self._rows_of.setdefault(state.key, _views.Rows())
                    kept.update(state)
                    rows.extend(kept.rows)
                self.rows = rows
                if len(self.history) > 20_000:
                    self.history.clear()
                if len(self.reviews) > 2_000:
                    self.reviews.clear()
                self.version += 1
                # What was just read lives until the next change: out of the cycle collector's
                # sight, a full collection does not stop the server to walk millions of objects.
                if self.freeze:
                    gc.freeze()
            return changed

    def announce(self) -> None:
        """Wake every event stream (they then compare versions)."""
        woken, self.changed = self.changed, asyncio.Event()
        woken.set()

    async def refreshed(self) -> None:
        """`refresh()` in a thread, and the event streams told when anything changed."""
        try:
            changed = await asyncio.to_thread(self.refresh)
        except Exception as exc:  # noqa: BLE001 - a refresh must never stop the server
            sys.stderr.write(f"alloy ui: refresh failed: {exc}\n")
            changed = False
        if changed:
            self.announce()

    async def run(self) -> None:
        while True:
            await self.refreshed()
            await asyncio.sleep(self.poll)


def _wants_json(request: Request) -> bool:
    if request.query_params.get("format") == "json":
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def _short(value: object, n: int = 12) -> str:
    if not value:
        return "-"
    return str(value).removeprefix("sha256:")[:n]


def _ago(stamp: object) -> str:
    if not stamp:
        return "-"
    if not isinstance(stamp, str):
        return str(stamp)
    try:
        moment = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return stamp
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment.tzinfo else stamp


def _duration(ms: object) -> str:
    if not isinstance(ms, int | float):
        return "-"
    if ms < 1000:
        return f"{ms} ms"
    seconds = ms / 1000
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def create_app(
    states: Sequence[RepoState],
    *,
    security: Security | None = None,
    writable: bool = True,
    poll: float = 0.5,
    foundry: Sequence[str] | None = None,
    refresh_in_background: bool = True,
    max_streams: int = MAX_STREAMS,
    freeze_gc: bool = False,
) -> Starlette:
    """The application for `states`. `foundry` is the command that runs Foundry as a process
    (for the Markdown, OTLP and in-toto downloads); Alloy never imports it. At most
    `max_streams` event streams are open at once (each holds a connection: beyond it a 503)."""
    hub = Hub(states, poll=poll, writable=writable, freeze=freeze_gc)
    guard = security or Security()
    converter = list(foundry or [sys.executable, "-P", "-m", "foundry"])
    env = Environment(
        loader=PackageLoader("alloy.web", "templates"), autoescape=select_autoescape(["html"])
    )
    env.filters.update(
        short=_short,
        ago=_ago,
        duration=_duration,
        tojson_pretty=lambda v: json.dumps(v, indent=2, sort_keys=True),
    )
    env.globals.update(urlencode=urlencode)

    def render(
        request: Request, template: str, data: dict[str, Any], status: int = 200
    ) -> Response:
        if _wants_json(request):
            return JSONResponse(data, status_code=status)
        cookie = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
        fragment = request.headers.get("x-alloy-fragment") == "1"
        html = env.get_template(template).render(
            d=data,
            request=request,
            hub=hub,
            csrf=guard.csrf_for(cookie),
            fragment=fragment,
            identity=guard.identity_of(_token(request)),
            # the version when the request came, before its data was read: a change during
            # the read is newer than the page says, so its event stream still tells it
            version=getattr(request.state, "version", hub.version),
        )
        response = HTMLResponse(html, status_code=status)
        if CSRF_COOKIE not in request.cookies:
            response.set_cookie(CSRF_COOKIE, cookie, httponly=True, samesite="strict")
        return response

    def problem(request: Request, status: int, message: str) -> Response:
        return render(
            request, "error.html", {"schemaVersion": 1, "view": "error", "error": message}, status
        )

    def state_of(request: Request) -> RepoState | None:
        return hub.by_key.get(request.path_params["repo"])

    async def overview(request: Request) -> Response:
        q = request.query_params
        try:
            page = int(q.get("page", "1"))
        except ValueError:
            page = 1
        filters = _views.Filters(
            repo=q.get("repo", ""),
            owner=q.get("owner", ""),
            state=q.get("state", ""),
            label=q.get("label", ""),
            status=q.get("status", ""),
            q=q.get("q", ""),
            page=page,
        )
        return render(
            request, "overview.html", _views.overview(hub.states, hub.rows, filters, hub.writable)
        )

    async def intent(request: Request) -> Response:
        state = state_of(request)
        name = request.path_params["name"]
        if state is None or name not in state.intents.inputs:
            return problem(
                request, 404, f"no intent {name!r} in repository {request.path_params['repo']!r}"
            )

        def build() -> dict[str, Any]:
            with state.lock:
                history = _history.lifecycle(state, name, hub.history)
                findings = _critique(state, name)
                data = _views.intent_view(
                    state,
                    name,
                    history=history,
                    findings=findings,
                    now=datetime.datetime.now(datetime.UTC),
                )
            auto = data["automation"]
            data["graph"] = automation_svg(auto["blocks"]) if auto else ""
            return data

        return render(request, "intent.html", await asyncio.to_thread(build))

    async def execution(request: Request) -> Response:
        state = state_of(request)
        exe = request.path_params["execution"]
        ref = state.executions.get(exe) if state else None
        if state is None or ref is None:
            return problem(
                request, 404, f"no execution {exe!r} in repository {request.path_params['repo']!r}"
            )
        found = await asyncio.to_thread(state.trace_document, exe)
        if found is None:
            return problem(request, 404, f"the trace of {exe} cannot be read")
        trace, _ = found
        spec = trace["spec"]
        statuses = {b["id"]: b["status"] for b in spec.get("blocks", [])}
        model = await asyncio.to_thread(state.intent_model, ref.intent)
        auto = _views.automation(model, datetime.datetime.now(datetime.UTC)) if model else None
        data = {
            "schemaVersion": 1,
            "view": "execution",
            "repo": state.key,
            "id": exe,
            "intent": ref.intent,
            "source": ref.source,
            "claim": state.claims.get(exe, ({}, None))[0] or None,
            "trace": trace,
            "waiting": _views.waiting_items(state, ref, spec.get("gates", []))
            if spec["status"] not in status_mod.FINISHED
            else [],
            "checkRun": state.checks.get(exe),
            "downloads": {
                f: str(request.url_for("download", repo=state.key, execution=exe, fmt=f))
                for f in DOWNLOADS
            },
            "graph": automation_svg(auto["blocks"], statuses) if auto else "",
        }
        return render(request, "execution.html", data)

    async def download(request: Request) -> Response:
        state = state_of(request)
        exe, fmt = request.path_params["execution"], request.path_params["fmt"]
        if state is None or exe not in state.executions or fmt not in DOWNLOADS:
            return PlainTextResponse("not found", status_code=404)
        found = await asyncio.to_thread(state.trace_document, exe)
        if found is None:
            return PlainTextResponse("not found", status_code=404)
        _, raw = found
        name = f"{exe}.{'md' if fmt == 'markdown' else fmt + '.json' if fmt != 'json' else 'json'}"
        headers = {"content-disposition": f'attachment; filename="{name}"'}
        if fmt == "json":
            return Response(raw, media_type=DOWNLOADS[fmt], headers=headers)
        artifact = await asyncio.to_thread(state.artifact_bytes, exe)
        out, err = await asyncio.to_thread(_convert, converter, fmt, raw, artifact)
        if out is None:
            return PlainTextResponse(err, status_code=422)
        return Response(out, media_type=DOWNLOADS[fmt], headers=headers)

    async def simple(request: Request) -> Response:
        view = request.url.path.strip("/")
        if view == "approvals":
            data = _views.approvals(hub.states)
        elif view == "lanes":
            data = _views.lanes(hub.states)
        elif view == "activity":
            data = await asyncio.to_thread(_history.activity, hub.states, hub.history)
        else:
            data = await asyncio.to_thread(_reviews.reviews, hub.states, hub.reviews)
        data["writable"] = hub.writable
        return render(request, f"{view}.html", data)

    async def propose_form(request: Request) -> Response:
        state = state_of(request)
        if state is None:
            return problem(request, 404, "no such repository")
        return render(
            request,
            "propose.html",
            {"schemaVersion": 1, "view": "propose", "repo": state.key, "writable": hub.writable},
        )

    async def action(request: Request) -> Response:
        state = state_of(request)
        if state is None:
            return problem(request, 404, "no such repository")
        if not hub.writable:
            return problem(request, 403, "this server is read-only; nothing was written")
        async with request.form(**FORM_LIMITS) as form:
            if not guard.csrf_ok(request.cookies.get(CSRF_COOKIE), str(form.get("csrf", ""))):
                return problem(
                    request,
                    403,
                    "refused: the form's CSRF token is missing or wrong; reload the page and send it again",
                )
            text = {k: str(v) for k, v in form.items() if isinstance(v, str)}
            getlist = form.getlist
        actor = guard.identity_of(_token(request))
        kind = request.path_params["action"]
        # What the action checks and builds on is the remote as it is now, not as the page
        # showed it (the default branch may have moved since).
        await hub.refreshed()
        if state.error is not None:
            return problem(request, 502, f"{kind}: repository {state.key}: {state.error}")
        try:
            done = await asyncio.to_thread(_run_action, state, kind, text, getlist, actor)
        except (AlloyError, ValueError) as exc:
            return problem(request, 400, str(exc))
        except Exception as exc:  # noqa: BLE001 - a remote that refuses the push, say
            return problem(request, 502, f"{kind}: {exc}")
        await hub.refreshed()
        return render(
            request,
            "done.html",
            {"schemaVersion": 1, "view": "action", "repo": state.key, **done.to_json()},
            201,
        )

    async def events(request: Request) -> Response:
        try:
            limit = int(request.query_params.get("limit", "0"))
            # a reconnecting EventSource says the last change it was told (`id:`); a page's first
            # connection, the version it was drawn at
            since = int(
                request.headers.get("last-event-id")
                or request.query_params.get("since")
                or hub.version
            )
        except ValueError:
            return PlainTextResponse("limit and since are whole numbers", status_code=400)
        if request.method == "HEAD":  # the headers of a stream, without one that never ends
            return Response(media_type="text/event-stream", headers={"cache-control": "no-store"})
        if len(hub.streams) >= max_streams:
            return PlainTextResponse(
                f"{len(hub.streams)} live connections are open, the most this server keeps; "
                "the page works without one (reload it to see changes)",
                status_code=503,
                headers={"retry-after": "30", "connection": "close"},
            )

        async def stream() -> AsyncIterator[bytes]:
            seen = since
            sent = 0
            hello = json.dumps({"version": hub.version})
            yield f"retry: 1000\nevent: hello\ndata: {hello}\n\n".encode()
            while True:
                woken = hub.changed  # taken before the version is compared: no change is lost
                if hub.version != seen:  # newer, or another server's (a restart): told
                    seen = hub.version
                    data = json.dumps({"version": seen})
                    yield f"id: {seen}\nevent: change\ndata: {data}\n\n".encode()
                    sent += 1
                    if limit and sent >= limit:
                        return
                    continue
                try:
                    await asyncio.wait_for(woken.wait(), timeout=15)
                except TimeoutError:
                    yield b": keep-alive\n\n"

        body = stream()
        hub.streams.add(body)
        return StreamingResponse(
            body, media_type="text/event-stream", headers={"cache-control": "no-store"}
        )

    async def healthz(request: Request) -> Response:
        errors = {s.key: s.error for s in hub.states if s.error}
        body: dict[str, Any] = {"ok": not errors, "version": hub.version}
        if guard.token_ok(_token(request)):  # what went wrong is for those who may read it
            body["errors"] = errors
        return JSONResponse(body, status_code=200 if not errors else 503)

    async def login(request: Request) -> Response:
        if request.method == "POST":
            async with request.form(**FORM_LIMITS) as form:
                token = str(form.get("token", ""))
            if guard.token_ok(token):
                response = RedirectResponse("/", status_code=303)
                response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
                return response
            return HTMLResponse(env.get_template("login.html").render(failed=True), status_code=401)
        return HTMLResponse(env.get_template("login.html").render(failed=False))

    routes = [
        Route("/", overview, name="overview"),
        Route("/approvals", simple, name="approvals"),
        Route("/reviews", simple, name="reviews"),
        Route("/lanes", simple, name="lanes"),
        Route("/activity", simple, name="activity"),
        Route("/events", events, name="events"),
        Route("/healthz", healthz),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/r/{repo}/intents/{name}", intent, name="intent"),
        Route("/r/{repo}/executions/{execution}", execution, name="execution"),
        Route("/r/{repo}/executions/{execution}/download/{fmt}", download, name="download"),
        Route("/r/{repo}/propose", propose_form, name="propose"),
        Route("/r/{repo}/actions/{action}", action, methods=["POST"], name="action"),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        hub.changed = asyncio.Event()  # of this event loop (an app may be served again)
        await hub.refreshed()
        task = asyncio.create_task(hub.run()) if refresh_in_background else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()

    async def gatekeeper(request: Request, call_next: Callable[[Request], Any]) -> Response:
        response = await _guarded(request, call_next)
        response.headers.setdefault("x-content-type-options", "nosniff")
        response.headers.setdefault("referrer-policy", "same-origin")
        response.headers.setdefault("content-security-policy", CSP)
        if not request.url.path.startswith("/static/") or response.status_code >= 400:
            # what a page shows (and its CSRF token) is for its reader: no cache keeps it
            response.headers.setdefault("cache-control", "no-store")
        return response

    async def _guarded(request: Request, call_next: Callable[[Request], Any]) -> Response:
        path = request.url.path
        request.state.version = hub.version
        if not guard.host_ok(request.headers.get("host")):
            # DNS rebinding: a page of another site whose name now resolves to this host.
            return _refusal(
                request,
                400,
                "this server answers to its loopback address only (Host "
                f"{request.headers.get('host', '')!r}); open it as http://127.0.0.1:PORT/",
            )
        if request.method not in ("GET", "HEAD") and _cross_site(request):
            return _refusal(request, 403, "refused: the form was sent from another site (Origin)")
        if (
            guard.needs_token
            and path not in ("/login", "/healthz")
            and not path.startswith("/static/")
            and not guard.token_ok(_token(request))
        ):
            if _wants_json(request) or request.method != "GET":
                return JSONResponse(
                    {"error": "a token is required (Authorization: Bearer TOKEN)"},
                    status_code=401,
                )
            return RedirectResponse("/login", status_code=303)
        try:
            response: Response = await call_next(request)
        except Exception:  # noqa: BLE001 - a page never shows a traceback
            sys.stderr.write(f"alloy ui: {request.method} {path} failed:\n{traceback.format_exc()}")
            return problem(request, 500, "an internal error; the server's log says what went wrong")
        return response

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        response = problem(request, exc.status_code, str(exc.detail))
        response.headers.update(exc.headers or {})
        return response

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=gatekeeper)],
        exception_handlers={HTTPException: http_error},
    )
    app.state.hub = hub
    return app


def _refusal(request: Request, status: int, message: str) -> Response:
    """A refusal before anything of the request is served (no page, no cookie)."""
    if _wants_json(request):
        return JSONResponse({"error": message}, status_code=status)
    return PlainTextResponse(message, status_code=status)


def _cross_site(request: Request) -> bool:
    """Whether a POST comes from a page of another origin (`Origin`, else `Referer`)."""
    here = str(request.base_url).rstrip("/")
    origin = request.headers.get("origin")
    if origin is not None:
        return origin.rstrip("/") != here
    referer = request.headers.get("referer")
    if referer:
        return referer != here and not referer.startswith(here + "/")
    return False


def _token(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.cookies.get(TOKEN_COOKIE)


def _run_action(
    state: RepoState,
    kind: str,
    form: dict[str, str],
    getlist: Callable[[str], list[Any]],
    actor: str,
) -> _actions.Done:
    def lines(name: str) -> list[str]:
        return [line.strip() for line in form.get(name, "").splitlines() if line.strip()]

    if kind in ("approve", "reject"):
        return _actions.approve(
            state,
            execution=form.get("execution", ""),
            gate=form.get("gate", ""),
            decision=kind,
            comment=form.get("comment", ""),
            actor=actor,
        )
    if kind == "request":
        return _actions.request(
            state,
            intent=form.get("intent", ""),
            inputs=lines("inputs"),
            reason=form.get("reason", ""),
            actor=actor,
        )
    if kind == "propose":
        return _actions.propose(
            state,
            name=form.get("name", "").strip(),
            title=form.get("title", "").strip(),
            goal=form.get("goal", ""),
            rationale=form.get("rationale", ""),
            owners=[
                o.strip()
                for o in form.get("owners", "").replace(",", "\n").splitlines()
                if o.strip()
            ],
            acceptance=lines("acceptance"),
            actor=actor,
        )
    if kind == "move":
        return _actions.move(
            state,
            intent=form.get("intent", ""),
            to=form.get("to", ""),
            reason=form.get("reason", ""),
            actor=actor,
        )
    raise ValueError(f"no action {kind!r}: approve, reject, request, propose or move")


def _critique(state: RepoState, name: str) -> list[dict[str, Any]]:
    """The intent assistant's deterministic findings about `name` (offline)."""
    from alloy.critique import critique
    from alloy.critique._rules import IntentDocument

    commit = state.intents.commit
    if commit is None:
        return []
    wanted = [name]
    chain = set()
    while wanted:
        current = wanted.pop()
        if current in chain or current not in state.intents.inputs:
            continue
        chain.add(current)
        wanted.extend(state.intents.inputs[current].summary.supersedes)
    documents = {}
    for member in sorted(chain):
        given = state.intents.inputs[member]
        data = state.file(commit, given.path)
        model = state.intent_model(member)
        if data is not None and model is not None:
            documents[member] = IntentDocument(member, given.path, data, model)
    if name not in documents:
        return []
    states = state.intents.states
    project = state.intents.repo.project if state.intents.repo else None
    report = critique(
        documents,
        names=[name],
        project_owners=list(project.spec.owners) if project else [],
        states=states,
    )
    return [f.to_json() for f in report.findings]


def _convert(
    command: list[str], fmt: str, trace: bytes, artifact: bytes | None
) -> tuple[bytes | None, str]:
    """Foundry renders Markdown, OTLP and in-toto (as a process: Alloy never imports it)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        args = [*command, "traces", "convert", "--format", fmt, "--trace", "-"]
        if artifact is not None:
            path = Path(tmp) / "artifact.json"
            path.write_bytes(artifact)
            args += ["--artifact", str(path)]
        try:
            proc = subprocess.run(args, input=trace, capture_output=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"foundry traces convert: {exc}"
    if proc.returncode != 0:
        return None, proc.stderr.decode(
            "utf-8", "replace"
        ).strip() or "foundry traces convert failed"
    return proc.stdout, ""
