"""Accounts for the studio on a shared server: the account file, sign-in sessions, and the gate
that every request passes through.

The gate is an ASGI middleware wrapped around the whole web app (Gradio's routes and any
added later), so there is one check and no route can forget it: without a valid session a
request gets the sign-in page (a browser's page request) or 401 (anything else: the API, the
queue, uploads, files, websockets); /login and /logout are the only routes it answers itself.
It also keeps each user's files and results their own: a file route that names a path inside
another user's folder is refused (403), so is a Gradio session (its result stream) named by
another user than the one who opened it, and uploads through Gradio's own upload route count against
the user's quota.

The account file has one `name:hash` line per user; the hash is the standard library's scrypt
with a random salt. A wrong password and an unknown user get the same answer after the same
time (the unknown user's password is checked against a dummy hash, and every answer waits to
the same floor). Five failed sign-ins from one address within a minute make that address wait
before it may try again.
"""
import asyncio
import base64
import getpass
import hashlib
import hmac
import html
import ipaddress
import json
import os
import re
import secrets
import sys
import tempfile
import time
from collections import OrderedDict, deque
from pathlib import Path
from typing import Callable, Dict, Optional
from urllib.parse import parse_qs

from ..errors import SinGANError

USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")   # also a folder name
SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1}      # about 16 MB and 50 ms a check
COOKIE = "singan_session"
SESSION_SECONDS = 12 * 3600                  # a sign-in lasts this long
MAX_FAILURES, FAILURE_WINDOW = 5, 60.0       # this many failures within this many seconds...
LOCKOUT_SECONDS = 60.0                       # ...make the address wait this long
ANSWER_FLOOR = 0.25                          # s: every sign-in answer takes at least this
MAX_FORM_BYTES = 4096
MAX_SESSIONS = 10000


# ---- passwords and the account file ----------------------------------------------------------

def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def hash_password(password: str, salt: Optional[bytes] = None) -> str:
    """'scrypt$n$r$p$salt$hash' (base64) of a password, with a fresh random salt."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **SCRYPT)
    return "$".join(["scrypt", str(SCRYPT["n"]), str(SCRYPT["r"]), str(SCRYPT["p"]),
                     _b64(salt), _b64(digest)])


def check_password(password: str, stored: str) -> bool:
    """Whether `password` matches a hash_password() string (constant-time comparison)."""
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        expected = base64.b64decode(digest, validate=True)
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt, validate=True),
                             n=int(n), r=int(r), p=int(p), dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return kind == "scrypt" and hmac.compare_digest(got, expected)


DUMMY_HASH = hash_password(secrets.token_hex(8))   # an unknown user's password is checked too


def read_accounts(path) -> Dict[str, str]:
    """{user: hash} from an account file; a missing, unreadable or damaged file is a
    SinGANError that says how to make one."""
    path = Path(path)
    how = f"add a user with: python studio.py --auth_file {path} --add_user NAME"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SinGANError(f"the account file {path} does not exist; {how}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise SinGANError(f"cannot read the account file {path} ({err}); {how}") from None
    accounts = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, stored = line.strip().partition(":")
        if not USER_NAME.match(name) or not stored.startswith("scrypt$") or \
                len(stored.split("$")) != 6:
            raise SinGANError(f"{path}, line {number}: not a 'user:hash' line made by "
                              f"--add_user; remove it and {how}")
        accounts[name] = stored
    if not accounts:
        raise SinGANError(f"the account file {path} has no users; {how}")
    return accounts


def add_user(path, name: str, password: str) -> None:
    """Append `name` with a salted hash of `password` to the account file (made, readable by
    its owner only, when missing); the file is replaced whole, so a failure leaves it as it
    was."""
    path = Path(path)
    if not isinstance(name, str) or not USER_NAME.match(name):
        raise SinGANError(f"a user name is 1-32 letters, digits, '.', '_' or '-' (starting "
                          f"with a letter or digit), got {str(name)[:40]!r}")
    if len(password) < 8:
        raise SinGANError("the password must have at least 8 characters")
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    if old.strip():
        if name in read_accounts(path):
            raise SinGANError(f"{name} is already in {path}; remove its line to set a new "
                              "password")
    text = old + ("" if not old or old.endswith("\n") else "\n") + \
        f"{name}:{hash_password(password)}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        os.chmod(temp, 0o600)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def ask_password(stdin=None) -> str:
    """A new password, asked twice without echo on a terminal, or read as two lines from a
    standard input that is not one (for scripts)."""
    stdin = stdin or sys.stdin
    if stdin.isatty():
        first = getpass.getpass("password: ")
        second = getpass.getpass("password again: ")
    else:
        first, second = stdin.readline().rstrip("\r\n"), stdin.readline().rstrip("\r\n")
    if first != second:
        raise SinGANError("the two passwords differ; nothing was added")
    return first


def is_loopback(host: str) -> bool:
    """Whether `host` is this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_host(host: str, auth_file) -> None:
    """Serving beyond loopback needs accounts: a SinGANError saying how to add one."""
    if not is_loopback(host) and not auth_file:
        raise SinGANError(f"--host {host} serves the studio beyond this machine, which needs "
                          "accounts: add a user with 'python studio.py --auth_file "
                          "studio_users.txt --add_user NAME', then start it with --auth_file "
                          "studio_users.txt")


