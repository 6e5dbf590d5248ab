"""`digest serve`: the feedback service behind every link in a digest.

    GET  /c/<token>          record a click, then 302 to the item's own URL
    GET  /f/<token>/more     record "more like this" (or /less); POST undoes it
    GET  /f/<token>          the same, for a token that names "more" or "less" itself
    GET  /u/<token>          a confirmation page; POST unsubscribes (RFC 8058 one-click)
    GET  /feeds/<token>.atom a reader's or team's feed (also .rss), by its private token
    GET  /healthz            the database answers

Tokens are signed (`digest.tokens`); a token that does not verify records nothing
and gets a 4xx page. The redirect target always comes from the stored item, never
from the request, and only an http(s) URL is ever redirected to. HEAD requests are
answered but never counted, and a GET never unsubscribes: mail scanners prefetch
links, and one-click unsubscribe is a POST by design.

Events go to the same SQLite database `digest run` uses: WAL, a busy timeout and
one short transaction per request, on one connection per worker thread. Writes
take turns on a lock in the process, so worker threads queue there instead of in
SQLite's busy handler, which sleeps: under load that made a few requests wait
half a second while others overtook them. A request that still finds the
database locked (a long write by `digest run`) gets a 503 page, never a traceback.
"""

from __future__ import annotations

import logging
import signal
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import FrameType

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse
from starlette.routing import Route

from digest.errors import ConfigError, DigestError
from digest.render.feeds import feed_file
from digest.render.links import is_web_url
from digest.render.templates import render
from digest.settings import Settings
from digest.store import Store
from digest.tokens import LinkToken, TokenError, TokenSigner

_log = logging.getLogger("digest.serve")
#: Events a "more/less like this" link records: a like weighs double, a dislike is negative.
FEEDBACK_EVENTS = {"more": "like", "less": "dislike"}
#: How long after recording a "more/less" choice its undo button still works.
UNDO_WINDOW = timedelta(days=7)
_EPOCH = datetime.min.replace(tzinfo=UTC)
_HEADERS = {
    # Tokens travel in URLs: never leak them to the item's site through the Referer.
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}


