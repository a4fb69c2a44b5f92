"""The studio's web server: the studio's page (a Gradio Blocks) mounted in an app of our own,
served by uvicorn on a socket bound here.

Why not Gradio's launch(): its CORS layer wraps the app outside any middleware given to it and
echoes the Origin of any page with Access-Control-Allow-Credentials when the server is reached
by a name other than localhost, and its uvicorn trusts X-Forwarded-For from every loopback
address. Mounted (gr.mount_gradio_app) in an app that configures its own CORSMiddleware,
Gradio's CORS layer stands aside (its documented switch), and ours allows no other origin at
all; the sign-in gate, when there are accounts, is the outermost layer; uvicorn trusts the
proxy headers of the addresses given (trusted_proxies) and of nobody else; and the socket is
bound before the server starts (port 0: any free port, read back), so that nothing can take
the port between choosing it and serving on it.
"""
import socket
import ssl
import threading
import time
from typing import Optional, Sequence

import gradio as gr
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Mount

from ..errors import SinGANError

START_SECONDS = 120        # the server has this long to answer its first request


def studio_app(demo: gr.Blocks, gate: Optional[Middleware] = None, **gradio) -> Starlette:
    """An ASGI app serving `demo` at /, behind `gate` (outermost) and a CORS layer that allows
    no other origin. `gradio`: mount_gradio_app's settings (allowed_paths, css, ...)."""
    middleware = ([gate] if gate is not None else []) + [
        Middleware(CORSMiddleware, allow_origins=(), allow_credentials=False)]
    app = Starlette(middleware=middleware)
    gr.mount_gradio_app(app, demo, path="/", **gradio)
    mounted = next(route.app for route in app.routes if isinstance(route, Mount))
    demo.server_app = demo.app = mounted
    # launch() sets it; without it Gradio would take any path on this machine as an input file
    demo.has_launched = True
    return app


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (0: any free port); a SinGANError when it is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except (OSError, OverflowError) as err:
        sock.close()
        why = getattr(err, "strerror", None) or err
        raise SinGANError(f"cannot serve the studio on {host}:{port}: {why}; choose another "
                          "--port (0: any free one)") from None
    return sock


class StudioServer(uvicorn.Server):
    """uvicorn in a background thread (where it leaves the process's signal handlers alone),
    on a socket bound before it starts; .url, .port, close() (what Blocks.close() calls)."""

    def __init__(self, app, host: str, port: int, ssl_certfile=None, ssl_keyfile=None,
                 trusted_proxies: Sequence[str] = ()):
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on",
                                ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile,
                                proxy_headers=bool(trusted_proxies),
                                forwarded_allow_ips=list(trusted_proxies),
                                server_header=False, timeout_graceful_shutdown=5)
        super().__init__(config)
        try:
            config.load()            # here, so that a bad certificate is one line, not a thread's
        except (ssl.SSLError, OSError) as err:
            raise SinGANError(f"cannot serve HTTPS with {ssl_certfile} and {ssl_keyfile}: "
                              f"{err}") from None
        self.sock = bind(host, port)
        self.port = self.sock.getsockname()[1]
        shown = "localhost" if host in ("0.0.0.0", "::") else (f"[{host}]" if ":" in host
                                                              else host)
        self.url = f"{'https' if ssl_certfile else 'http'}://{shown}:{self.port}/"
        self.thread = threading.Thread(target=self.run, kwargs={"sockets": [self.sock]},
                                       name="studio-server", daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + START_SECONDS
        while not self.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.sock.close()
                raise SinGANError("the studio's server did not start (see the lines above)")
            time.sleep(0.01)

    def close(self) -> None:
        self.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout=15)
        self.sock.close()
