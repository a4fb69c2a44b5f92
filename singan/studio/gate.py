"""The studio's gate on a shared server: one ASGI middleware, the outermost layer of the web app,
that every request passes through (accounts.py has the accounts, the sessions' sign-in page
and the throttle it uses).

It decides on what Gradio will do with a request, not on the request's raw text:

- **Routes.** Only the routes the studio's page and Gradio's client use are served (ROUTES); a
  route the gate does not know, a websocket (the studio has none) and an OPTIONS preflight
  (there is no cross-origin use) are refused, so a route a later Gradio adds is closed until
  someone reads it and lists it here.
- **Files.** A file route's path is taken as Gradio takes it (the path after uvicorn's
  percent-decoding, made absolute against the working folder, links followed) and refused when
  it lies in another user's folders; a path Gradio would fetch as a URL, or one with '..', a
  doubled separator or a NUL, is refused outright. File paths inside a JSON body (Gradio's
  FileData) are checked the same way.
- **Sessions.** A Gradio session hash belongs to the first user who names it, wherever it rides:
  every value of a repeated query parameter, a path, a JSON body, a multipart form; a request
  naming another user's, or two different ones, is refused. Event ids belong to the user whose
  request created them (the gate reads them from Gradio's answer before the client does):
  Gradio's /call/<api>/<event id> and /cancel only for the user's own. Upload ids likewise.
- **Origins.** Only the studio's own pages act for a user: a request with a session whose Origin
  is another's, or whose Sec-Fetch-Site is not same-origin (a page of the same *site*, say
  people.university.edu, included), is refused; Gradio's CORS layer is off (server.py), the
  sign-in form carries a CSRF token and checks its Origin, sign-out is a POST.
"""
import asyncio
import contextlib
import hmac
import json
import os
import re
import secrets
import sys
import time
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

from gradio.route_utils import GradioMultiPartParser, MultiPartException
from starlette.datastructures import Headers, QueryParams

from .accounts import (ANSWER_FLOOR, COOKIE, DUMMY_HASH, MAX_FORM_BYTES, MAX_SESSIONS,
                       SESSION_SECONDS, Throttle, check_password, login_page)

MAX_JSON_BYTES = 2 * 2 ** 20         # a request's JSON body (FileData references, not files)
MAX_FORM_PART_BYTES = 32 * 2 ** 20   # a component's multipart form (one editor layer: 25 MB)
MAX_KEY = 256                        # the longest session hash, event id or upload id kept
SIGN_IN_COOKIE = "singan_signin"     # the sign-in form's CSRF token

# ---- the routes the studio serves ---------------------------------------------------------------
#
# Kinds: PAGE  nothing of a user's in it (the page, its assets, Gradio's description of the API)
#        FILE  {path}: a file Gradio serves
#        QUERY the Gradio session in the query (the result stream)
#        SESSION {session}: a Gradio session in the path (the page's heartbeat)
#        JOIN  a JSON body with a session and files, answered with a new event id (the queue)
#        BODY  a JSON body with a session and an event id (cancel)
#        EVENT {event}: an event id the user was given (Gradio's /call/ results)
#        UPLOAD Gradio's upload route (the user's quota; an upload id)
#        FORM  a component's own function: a JSON body or a multipart form with a session

PAGE, FILE, QUERY, SESSION, JOIN, BODY, EVENT, UPLOAD, FORM = (
    "page", "file", "query", "session", "join", "body", "event", "upload", "form")


def _route(methods: str, pattern: str, kind: str):
    parts = re.split(r"(\{\w+(?::path)?\})", pattern)
    regex = "".join(f"(?P<{p[1:-1].split(':')[0]}>{'.*' if p.endswith(':path}') else '[^/]+'})"
                    if p.startswith("{") else re.escape(p) for p in parts)
    return frozenset(methods.split()), re.compile(f"^{regex}/?$" if pattern != "/" else "^/$"), \
        kind