class Service:
    """The request handlers and what they share: settings, signer, one store per thread."""

    def __init__(self, settings: Settings, *, clock: Callable[[], datetime] | None = None):
        secret = settings.secret()
        if not secret:
            raise ConfigError(
                "no link secret: set $DIGEST_SECRET or links.secret_file; "
                "the server refuses to start without one"
            )
        self.settings = settings
        self.signer = TokenSigner(secret)
        self.clock = clock or (lambda: datetime.now(UTC))
        self._local = threading.local()
        self._writing = threading.Lock()
        Store.open(settings.store.db, create=False).close()  # fail now, not per request

    def store(self) -> Store:
        """This thread's connection (SQLite connections are not shared across threads)."""
        store = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = Store.open(self.settings.store.db, create=False)
        return store

    @contextmanager
    def writer(self) -> Iterator[Store]:
        """This thread's store, holding the process's write turn (see the module docstring)."""
        with self._writing:
            yield self.store()

    # -- /c: clicks -------------------------------------------------------------------------

    def click(self, request: Request) -> HTMLResponse | RedirectResponse:
        token = self._token(request, ("click",), picked="click")
        if token is None:
            return self._invalid()
        items = self.store().stored_items(ids=[token.item_id])
        if not items or not is_web_url(items[0].url):
            return self._page("Link unavailable", ["This paper has no web link."], status=404)
        if request.method != "HEAD":
            with self.writer() as store:
                store.record_link_event(
                    token.reader, token.item_id, "click", now=self.clock(),
                    window=self.settings.serve.click_window,
                )  # fmt: skip
        return RedirectResponse(items[0].url, status_code=302, headers=_HEADERS)

    # -- /f: more or less like this ---------------------------------------------------------

    def feedback(self, request: Request) -> HTMLResponse:
        choice = request.path_params.get("choice")
        if choice is None:
            token = self._token(request, tuple(FEEDBACK_EVENTS))
        elif choice in FEEDBACK_EVENTS:
            token = self._token(request, (), picked=choice)
        else:
            raise HTTPException(404)
        if token is None:
            return self._invalid()
        items = self.store().stored_items(ids=[token.item_id])
        if not items:
            return self._page("Link unavailable", ["This paper is no longer stored."], status=404)
        title = items[0].title
        event = FEEDBACK_EVENTS[token.action]
        if request.method == "POST":
            with self.writer() as store:
                undone = store.undo_link_event(
                    token.reader, token.item_id, event, since=self.clock() - UNDO_WINDOW
                )
            what = "liked" if event == "like" else "disliked"
            lines = [f"Undone: “{title}” no longer counts as {what}."]
            return self._page("Undone", lines if undone else ["There was nothing to undo."])
        if request.method != "HEAD":
            with self.writer() as store, store.transaction():
                # The latest choice wins: "less" after "more" on the same paper must not
                # leave a like (+2) outweighing the dislike (-1), and the reverse.
                opposite = FEEDBACK_EVENTS["less" if event == "like" else "more"]
                while store.undo_link_event(token.reader, token.item_id, opposite, since=_EPOCH):
                    pass
                store.record_link_event(
                    token.reader, token.item_id, event, now=self.clock(),
                    window=self.settings.serve.click_window,
                )  # fmt: skip
        more = token.action == "more"
        lines = [
            f"Thanks. You will see {'more' if more else 'fewer'} papers like “{title}”.",
            "Your next digest takes this into account.",
        ]
        form = {"action": _here(request), "label": "Undo", "fields": [("undo", "1")]}
        return self._page("More like this" if more else "Less like this", lines, form=form)

    # -- /u: unsubscribe --------------------------------------------------------------------

    def unsubscribe(self, request: Request) -> HTMLResponse:
        token = self._token(request, ("unsubscribe",))
        if token is None:
            return self._invalid()
        if request.method == "POST":
            # RFC 8058 one-click: the body says "List-Unsubscribe=One-Click"; the signed
            # token alone authorises the request, so the body is not read.
            with self.writer() as store, store.transaction():
                # A reader this database does not know yet (it was rebuilt, say) is
                # added, so the unsubscribe holds when their profile comes back.
                store.ensure_reader(token.reader, origin="feedback")
                store.set_subscribed(token.reader, False)
            return self._page(
                "Unsubscribed",
                [f"{token.reader} will get no more digests.",
                 "An administrator can re-subscribe you (digest readers subscribe)."],
            )  # fmt: skip
        form = {
            "action": _here(request),
            "label": "Unsubscribe",
            "fields": [("List-Unsubscribe", "One-Click")],
        }
        lines = [f"Stop sending digests to {token.reader}?"]
        note = "Nothing changes until you press the button."
        return self._page("Unsubscribe", lines, form=form, note=note)

    # -- /feeds and /healthz ----------------------------------------------------------------

    def feed(self, request: Request) -> FileResponse | HTMLResponse:
        token, kind = request.path_params["token"], request.path_params["kind"]
        audience = self.store().audience_for_feed_token(token) if len(token) >= 16 else None
        path = self.settings.feeds_dir() / feed_file(audience, kind) if audience else None
        if path is None or not path.is_file():
            return self._page("Not found", ["No such feed."], status=404)
        media = {"atom": "application/atom+xml", "rss": "application/rss+xml"}[kind]
        headers = {**_HEADERS, "Cache-Control": "private, max-age=300"}
        return FileResponse(path, media_type=media, headers=headers)

    def health(self, request: Request) -> PlainTextResponse:
        try:
            self.store().conn.execute("SELECT 1 FROM _migrations LIMIT 1").fetchone()
        except (sqlite3.Error, DigestError) as exc:
            return PlainTextResponse(f"unhealthy: {type(exc).__name__}\n", status_code=503)
        return PlainTextResponse("ok\n", headers={"Cache-Control": "no-store"})

    # -- helpers ----------------------------------------------------------------------------

    def _token(
        self, request: Request, actions: tuple[str, ...], *, picked: str | None = None
    ) -> LinkToken | None:
        """The request's verified token if it may do one of `actions`, else None.

        A "pick" token (one item of one digest) does what the path says, `picked`: a
        click at /c/, "more" or "less" at /f/<token>/more or /less; nothing elsewhere.
        """
        raw = request.path_params["token"]
        if len(raw) > 512:
            return None
        try:
            token = self.signer.verify(raw)
        except TokenError:
            return None
        if token.action == "pick":
            return replace(token, action=picked) if picked else None
        return token if token.action in actions else None

    def http_error(self, request: Request, exc: Exception) -> HTMLResponse:
        """Unknown paths and methods get the same small page as everything else."""
        assert isinstance(exc, HTTPException)
        heading = "Not found" if exc.status_code == 404 else exc.detail
        page = self._page(heading, ["There is nothing here."], status=exc.status_code)
        page.headers.update(exc.headers or {})
        return page

    def database_busy(self, request: Request, exc: Exception) -> HTMLResponse:
        """A database locked past the busy timeout: a page asking to retry, not a 500."""
        if not (isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)):
            raise exc
        _log.warning(
            "database locked past the busy timeout: answered %s with 503", request.url.path[:3]
        )
        page = self._page(
            "Busy", ["The service is busy. Please try the link again in a minute."], status=503
        )
        page.headers["Retry-After"] = "60"
        return page

    def server_error(self, request: Request, exc: Exception) -> HTMLResponse:
        """A page instead of a bare 500 (uvicorn logs the traceback, then closes the
        connection: say so, or a client reusing it gets a reset)."""
        page = self._page("Error", ["Something went wrong on our side."], status=500)
        page.headers["Connection"] = "close"
        return page

    def _invalid(self) -> HTMLResponse:
        return self._page(
            "Invalid link", ["This link is not valid. It may have been cut short or changed."],
            status=400,
        )  # fmt: skip

    def _page(
        self, heading: str, lines: list[str], *, status: int = 200, form: dict | None = None,
        note: str | None = None,
    ) -> HTMLResponse:  # fmt: skip
        body = render(
            "page.html.j2", self.settings.templates(), title=heading, heading=heading,
            lines=lines, form=form, note=note, site_name="digest",
        )  # fmt: skip
        return HTMLResponse(body, status_code=status, headers=_HEADERS)