# ---- failed sign-ins, per address ------------------------------------------------------------

class Throttle:
    """Failed sign-ins per client address: MAX_FAILURES within FAILURE_WINDOW seconds lock the
    address for LOCKOUT_SECONDS."""

    def __init__(self, clock=time.monotonic, max_addresses: int = 100000):
        self.clock, self.max_addresses = clock, max_addresses
        self.failures: Dict[str, deque] = {}
        self.locked_until: Dict[str, float] = {}

    def wait_left(self, address: str) -> float:
        """Seconds this address must still wait (0: it may try)."""
        left = self.locked_until.get(address, 0.0) - self.clock()
        if left <= 0:
            self.locked_until.pop(address, None)
        return max(0.0, left)

    def failed(self, address: str) -> None:
        now = self.clock()
        times = self.failures.setdefault(address, deque())
        times.append(now)
        while times and times[0] < now - FAILURE_WINDOW:
            times.popleft()
        if len(times) >= MAX_FAILURES:
            self.locked_until[address] = now + LOCKOUT_SECONDS
            times.clear()
        if len(self.failures) > self.max_addresses:      # memory stays bounded
            stale = [a for a, t in self.failures.items() if not t or t[-1] < now - FAILURE_WINDOW]
            for a in stale or list(self.failures)[: len(self.failures) // 2]:
                self.failures.pop(a, None)


# ---- the sign-in page ------------------------------------------------------------------------

def login_page(message: str = "") -> bytes:
    note = f'<p class="note" id="login-message">{html.escape(message)}</p>' if message else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>singan studio: sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: system-ui, sans-serif; background: #f4f4f5; display: flex;
       justify-content: center; margin-top: 12vh; }}
