"""Accounts for the studio on a shared server: the account file, the sign-in form, the throttle
of sign-in attempts and the check of where the studio may be served (gate.py's SignInGate,
the gate every request passes through, uses them).

The account file has one `name:hash` line per user; the hash is the standard library's scrypt
with a random salt. A wrong password and an unknown user get the same answer after the same
time (the unknown user's password is checked against a dummy hash, and every answer waits to
the same floor). Every attempt is counted before its password is checked, per client address
and per account name: the first FREE_TRIES failures cost nothing, each one after doubles the
wait before the next (Throttle).
"""
import base64
import getpass
import hashlib
import hmac
import html
import ipaddress
import os
import re
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ..errors import SinGANError

USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")   # also a folder name
SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1}      # about 16 MB and 50 ms a check
COOKIE = "singan_session"
SESSION_SECONDS = 12 * 3600                  # a sign-in lasts this long
FREE_TRIES = 5               # failed sign-ins (per address, per account) that cost nothing...
FIRST_WAIT, MAX_WAIT = 1.0, 300.0   # ...then a wait before the next, doubling up to this
FAILURE_WINDOW = 900.0       # s: failures this old are forgotten
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


def check_host(host: str, auth_file, ssl_certfile=None, behind_tls_proxy: bool = False,
               trusted_proxies: Sequence[str] = ()) -> None:
    """Serving beyond loopback needs accounts and HTTPS (the studio's own certificate, or a TLS
    proxy in front of it that the studio trusts): a SinGANError saying how, in one line."""
    if behind_tls_proxy and not trusted_proxies:
        raise SinGANError("--behind_tls_proxy needs --trusted_proxies ADDRESS (the proxy's "
                          "address, e.g. 127.0.0.1): the studio takes the client's address and "
                          "scheme from the proxy's headers, and from nobody else's")
    if is_loopback(host):
        return
    if not auth_file:
        raise SinGANError(f"--host {host} serves the studio beyond this machine, which needs "
                          "accounts: add a user with 'python studio.py --auth_file "
                          "studio_users.txt --add_user NAME', then start it with --auth_file "
                          "studio_users.txt")
    if not ssl_certfile and not behind_tls_proxy:
        raise SinGANError(f"--host {host} without --ssl_certfile would send every password and "
                          "session cookie across the network in clear text: give "
                          "--ssl_certfile and --ssl_keyfile, or, behind a TLS proxy (nginx, "
                          "caddy), --behind_tls_proxy --trusted_proxies PROXY_ADDRESS")


def parse_proxies(text: Optional[str]) -> List[str]:
    """--trusted_proxies 'A,B' -> ['A', 'B'], each an IP address or network; a SinGANError
    naming one that is neither."""
    found = []
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise SinGANError(f"--trusted_proxies: {item[:60]!r} is not an IP address or network "
                              "(e.g. 127.0.0.1 or 10.0.0.0/8)") from None
        found.append(item)
    return found


# ---- failed sign-ins, per address ------------------------------------------------------------

class Throttle:
    """Sign-in attempts per client address and per account name. An attempt is counted as a
    failure when it begins (begin(), before its password is checked, with nothing awaited in
    between), so that attempts sent at once cannot all pass before the count does; a success
    takes its own count back. After FREE_TRIES failures of an address or an account, the next
    attempt waits FIRST_WAIT seconds, and each further failure doubles the wait, up to MAX_WAIT:
    a growing delay rather than a lockout (a whole network behind one address, or the owner of
    an account someone guesses at, still gets in, a little later). Failures older than
    FAILURE_WINDOW are forgotten."""

    def __init__(self, clock=time.monotonic, max_keys: int = 100000):
        self.clock, self.max_keys = clock, max_keys
        self.records: Dict[tuple, list] = {}        # key -> [failures, last failure, ready at]

    @staticmethod
    def wait_after(failures: int) -> float:
        """Seconds before the next attempt, after `failures` failures."""
        if failures < FREE_TRIES:
            return 0.0
        return min(MAX_WAIT, FIRST_WAIT * 2.0 ** (failures - FREE_TRIES))

    def _record(self, key: tuple, now: float) -> Optional[list]:
        record = self.records.get(key)
        if record is not None and now - record[1] > FAILURE_WINDOW:
            del self.records[key]
            return None
        return record

    def begin(self, address: str, account: str) -> float:
        """0 and the attempt counted, or the seconds still to wait (nothing counted)."""
        now = self.clock()
        keys = (("address", address), ("account", account))
        wait = max([r[2] - now for r in map(lambda k: self._record(k, now), keys) if r] + [0.0])
        if wait > 0:
            return wait
        for key in keys:
            record = self.records.setdefault(key, [0, now, now])
            record[0] += 1
            record[1], record[2] = now, now + self.wait_after(record[0])
        self._prune(now)
        return 0.0

    def succeeded(self, address: str, account: str) -> None:
        """The attempt begun was right: its count taken back from the address, the account's
        record cleared."""
        now = self.clock()
        self.records.pop(("account", account), None)
        record = self.records.get(("address", address))
        if record is not None:
            record[0] = max(0, record[0] - 1)
            record[2] = now + self.wait_after(record[0])

    def wait_left(self, address: str, account: str = "") -> float:
        """Seconds an attempt from `address` as `account` would still wait."""
        now = self.clock()
        records = [self._record(("address", address), now), self._record(("account", account), now)]
        return max([r[2] - now for r in records if r] + [0.0])

    def _prune(self, now: float) -> None:
        """Memory stays bounded: forgotten records first, else the oldest half."""
        if len(self.records) <= self.max_keys:
            return
        stale = [k for k, r in self.records.items() if now - r[1] > FAILURE_WINDOW]
        for key in stale or sorted(self.records, key=lambda k: self.records[k][1])[
                : len(self.records) // 2]:
            self.records.pop(key, None)


# ---- the sign-in page ------------------------------------------------------------------------

def login_page(message: str = "", token: str = "") -> bytes:
    """The sign-in form, with `message` above it and the CSRF token `token` in it."""
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
<input type="hidden" name="csrf_token" value="{html.escape(token)}">
<label>User <input name="username" id="username" autocomplete="username" required></label>
<label>Password <input name="password" id="password" type="password"
       autocomplete="current-password" required></label>
<button type="submit" id="login-button">Sign in</button>
</form></body></html>""".encode()