ROUTES = [_route(*r) for r in (
    ("GET HEAD", "/", PAGE), ("GET", "/config", PAGE), ("GET", "/theme.css", PAGE),
    ("GET", "/favicon.ico", PAGE), ("GET", "/manifest.json", PAGE), ("GET", "/robots.txt", PAGE),
    ("GET", "/pwa_icon", PAGE), ("GET", "/pwa_icon/{size}", PAGE),
    ("GET", "/assets/{path:path}", PAGE), ("GET", "/static/{path:path}", PAGE),
    ("GET", "/svelte/{path:path}", PAGE), ("GET", "/gradio_api/theme.css", PAGE),
    ("GET", "/gradio_api/info", PAGE), ("GET", "/gradio_api/app_id", PAGE),
    ("GET", "/gradio_api/user", PAGE), ("GET", "/gradio_api/login_check", PAGE),
    ("GET", "/gradio_api/queue/status", PAGE), ("POST", "/gradio_api/reset", PAGE),
    ("GET HEAD", "/gradio_api/file={path:path}", FILE),
    ("GET", "/gradio_api/file/{path:path}", FILE),
    ("GET", "/gradio_api/queue/data", QUERY), ("GET", "/gradio_api/heartbeat/{session}", SESSION),
    ("POST", "/gradio_api/queue/join", JOIN), ("POST", "/gradio_api/call/{api}", JOIN),
    ("POST", "/gradio_api/call/v2/{api}", JOIN), ("POST", "/gradio_api/cancel", BODY),
    ("GET", "/gradio_api/call/{api}/{event}", EVENT),
    ("GET", "/gradio_api/call/v2/{api}/{event}", EVENT),
    ("POST", "/gradio_api/upload", UPLOAD), ("GET", "/gradio_api/upload_progress", UPLOAD),
    ("POST", "/gradio_api/component_server", FORM))]


def match_route(method: str, path: str) -> Optional[Tuple[str, Dict[str, str]]]:
    """(kind, path parameters) of the studio's route for a request, or None. The path is
    scope["path"], the one Starlette routes on."""
    for methods, regex, kind in ROUTES:
        found = regex.match(path)
        if found and method in methods:
            return kind, found.groupdict()
    return None


# ---- who holds what ----------------------------------------------------------------------------

class Owners:
    """Which user each key (a Gradio session hash, an event id, an upload id) belongs to: the
    first user who names it or is given it. Each user holds at most `per_user` keys (their
    oldest forgotten first), so that nobody can flood out another's."""

    def __init__(self, per_user: int = 4096):
        self.per_user = per_user
        self.owner: Dict[str, str] = {}
        self.held: Dict[str, "OrderedDict[str, None]"] = {}

    def claim(self, user: str, key: str) -> bool:
        """Whether `key` is the user's (now): unowned keys become theirs."""
        owner = self.owner.get(key)
        if owner is not None and owner != user:
            return False
        mine = self.held.setdefault(user, OrderedDict())
        mine[key] = None
        mine.move_to_end(key)
        self.owner[key] = user
        while len(mine) > self.per_user:
            old, _ = mine.popitem(last=False)
            self.owner.pop(old, None)
        return True

    def owns(self, user: str, key: str) -> bool:
        return self.owner.get(key) == user


# ---- what a request names ----------------------------------------------------------------------

class Refused(Exception):
    """A request the gate refuses: its status and one line."""

    def __init__(self, status: int, line: str):
        super().__init__(line)
        self.status, self.line = status, line


def gradio_path(named: str) -> Path:
    """The file a file route names, as Gradio takes it (utils.abspath, then links followed), or
    Refused for anything but a plain path."""
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", named) or "://" in named:
        raise Refused(403, "file routes serve this server's files, not URLs")
    parts = named.split("/")
    if "\0" in named or "\\" in named or ".." in parts or "" in parts[1:]:
        raise Refused(403, "a file is named by a plain path (no '..', no doubled '/')")
    try:
        return Path(os.path.abspath(named)).resolve()
    except (OSError, RuntimeError, ValueError):
        raise Refused(403, "file not allowed") from None


def json_body(body: bytes) -> Tuple[object, Dict[str, List[object]]]:
    """A JSON body as Gradio reads it (Starlette's request.json() is json.loads), and every
    value of each key of its top-level object, a key given twice included."""
    last = [None]

    def pairs(items):
        last[0] = items            # the top-level object's pairs come last
        return dict(items)         # what json.loads makes of them: the last value wins

    try:
        value = json.loads(body, object_pairs_hook=pairs) if body.strip() else None
    except (ValueError, RecursionError):
        raise Refused(400, "the request's body is not JSON") from None
    keys: Dict[str, List[object]] = {}
    if isinstance(value, dict):
        for key, item in last[0]:
            keys.setdefault(key, []).append(item)
    return value, keys