form {{ background: white; padding: 2em 2.5em; border-radius: 8px;
       box-shadow: 0 1px 4px #0002; min-width: 18em; }}
label {{ display: block; margin-top: 1em; font-size: .9em; }}
input {{ width: 100%; box-sizing: border-box; padding: .5em; margin-top: .3em; }}
button {{ margin-top: 1.5em; width: 100%; padding: .6em; background: #ea580c; color: white;
         border: 0; border-radius: 4px; font-size: 1em; cursor: pointer; }}
.note {{ color: #b91c1c; }}
</style></head>
<body><form method="post" action="login">
<h2>singan studio</h2>{note}
<label>User <input name="username" id="username" autocomplete="username" required></label>
<label>Password <input name="password" id="password" type="password"
       autocomplete="current-password" required></label>
<button type="submit" id="login-button">Sign in</button>
</form></body></html>""".encode()


# ---- the gate --------------------------------------------------------------------------------

class SignInGate:
    """ASGI middleware: every request needs a signed-in session, except /login and /logout.

    accounts: {user: hash} (read_accounts). foreign(path, user): whether a resolved path lies
    in another user's folders (studio_space.Workspace.foreign); a file route naming one is
    refused. upload_refusal(user, nbytes): None, or the line that refuses an upload of nbytes
    to Gradio's upload route (the user's quota).
    The user of a request is scope["singan_user"] (see user_of)."""

    def __init__(self, app, accounts: Dict[str, str],
                 foreign: Optional[Callable[[Path, str], bool]] = None,
                 upload_refusal: Optional[Callable[[str, int], Optional[str]]] = None,
                 secure_cookie: bool = False, open_paths: Optional[set] = None):
        self.app = app
        self.accounts = dict(accounts)
        self.foreign = foreign
        self.upload_refusal = upload_refusal
        self.secure_cookie = secure_cookie
        self.open_paths = set() if open_paths is None else open_paths   # emptied once started
        self.sessions: Dict[str, tuple] = {}  # token -> (user, expiry)
        self.throttle = Throttle()
        self.session_owners: "OrderedDict[str, str]" = OrderedDict()   # Gradio session -> user

    # -- sessions --

    def session_user(self, scope) -> Optional[str]:
        token = _cookies(scope).get(COOKIE)
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

    def cookie(self, token: str, max_age: int) -> bytes:
        parts = [f"{COOKIE}={token}", "Path=/", "HttpOnly", "SameSite=Strict",
                 f"Max-Age={max_age}"] + (["Secure"] if self.secure_cookie else [])
        return "; ".join(parts).encode()

    # -- ASGI --

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if scope["type"] == "http" and path.rstrip("/") == "/login":
            return await self.login(scope, receive, send)
        if scope["type"] == "http" and path.rstrip("/") == "/logout":
            return await self.logout(scope, send)
        if path in self.open_paths:
            return await self.app(scope, receive, send)
        user = self.session_user(scope)
        if user is None:
            return await self.refuse(scope, send)
        refusal = self.file_refusal(path, user) or self.upload_check(scope, path, user) or \
            self.session_refusal(scope, path, user)
        if refusal:
            status, line = refusal
            return await _answer(send, status, _json(line))
        scope["singan_user"] = user
        return await self.app(scope, receive, send)

    def file_refusal(self, path: str, user: str):
        """A file route naming a path inside another user's folder: (403, the line)."""
        for marker in ("/file=", "/file/"):
            if marker in path and self.foreign is not None:
                named = path.split(marker, 1)[1]
                if "://" in named:
                    return None
                try:
                    target = Path(os.path.abspath(named)).resolve()   # as Gradio resolves it
                except (OSError, RuntimeError):
                    return 403, "file not allowed"
                if self.foreign(target, user):
                    return 403, "that file belongs to another user"
        return None

    def session_refusal(self, scope, path: str, user: str):
        """Gradio streams a client's results to whoever names its session hash (queue/data,
        heartbeat): a hash belongs to the first user who names it, (403, the line) for any
        other."""
        named = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("session_hash")
        if not named and "/heartbeat/" in path:
            named = [path.rsplit("/heartbeat/", 1)[1].strip("/")]
        if not named:
            return None
        owner = self.session_owners.setdefault(named[0], user)
        self.session_owners.move_to_end(named[0])
        while len(self.session_owners) > MAX_SESSIONS * 10:
            self.session_owners.popitem(last=False)
        return None if owner == user else (403, "that session belongs to another user")

    def upload_check(self, scope, path: str, user: str):
        if self.upload_refusal is None or scope["type"] != "http" or \
                scope.get("method") != "POST" or not path.rstrip("/").endswith("/upload"):
            return None
        length = _headers(scope).get("content-length")
        if length is None or not length.isdigit():
            return 411, "an upload must say its length (Content-Length)"
        line = self.upload_refusal(user, int(length))
        return (413, line) if line else None

    async def refuse(self, scope, send):
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        if scope.get("method") in ("GET", "HEAD") and "text/html" in _headers(scope).get(
                "accept", ""):
            return await _answer(send, 303, b"", [(b"location", _login_url(scope))])
        return await _answer(send, 401, _json("sign in first: POST your username and password "
                                              "to /login"))

    async def login(self, scope, receive, send):
        if scope.get("method") != "POST":
            return await _answer(send, 200, login_page(), content_type=b"text/html")
        started = time.monotonic()
        address = (scope.get("client") or ("?",))[0]
        browser = "text/html" in _headers(scope).get("accept", "")
        wait = self.throttle.wait_left(address)
        if wait > 0:
            return await _refusal(send, 429, f"too many failed sign-ins from {address}: wait "
                                  f"{wait:.0f} s before trying again", browser,
                                  [(b"retry-after", str(int(wait + 1)).encode())])
        body = await _read_body(receive, MAX_FORM_BYTES)
        if body is None:
            return await _answer(send, 413, _json("the sign-in form is too large"))
        form = parse_qs(body.decode("utf-8", "replace"))
        name = (form.get("username") or [""])[0].strip()
        password = (form.get("password") or [""])[0]
        stored = self.accounts.get(name, DUMMY_HASH)
        good = await asyncio.to_thread(check_password, password, stored)
        good = good and name in self.accounts
        if not good:
            self.throttle.failed(address)
        await asyncio.sleep(max(0.0, ANSWER_FLOOR - (time.monotonic() - started)))
        if not good:
            return await _refusal(send, 401, "wrong user name or password", browser)
        cookie = [(b"set-cookie", self.cookie(self.new_session(name), SESSION_SECONDS))]
        if browser:
            return await _answer(send, 303, b"", [(b"location", _root_url(scope))] + cookie)
        return await _answer(send, 200, b'{"success": true}', cookie)

    async def logout(self, scope, send):
        token = _cookies(scope).get(COOKIE)
        self.sessions.pop(token, None)
        return await _answer(send, 303, b"", [(b"location", _login_url(scope)),
                                              (b"set-cookie", self.cookie("", 0))])


def user_of(request) -> Optional[str]:
    """The signed-in user of a request that passed a SignInGate (None without one): Gradio's
    auth_dependency, so that a handler's gr.Request.username is that user."""
    return request.scope.get("singan_user")


# ---- small ASGI helpers ----------------------------------------------------------------------

def _headers(scope) -> Dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1")
            for k, v in scope.get("headers", [])}


def _cookies(scope) -> Dict[str, str]:
    found = {}
    for part in _headers(scope).get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name:
            found[name] = value
    return found


def _root_url(scope) -> bytes:
    return ((scope.get("root_path") or "") + "/").encode()


def _login_url(scope) -> bytes:
    return ((scope.get("root_path") or "") + "/login").encode()


def _json(line: str) -> bytes:
    return json.dumps({"detail": line}).encode()


async def _read_body(receive, limit: int) -> Optional[bytes]:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if len(body) > limit:
            return None
        if not message.get("more_body"):
            return body


async def _refusal(send, status: int, line: str, browser: bool, headers=()):
    """A sign-in refused: the sign-in page with the line for a browser, else JSON."""
    if browser:
        return await _answer(send, status, login_page(line), headers, b"text/html")
    return await _answer(send, status, _json(line), headers)


async def _answer(send, status: int, body: bytes, headers=(), content_type=None):
    content_type = content_type or (b"application/json" if body[:1] == b"{" else b"text/plain")
    head = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store")] + list(headers)
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})
