"""The proxy of `foundry daemon`'s web interface: a request to the daemon's own HTTP endpoint
forwarded to the `alloy ui` child (controllers/daemon_ui.py) and its answer streamed back.

The request (method, target, headers but the hop-by-hop ones, `Host` as the client sent it, the
body) is sent on with `http.client`; the response's status and headers come back as they are,
and its body is copied chunk by chunk as it arrives, each chunk written to the client at once
(Server-Sent Events flow through). The daemon answers HTTP/1.0, so a body of unknown length ends
when the connection closes; while such a body streams, a thread watches the client's socket and
closes the child's side when the client goes, so an endless stream ends with its reader.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
from http.server import BaseHTTPRequestHandler

#: The proxy's socket timeout towards the child (an event stream sends a keep-alive every 15 s).
UPSTREAM_TIMEOUT = 300.0
CHUNK = 64 * 1024
#: Headers that belong to one connection, never forwarded (RFC 9110 section 7.6.1), and Expect
#: (the daemon answers HTTP/1.0: it never sends 100 Continue).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "expect",
    }
)


class Upstreams:
    """The proxy's open connections to the child: closed when the child is stopped, so that it
    need not wait for its endless responses (event streams) to end before it exits."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()

    def add(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.add(sock)

    def discard(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)

    def close_all(self) -> None:
        with self._lock:
            found, self._open = self._open, set()
        for sock in found:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def forward(handler: BaseHTTPRequestHandler, port: int, upstreams: Upstreams | None = None) -> None:
    """`handler`'s request sent to 127.0.0.1:`port`, the answer streamed back to its client."""
    target = handler.path
    if not target.startswith("/"):
        plain(handler, 400, "the request target must be a path (origin form)\n")
        return
    headers = handler.headers
    if any("chunked" in v.lower() for v in headers.get_all("Transfer-Encoding", [])):
        plain(handler, 411, "a request body needs Content-Length\n")
        return
    length_text = headers.get("Content-Length", "0").strip()
    if not length_text.isdigit():
        plain(handler, 400, f"bad Content-Length {length_text!r}\n")
        return
    remaining = int(length_text)
    listed = {
        token.strip().lower()
        for value in headers.get_all("Connection", [])
        for token in value.split(",")
    }
    upstream = http.client.HTTPConnection("127.0.0.1", port, timeout=UPSTREAM_TIMEOUT)
    sock: socket.socket | None = None
    try:
        upstream.connect()
        sock = upstream.sock
        if upstreams is not None and sock is not None:
            upstreams.add(sock)
        upstream.putrequest(handler.command, target, skip_host=True, skip_accept_encoding=True)
        forwarded_for: list[str] = []
        has_host = False
        for name, value in headers.items():
            low = name.lower()
            if low in HOP_BY_HOP or low in listed:
                continue
            if low == "x-forwarded-for":
                forwarded_for.append(value)
                continue
            has_host = has_host or low == "host"
            upstream.putheader(name, value)
        if not has_host:  # an HTTP/1.0 client: the daemon's own address
            upstream.putheader("Host", _authority(handler.server.server_address))
        forwarded_for.append(str(handler.client_address[0]))
        upstream.putheader("X-Forwarded-For", ", ".join(forwarded_for))
        upstream.endheaders()
        while remaining > 0:
            chunk = handler.rfile.read(min(CHUNK, remaining))
            if not chunk:  # the client went away mid-body: nobody to send it to
                _done(upstream, sock, upstreams)
                return
            upstream.send(chunk)
            remaining -= len(chunk)
        response = upstream.getresponse()
    except (OSError, http.client.HTTPException, ValueError) as exc:
        _done(upstream, sock, upstreams)
        plain(handler, 502, f"the web interface did not answer: {exc}\n", retry=True)
        return
    try:
        _relay(handler, response, sock)
    finally:
        response.close()
        _done(upstream, sock, upstreams)


def _done(
    upstream: http.client.HTTPConnection, sock: socket.socket | None, upstreams: Upstreams | None
) -> None:
    if upstreams is not None and sock is not None:
        upstreams.discard(sock)
    upstream.close()


def _relay(
    handler: BaseHTTPRequestHandler,
    response: http.client.HTTPResponse,
    sock: socket.socket | None,
) -> None:
    listed = {
        token.strip().lower() for token in (response.getheader("Connection") or "").split(",")
    }
    handler.send_response_only(response.status, response.reason)
    for name, value in response.getheaders():
        low = name.lower()
        if low in HOP_BY_HOP or low in listed:
            continue
        handler.send_header(name, value)
    handler.send_header("Connection", "close")
    handler.end_headers()
    handler.close_connection = True
    if handler.command == "HEAD" or response.status in (204, 304) or 100 <= response.status < 200:
        return
    endless = response.getheader("Content-Length") is None
    watch = _ClientWatch(handler.connection, sock) if endless and sock is not None else None
    try:
        while True:
            chunk = response.read1(CHUNK)
            if not chunk:
                break
            handler.wfile.write(chunk)
            handler.wfile.flush()
    except (OSError, http.client.HTTPException):
        pass  # the client left (or the child did): this response ends here
    finally:
        if watch is not None:
            watch.stop()


class _ClientWatch:
    """While a body of unknown length streams: when the client closes its connection, shut the
    child's socket down, so the blocking read of the stream returns and the relay ends."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self._client = client
        self._upstream = upstream
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ui-client", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with contextlib.suppress(OSError):
            while self._client.recv(4096):
                pass  # nothing more is read from this client (HTTP/1.0: one request)
        if not self._done.is_set():
            with contextlib.suppress(OSError):
                self._upstream.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self._done.set()
        with contextlib.suppress(OSError):
            self._client.shutdown(socket.SHUT_RD)  # wakes the blocked recv
        self._thread.join(timeout=5)


def plain(handler: BaseHTTPRequestHandler, code: int, text: str, *, retry: bool = False) -> None:
    body = text.encode()
    handler.send_response(code)
    handler.send_header("Content-Type", "text/plain; charset=utf-8")
    handler.send_header("Content-Length", str(len(body)))
    handler.send_header("Cache-Control", "no-store")
    if retry:
        handler.send_header("Retry-After", "1")
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)


def _authority(address: object) -> str:
    if not isinstance(address, tuple):
        return "localhost"
    host, port = str(address[0]), int(address[1])
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