def file_paths(value, depth: int = 0) -> Iterable[str]:
    """The "path" of every FileData-like object in a JSON value (what Gradio would open)."""
    if depth > 32:
        return
    if isinstance(value, dict):
        if isinstance(value.get("path"), str):
            yield value["path"]
        for item in value.values():
            yield from file_paths(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            yield from file_paths(item, depth + 1)


def _strings(values, what: str) -> List[str]:
    found = []
    for value in values:
        if value is None:
            continue
        if not isinstance(value, str) or len(value) > MAX_KEY:
            raise Refused(400, f"{what} must be a string of at most {MAX_KEY} characters")
        found.append(value)
    return found


def _same_origin(origin: str, scheme: str, host: Optional[str]) -> bool:
    """Whether an Origin header names this server as the browser reached it (scheme, host
    and port, default ports filled in)."""
    if not host:
        return False
    defaults = {"http": 80, "https": 443}
    try:
        theirs, ours = urlsplit(origin), urlsplit(f"{scheme}://{host}")
        return (theirs.scheme, theirs.hostname, theirs.port or defaults.get(theirs.scheme)) == \
            (ours.scheme, ours.hostname, ours.port or defaults.get(ours.scheme)) and \
            theirs.path in ("", "/") and not theirs.query
    except ValueError:
        return False


def foreign_origin(scope, scheme: str) -> Optional[str]:
    """Why a request comes from another page than the studio's own (None: it does not): an
    Origin of another scheme, host or port, or a Sec-Fetch-Site other than same-origin (a page
    of the same site included). A top-level GET navigation may come from anywhere (a link),
    and a request without either header is not a browser's."""
    headers = Headers(scope=scope)
    origin = headers.get("origin")
    if origin is not None and not _same_origin(origin, scheme, headers.get("host")):
        return f"a request from another page ({origin[:80]}) may not act for a signed-in user"
    site = headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none") and not (
            scope.get("method") in ("GET", "HEAD") and
            headers.get("sec-fetch-mode") == "navigate"):
        return f"a {site} request may not act for a signed-in user"
    return None


# ---- the gate ------------------------------------------------------------------------------------