def create_app(settings: Settings, *, clock: Callable[[], datetime] | None = None) -> Starlette:
    """The ASGI application (uvicorn serves it; tests may too)."""
    service = Service(settings, clock=clock)
    app = Starlette(
        routes=[
            Route("/c/{token}", service.click, methods=["GET"]),
            Route("/f/{token}", service.feedback, methods=["GET", "POST"]),
            Route("/f/{token}/{choice}", service.feedback, methods=["GET", "POST"]),
            Route("/u/{token}", service.unsubscribe, methods=["GET", "POST"]),
            Route("/feeds/{token}.{kind:str}", _kinds(service.feed), methods=["GET"]),
            Route("/healthz", service.health, methods=["GET"]),
        ],
        exception_handlers={
            HTTPException: service.http_error,
            sqlite3.OperationalError: service.database_busy,
            Exception: service.server_error,
        },
    )
    # Starlette answers "/c/<token>/" with a redirect to an absolute URL built from the
    # request's Host header: a redirect target taken from the request. No such thing here.
    app.router.redirect_slashes = False
    return app


def _kinds(handler: Callable) -> Callable:
    """Only .atom and .rss are feeds; anything else is a 404."""

    def wrapped(request: Request):
        if request.path_params["kind"] not in ("atom", "rss"):
            raise HTTPException(404)
        return handler(request)

    return wrapped


def serve(
    settings: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Run the service with uvicorn until interrupted; `ready` hears the URL once bound."""
    import uvicorn

    app = create_app(settings)
    host, port = host or settings.serve.host, port or settings.serve.port
    # Bound here, not by uvicorn: uvicorn logs a failed bind and calls sys.exit, which
    # would bypass the CLI's one-line error.
    sock = listen(host, port)
    if ready:
        ready(f"http://{host}:{sock.getsockname()[1]}")
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, proxy_headers=True, server_header=False
    )

    class Server(uvicorn.Server):
        """uvicorn's server, remembering whether a Ctrl-C stopped it."""

        interrupted = False

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            self.interrupted = self.interrupted or sig == signal.SIGINT
            super().handle_exit(sig, frame)

    server = Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    if server.interrupted:
        # uvicorn raises the Ctrl-C again after its clean shutdown, but asyncio's runner
        # can swallow it when the server's task has already ended: the CLI's exit status
        # for Ctrl-C (130) must not depend on that race.
        raise KeyboardInterrupt


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port, or a DigestError saying why not."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(2048)
        except OSError:
            sock.close()
            raise
        return sock
    except OSError as exc:
        raise DigestError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _here(request: Request) -> str:
    """This page's address relative to itself (the token), for its form's action.

    A root-relative path would drop the prefix of a service published under a
    sub-path (`https://host/digest/`) by a proxy that strips it.
    """
    return request.url.path.rsplit("/", 1)[-1]
