"""Who may talk to a server: an API key, the bind address and the Host header.

Both servers (`posttrain serve` and `posttrain serve-rm`) use this module:

- an API key (`--api-key`, or the POSTTRAIN_API_KEY environment variable), checked as
  `Authorization: Bearer <key>` on every route except `/health`, as OpenAI-compatible servers
  do; without one, only loopback addresses may be bound, so a server never listens on a
  network unprotected by accident;
- the Host header must name the address the server was bound to (or, on loopback, any
  loopback name): a web page that re-points its own domain at 127.0.0.1 (DNS rebinding)
  sends its own domain as Host and is refused. Wildcard binds (0.0.0.0, ::) need a key and
  accept any Host: the key is what keeps browsers out there.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Receive, Scope, Send

API_KEY_ENV = "POSTTRAIN_API_KEY"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
OPEN_PATHS = frozenset({"/health"})  # liveness probes carry no credentials


def resolve_api_key(flag: str | None) -> str | None:
    """`--api-key` if given, else POSTTRAIN_API_KEY; empty means none."""
    key = flag if flag is not None else os.environ.get(API_KEY_ENV)
    return key or None


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def check_bind(host: str, api_key: str | None) -> None:
    """Refuse to listen beyond loopback without an API key."""
    if api_key is None and not is_loopback(host):
        raise ValueError(
            f"refusing to serve on {host} without an API key: anyone who can reach that "
            f"address could use the server. Pass --api-key or set {API_KEY_ENV} (clients "
            "send it as 'Authorization: Bearer <key>'), or bind 127.0.0.1"
        )


def allowed_hosts(host: str) -> frozenset[str] | None:
    """Host names the server answers to when bound to `host`; None: any (wildcard binds)."""
    if is_wildcard(host):
        return None
    name = host.strip("[]").lower()
    return LOOPBACK_NAMES | {name} if is_loopback(host) else frozenset({name})


def host_name(header: str) -> str:
    """`example.com:8000` -> `example.com`; `[::1]:8000` -> `::1`."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    if header.count(":") == 1:
        return header.partition(":")[0]
    return header


class AccessGuard:
    """ASGI middleware: the Host check, then the bearer-token check (answers 400 / 401)."""

    def __init__(self, app: ASGIApp, api_key: str | None, hosts: frozenset[str] | None) -> None:
        self.app = app
        self.api_key = api_key.encode() if api_key else None
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from posttrain.models.server.errors import APIError, send_error

        headers = dict(scope.get("headers", []))
        host = headers.get(b"host")
        if self.hosts is not None and host is not None:
            name = host_name(host.decode("latin-1"))
            if name not in self.hosts:
                await send_error(
                    APIError(
                        f"Host '{name}' is not served here: this server answers to "
                        f"{', '.join(sorted(self.hosts))} only.",
                        param="Host",
                        code="invalid_host",
                    ),
                    send,
                )
                return
        if self.api_key is not None and scope.get("path") not in OPEN_PATHS:
            problem = self._key_problem(headers.get(b"authorization"))
            if problem:
                await send_error(
                    APIError(problem, status=401, code="invalid_api_key"),
                    send,
                    extra_headers=[(b"www-authenticate", b"Bearer")],
                )
                return
        await self.app(scope, receive, send)

    def _key_problem(self, header: bytes | None) -> str | None:
        if not header:
            return "Missing API key: send it as 'Authorization: Bearer <key>'."
        scheme, _, token = header.partition(b" ")
        if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self.api_key):
            return "Incorrect API key provided."
        return None


def page_headers(nonce: str, frame_src: str = "'none'") -> dict[str, str]:
    """Headers of a browser page served with its token in the URL: only its own inline script
    (`nonce`) runs, it calls back only its own origin, no frame can overlay its buttons, it
    frames only `frame_src`, and the token never leaves in a Referer."""
    return {
        "cache-control": "no-store",
        "content-security-policy": f"default-src 'none'; script-src 'nonce-{nonce}'; "
        "style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; "
        f"frame-src {frame_src}; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        "referrer-policy": "no-referrer",
    }


class PageTokenGuard:
    """AccessGuard for servers a browser talks to (the EurekAgent monitor, the MAIC studio):
    the token may also come as `?token=` (a page load or an EventSource cannot send headers),
    and paths under `open_prefixes` get the Host check only (liveness probes; capability URLs
    whose unguessable path is their own credential)."""

    def __init__(
        self,
        app: ASGIApp,
        token: str,
        hosts: frozenset[str] | None,
        open_prefixes: tuple[str, ...] = ("/healthz",),
    ) -> None:
        self.guarded = AccessGuard(app, token, hosts)
        self.open = AccessGuard(app, None, hosts)
        self.open_prefixes = open_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.guarded(scope, receive, send)
            return
        if str(scope.get("path", "")).startswith(self.open_prefixes):
            await self.open(scope, receive, send)
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        headers = scope.get("headers", [])
        if query.get("token") and not any(k == b"authorization" for k, _ in headers):
            bearer = b"Bearer " + query["token"][0].encode()
            scope = {**scope, "headers": [*headers, (b"authorization", bearer)]}
        await self.guarded(scope, receive, send)
