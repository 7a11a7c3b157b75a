"""`alloy ui`: serve the web interface (alloy.web) with uvicorn."""

from __future__ import annotations

import socket
import threading
import webbrowser
from pathlib import Path

import click

from alloy.cli._identity import who
from alloy.cli._root import Context, cli, pass_ctx
from alloy.errors import NotFound, UserError


def _default_remote(where: Path) -> str:
    """The repository `alloy ui` shows when no --repo is given: the current clone's `origin`
    (where reconcile keeps claims, traces and records), else the repository itself."""
    from controllers import git as gitctl

    root = gitctl.toplevel(where)
    if root is None:
        raise UserError(f"{where} is not inside a git repository; pass --repo PATH|URL")
    origin = gitctl.config_value(root, "remote.origin.url")
    if origin:
        return (
            origin
            if "://" in origin or ":" in origin.split("/")[0]
            else str((root / origin).resolve())
        )
    return str(root)


def _github_names(given: tuple[str, ...]) -> dict[str, str]:
    names = {}
    for item in given:
        key, sep, repository = item.partition("=")
        owner, slash, name = repository.partition("/")
        if not sep or not key or not slash or not owner or not name or "/" in name:
            raise UserError(f"--github {item!r}: write KEY=OWNER/NAME, like docs=acme/docs")
        names[key] = repository
    return names


def _identity(given: str | None, where: Path) -> str:
    return given or who(where, "--as", unknown="alloy-ui")


def _stream_room() -> int:
    """How many event streams to keep open at once: each holds a file descriptor, and the
    refresh needs some too (git processes and their pipes). The soft limit is raised to the
    hard one first (a server's usual start)."""
    import resource

    from alloy.web import MAX_STREAMS

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return MAX_STREAMS
    return max(4, min(MAX_STREAMS, (soft - 64) // 2))


@cli.command()
@click.option(
    "--repo",
    "repos",
    multiple=True,
    metavar="PATH|URL",
    help="A repository to show, as given to `foundry reconcile --repo` (repeatable; default: "
    "this clone's origin, else this repository).",
)
@click.option("--listen", default="127.0.0.1:8780", show_default=True, metavar="HOST:PORT")
@click.option(
    "--listen-fd",
    type=click.IntRange(min=3),
    metavar="FD",
    help="Serve on this inherited listening TCP socket instead (how `foundry daemon` starts "
    "it: the port is never free for another process to take); its address counts as --listen.",
)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Access tokens, one per line (TOKEN or NAME TOKEN); required to listen beyond loopback.",
)
@click.option("--read-only", is_flag=True, help="Show everything, write nothing (no actions).")
@click.option(
    "--as", "identity", metavar="NAME", help="Who actions are recorded as (default: git user.name)."
)
@click.option(
    "--poll",
    default=0.5,
    show_default=True,
    type=click.FloatRange(0.05, 60),
    help="Seconds between looks at the remotes.",
)
@click.option(
    "--cache",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the bare caches of the remotes are kept (default: ~/.cache/alloy/ui).",
)
@click.option(
    "--github",
    "github",
    multiple=True,
    metavar="KEY=OWNER/NAME",
    help="The repository KEY (as in the dashboard's URLs) is OWNER/NAME on GitHub: its pull "
    "requests are shown and opened (a remote URL on github.com is found by itself). Token: "
    "GITHUB_TOKEN or GH_TOKEN.",
)
@click.option(
    "--github-api",
    metavar="URL",
    help="GitHub Enterprise's API base URL (https://HOST/api/v3); default: github.com's.",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the dashboard in a browser.")
@pass_ctx
def ui(
    ctx: Context,
    repos: tuple[str, ...],
    listen: str,
    listen_fd: int | None,
    token_file: Path | None,
    read_only: bool,
    identity: str | None,
    poll: float,
    cache: Path | None,
    github: tuple[str, ...],
    github_api: str | None,
    open_browser: bool,
) -> None:
    """Serve the web dashboard of intent, executions and evidence (docs/ui.md)."""
    import uvicorn

    from alloy.web import (
        Security,
        create_app,
        default_cache,
        is_loopback,
        open_repositories,
        read_tokens,
    )
    from controllers.github_pulls import token_from_env
    from controllers.remote_view import RemoteError

    inherited = _inherited_socket(listen_fd) if listen_fd is not None else None
    if inherited is not None:
        bound = inherited.getsockname()
        listen = (
            f"[{bound[0]}]:{bound[1]}"
            if inherited.family == socket.AF_INET6
            else (f"{bound[0]}:{bound[1]}")
        )
    host, sep, port_text = listen.rpartition(":")
    if not sep or not port_text.isdigit() or not host:
        raise UserError(f"--listen {listen!r}: write HOST:PORT, like 127.0.0.1:8780")
    tokens: dict[str, str | None] = {}
    if token_file is not None:
        try:
            tokens = read_tokens(str(token_file), token_file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise NotFound(f"--token-file {token_file}: {exc.strerror}") from None
    if not is_loopback(host) and not tokens:
        raise UserError(
            f"--listen {listen}: beyond loopback the dashboard needs --token-file (one token per "
            "line); or listen on 127.0.0.1"
        )
    where = ctx.cwd()
    urls = [str(Path(r).resolve()) if Path(r).exists() else r for r in repos] or [
        _default_remote(where)
    ]
    try:
        states = open_repositories(
            urls,
            cache or default_cache(),
            github=_github_names(github),
            github_api=github_api,
            token=token_from_env(),
        )
    except (RemoteError, OSError) as exc:
        raise UserError(f"cannot prepare the cache: {exc}") from None
    failures = []
    for state in states:
        try:
            state.view.refresh()
        except RemoteError as exc:
            failures.append(f"--repo {state.view.display_url}: {exc}")
    if failures and len(failures) == len(states):
        raise UserError("; ".join(failures))
    for failure in failures:  # the others are served; the page says this one cannot be read
        click.echo(f"alloy ui: warning: {failure}", err=True)
    # Without tokens the server is for this machine only: a request must name it by a loopback
    # address (a page of another site whose name was made to resolve to 127.0.0.1 — DNS
    # rebinding — is refused). With tokens, the token is what admits a request.
    hosts = None if tokens else frozenset({host.strip("[]").lower(), "localhost"})
    app = create_app(
        states,
        security=Security(tokens=tokens, identity=_identity(identity, where), hosts=hosts),
        writable=not read_only,
        poll=poll,
        max_streams=_stream_room(),
        freeze_gc=True,
    )
    address = f"http://{host if ':' not in host else '[' + host + ']'}:{port_text}/"
    click.echo(f"alloy ui: serving {', '.join(s.key for s in states)} on {address}", err=True)
    if open_browser:
        threading.Timer(1.0, webbrowser.open, args=(address,)).start()
    # Open event streams never end by themselves: a stop waits for them at most 2 s.
    if inherited is not None:
        config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2)
        uvicorn.Server(config).run(sockets=[inherited])
        return
    uvicorn.run(
        app,
        host=host.strip("[]"),
        port=int(port_text),
        log_level="warning",
        timeout_graceful_shutdown=2,
    )


def _inherited_socket(fd: int) -> socket.socket:
    """The listening TCP socket at descriptor `fd` (a UserError saying what it is not)."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise UserError(f"--listen-fd {fd}: not an open socket ({exc.strerror})") from None
    listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM:
        sock.detach()
        raise UserError(f"--listen-fd {fd}: not a TCP socket")
    if not listening:
        sock.detach()
        raise UserError(f"--listen-fd {fd}: the socket is not listening (bind and listen first)")
    return sock