class SignInGate:
    """ASGI middleware: every request needs a signed-in session, except the gate's own /login
    and /logout, and passes only as the module's docstring says.

    accounts: {user: hash} (accounts.read_accounts). foreign(path, user): whether a
    resolved path lies in another user's folders (space.Workspace.foreign).
    upload_refusal(user, nbytes): None, or the line that refuses an upload of nbytes to
    Gradio's upload route (the user's quota). secure: the browser reaches the studio by HTTPS
    (its own certificate, or a TLS proxy: behind_tls_proxy), so that the cookies are Secure and
    named __Host-...
    The user of a request is scope["singan_user"] (see user_of)."""

    def __init__(self, app, accounts: Dict[str, str],
                 foreign: Optional[Callable[[Path, str], bool]] = None,
                 upload_refusal: Optional[Callable[[str, int], Optional[str]]] = None,
                 secure: bool = False, behind_tls_proxy: bool = False):
        self.app = app
        self.accounts = dict(accounts)
        self.foreign = foreign or (lambda path, user: False)
        self.upload_refusal = upload_refusal
        self.secure = secure or behind_tls_proxy
        self.scheme = "https" if behind_tls_proxy else None   # else the request's own
        prefix = "__Host-" if self.secure else ""
        self.cookie_name, self.sign_in_cookie = prefix + COOKIE, prefix + SIGN_IN_COOKIE
        self.sessions: Dict[str, tuple] = {}  # token -> (user, expiry)
        self.throttle = Throttle()
        self.session_owners, self.event_owners, self.upload_owners = \
            Owners(), Owners(16384), Owners()
        self.joined = Owners()           # sessions a user joined the queue with

    # -- sessions --

    def session_user(self, scope) -> Optional[str]:
        token = _cookies(scope).get(self.cookie_name)
        found = self.sessions.get(token) if token else None
        if found is None:
            return None
        user, expiry = found
        if expiry < time.time() or user not in self.accounts:
            self.sessions.pop(token, None)
            return None
        return user

    def new_session(self, user: str) -> str:
        now = time.time()
        if len(self.sessions) >= MAX_SESSIONS:
            for token in [t for t, (_, e) in self.sessions.items() if e < now] or \
                    list(self.sessions)[: MAX_SESSIONS // 10]:
                self.sessions.pop(token, None)
        token = secrets.token_urlsafe(32)
        self.sessions[token] = (user, now + SESSION_SECONDS)
        return token

    def cookie(self, name: str, value: str, max_age: int) -> Tuple[bytes, bytes]:
        parts = [f"{name}={value}", "Path=/", "HttpOnly", "SameSite=Strict",
                 f"Max-Age={max_age}"] + (["Secure"] if self.secure else [])
        return b"set-cookie", "; ".join(parts).encode()

    def own_scheme(self, scope) -> str:
        return self.scheme or {"ws": "http", "wss": "https"}.get(scope["scheme"], scope["scheme"])

    # -- ASGI --

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await self.app(scope, receive, send)
        if scope["type"] != "http":        # websockets: the studio has none
            return await send({"type": "websocket.close", "code": 1008})
        path = scope["path"]
        if path.rstrip("/") == "/login":
            return await self.login(scope, receive, send)
        if path.rstrip("/") == "/logout":
            return await self.logout(scope, receive, send)
        user = self.session_user(scope)
        if user is None:
            return await self.refuse(scope, send)
        try:
            why = foreign_origin(scope, self.own_scheme(scope))
            if why:
                raise Refused(403, why)
            receive, send = await self.check(scope, receive, send, user)
        except Refused as refused:
            print(f"studio: refused {scope['method']} {scope['path'][:100]} of {user}: "
                  f"{refused.line}", file=sys.stderr, flush=True)
            return await _answer(send, refused.status, _json(refused.line))
        scope["singan_user"] = user
        return await self.passed(scope, receive, send, user)

    async def passed(self, scope, receive, send, user: str):
        """The app's answer to a request that passed. Gradio raises inside some answers it has
        already begun (a result stream whose session went away): one line in the log for
        that, not uvicorn's traceback; the client's answer ends there."""
        started = [False]

        async def sending(message):
            started[0] = started[0] or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as err:          # noqa: BLE001 (anything the app raised, once begun)
            if not started[0]:
                raise
            print(f"studio: {scope['method']} {scope['path'][:100]} of {user} ended early: "
                  f"{type(err).__name__}: {str(err)[:200]}", file=sys.stderr, flush=True)

    async def check(self, scope, receive, send, user: str):
        """Refused, or the (receive, send) the app gets: what the gate read of the body
        replayed, and answers read for the event ids they give the user."""
        if Headers(scope=scope).get("upgrade", "").lower() == "websocket":
            raise Refused(403, "the studio has no websockets")
        route = match_route(scope["method"], scope["path"])
        if route is None:
            raise Refused(404, f"{scope['method']} {scope['path'][:80]} is not a route of the "
                               "studio")
        kind, params = route
        query = QueryParams(scope.get("query_string", b""))
        if "deep_link" in query:
            raise Refused(403, "the studio has no deep links")
        sessions = _strings(query.getlist("session_hash"), "session_hash")
        if kind == FILE:
            self.check_file(params["path"], user)
        elif kind == SESSION:
            sessions.append(params["session"])
        elif kind == EVENT:
            self.check_event(params["event"], user)
        elif kind == UPLOAD:
            self.check_upload(scope, query, user)
        elif kind in (JOIN, BODY, FORM):
            body = await _read_body(receive, MAX_FORM_PART_BYTES if kind == FORM else
                                    MAX_JSON_BYTES)
            if body is None:
                raise Refused(413, "the request's body is too large")
            sessions += await self.check_body(scope, kind, body, user)
            receive = _replay(body, receive)
            if kind == JOIN:   # its answer is read as it is, never compressed
                scope["headers"] = [(k, v) for k, v in scope["headers"]
                                    if k.lower() != b"accept-encoding"]
                send = self.giving_events(send, user, sessions)
        self.check_sessions(sessions, user)
        if kind == QUERY and not all(self.joined.owns(user, s) for s in sessions):
            # Gradio fails inside its answer, once begun, on a session that never joined
            raise Refused(404, "nothing waits in that session: join the queue first")
        return receive, send

    def check_file(self, named: str, user: str) -> None:
        if self.foreign(gradio_path(named), user):
            raise Refused(403, "that file belongs to another user")

    def check_event(self, event: str, user: str) -> None:
        if not self.event_owners.owns(user, event):
            raise Refused(403, "that event is not one of yours")

    def check_sessions(self, named: List[str], user: str) -> None:
        """Every Gradio session the request names is the user's; one at most."""
        if len(set(named)) > 1:
            raise Refused(403, "a request names one Gradio session, not several")
        for session in set(named):
            if len(session) > MAX_KEY or not self.session_owners.claim(user, session):
                raise Refused(403, "that session belongs to another user")

    def check_upload(self, scope, query: QueryParams, user: str) -> None:
        for upload_id in _strings(query.getlist("upload_id"), "upload_id"):
            if not self.upload_owners.claim(user, upload_id):
                raise Refused(403, "that upload belongs to another user")
        if scope["method"] != "POST" or self.upload_refusal is None:
            return
        length = Headers(scope=scope).get("content-length")
        if length is None or not length.isdigit():
            raise Refused(411, "an upload must say its length (Content-Length)")
        line = self.upload_refusal(user, int(length))
        if line:
            raise Refused(413, line)

    async def check_body(self, scope, kind: str, body: bytes, user: str) -> List[str]:
        """The sessions a JSON body (or a component's multipart form) names; its event id
        and the files it names checked."""
        content_type = Headers(scope=scope).get("content-type") or ""
        if kind == FORM and content_type.startswith("multipart/form-data"):
            return await _form_sessions(scope, body)
        value, keys = json_body(body)
        for event in _strings(keys.get("event_id", ()), "event_id"):
            self.check_event(event, user)
        for named in file_paths(value):
            if not named.startswith(("http://", "https://")):
                self.check_file(named, user)
        return _strings(keys.get("session_hash", ()), "session_hash")

    def giving_events(self, send, user: str, sessions: List[str]):
        """send, the event id of a JSON answer {"event_id": ...} made the user's (and, as
        Gradio falls back to it for a session, the session too) before the client has it;
        the session joined (its results may be read)."""
        started: Dict[str, object] = {}
        chunks: List[bytes] = []

        async def sending(message):
            if message["type"] == "http.response.start":
                started.update(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = b"".join(chunks)
            if started.get("status") == 200:
                with contextlib.suppress(ValueError, AttributeError, TypeError):
                    event = json.loads(body).get("event_id")
                    if isinstance(event, str) and len(event) <= MAX_KEY:
                        self.event_owners.claim(user, event)
                        for session in sessions or [event]:
                            self.session_owners.claim(user, session)
                            self.joined.claim(user, session)
            await send(started)
            await send({"type": "http.response.body", "body": body})
        return sending

    async def refuse(self, scope, send):
        headers = Headers(scope=scope)
        if scope.get("method") in ("GET", "HEAD") and "text/html" in headers.get("accept", ""):
            return await _answer(send, 303, b"", [(b"location", _login_url(scope))])
        return await _answer(send, 401, _json("sign in first: POST your username and password "
                                              "to /login"))

    # -- signing in and out --

    async def login(self, scope, receive, send):
        method = scope["method"]
        if method in ("GET", "HEAD"):
            return await self.sign_in_page(send, 200)
        if method != "POST":
            return await _answer(send, 405, _json("sign in with POST /login"),
                                 [(b"allow", b"GET, POST")])
        browser = "text/html" in Headers(scope=scope).get("accept", "")
        body = await _read_body(receive, MAX_FORM_BYTES)
        if body is None:
            return await _answer(send, 413, _json("the sign-in form is too large"))
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        why = self.sign_in_refusal(scope, form)
        if why:
            return await self.refusal(send, 403, why, browser)
        return await self.sign_in(scope, send, form, browser)

    async def sign_in_page(self, send, status: int, line: str = "", headers=()):
        """The sign-in form (with `line` above it), with a fresh CSRF token in the form and in
        a cookie."""
        token = secrets.token_urlsafe(24)
        return await _answer(send, status, login_page(line, token),
                             [self.cookie(self.sign_in_cookie, token, 3600), *headers],
                             b"text/html")

    async def refusal(self, send, status: int, line: str, browser: bool, headers=()):
        """A sign-in refused: the sign-in page with the line for a browser, else JSON."""
        if browser:
            return await self.sign_in_page(send, status, line, headers)
        return await _answer(send, status, _json(line), headers)

    def sign_in_refusal(self, scope, form) -> Optional[str]:
        """A sign-in posted by another page (login CSRF): its Origin or Sec-Fetch-Site, or, from
        a browser, a missing or wrong CSRF token (the form's against its cookie)."""
        why = foreign_origin(scope, self.own_scheme(scope))
        if why:
            return "sign in from the studio's own page: " + why.split(" may not")[0]
        headers = Headers(scope=scope)
        from_browser = any(name in headers for name in ("origin", "sec-fetch-site")) or \
            self.sign_in_cookie in _cookies(scope)
        sent = (form.get("csrf_token") or [""])[0]
        kept = _cookies(scope).get(self.sign_in_cookie, "")
        if from_browser and not (sent and kept and hmac.compare_digest(sent, kept)):
            return "the sign-in form has expired: reload the page and sign in again"
        return None

    async def sign_in(self, scope, send, form, browser: bool):
        """Check the password, counted by the throttle before it is checked; every answer
        takes at least ANSWER_FLOOR."""
        started = time.monotonic()
        address = (scope.get("client") or ("?",))[0]
        name = (form.get("username") or [""])[0].strip()[:64]
        password = (form.get("password") or [""])[0]
        wait = self.throttle.begin(address, name)    # counted now, before any await
        if wait > 0:
            return await self.refusal(send, 429, f"too many failed sign-ins (from {address} or as "
                                  f"{name!r}): wait {wait:.0f} s before trying again", browser,
                                  [(b"retry-after", str(int(wait + 1)).encode())])
        stored = self.accounts.get(name, DUMMY_HASH)
        good = await asyncio.to_thread(check_password, password, stored)
        good = good and name in self.accounts
        if good:
            self.throttle.succeeded(address, name)
        await asyncio.sleep(max(0.0, ANSWER_FLOOR - (time.monotonic() - started)))
        if not good:
            return await self.refusal(send, 401, "wrong user name or password", browser)
        cookies = [self.cookie(self.cookie_name, self.new_session(name), SESSION_SECONDS),
                   self.cookie(self.sign_in_cookie, "", 0)]
        if browser:
            return await _answer(send, 303, b"", [(b"location", _root_url(scope))] + cookies)
        return await _answer(send, 200, b'{"success": true}', cookies)

    async def logout(self, scope, receive, send):
        """POST /logout ends the session (from the studio's own page only); any other method
        changes nothing."""
        if scope["method"] != "POST":
            return await _answer(send, 405, _json("sign out with POST /logout (the page's Sign "
                                                  "out button)"), [(b"allow", b"POST")])
        token = _cookies(scope).get(self.cookie_name)
        if token in self.sessions:
            why = foreign_origin(scope, self.own_scheme(scope))
            if why:
                return await _answer(send, 403, _json(why))
            self.sessions.pop(token, None)
        return await _answer(send, 303, b"", [(b"location", _login_url(scope)),
                                              self.cookie(self.cookie_name, "", 0)])


def user_of(request) -> Optional[str]:
    """The signed-in user of a request that passed a SignInGate (None without one): Gradio's
    auth_dependency, so that a handler's gr.Request.username is that user."""
    return request.scope.get("singan_user")


# ---- small ASGI helpers ----------------------------------------------------------------------

async def _form_sessions(scope, body: bytes) -> List[str]:
    """Every session_hash field of a multipart form, parsed by the parser Gradio's component
    route uses."""
    async def stream():
        yield body

    parser = GradioMultiPartParser(Headers(scope=scope), stream(), max_files=1000,
                                   max_fields=1000, max_file_size=MAX_FORM_PART_BYTES)
    try:
        form = await parser.parse()
    except (MultiPartException, ValueError, KeyError) as err:
        raise Refused(400, f"the request's form cannot be read ({err})") from None
    try:
        return _strings(form.getlist("session_hash"), "session_hash")
    finally:
        for _, value in form.multi_items():
            if hasattr(value, "file"):
                value.file.close()
                with contextlib.suppress(OSError, AttributeError, TypeError):
                    os.unlink(value.file.name)


def _replay(body: bytes, receive):
    """A receive that gives the body the gate read, then the client's further messages (its
    disconnect)."""
    given = [False]

    async def replay():
        if not given[0]:
            given[0] = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()
    return replay


def _cookies(scope) -> Dict[str, str]:
    found = {}
    for part in Headers(scope=scope).get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name:
            found.setdefault(name, value)
    return found


def _root_url(scope) -> bytes:
    return ((scope.get("root_path") or "") + "/").encode()


def _login_url(scope) -> bytes:
    return ((scope.get("root_path") or "") + "/login").encode()


def _json(line: str) -> bytes:
    return json.dumps({"detail": line}).encode()


async def _read_body(receive, limit: int) -> Optional[bytes]:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _answer(send, status: int, body: bytes, headers=(), content_type=None):
    content_type = content_type or (b"application/json" if body[:1] == b"{" else b"text/plain")
    head = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store")] + list(headers)
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})
