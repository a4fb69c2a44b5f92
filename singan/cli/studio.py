"""The local web studio: train SinGAN or ConSinGAN, draw samples, harmonize, edit, paint,
super-resolve and animate in the browser.

studio.py's options and work (its docstring has the commands; the README's "Web studio" and
"On a shared server" the rest). Served on 127.0.0.1 unless --host says otherwise; a host beyond
loopback needs --auth_file, and HTTPS: --ssl_certfile, or --behind_tls_proxy with
--trusted_proxies.
"""
import argparse
import importlib
import os
import sys

from ..errors import SinGANError
from ..guards import Terminated, raise_on_sigterm
from ..image_io import IMAGES_DIR
from ..studio import accounts
from ..studio.space import max_trainings, parse_size
from . import ArgumentParser


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0],
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to serve on (0.0.0.0: every network interface)")
    parser.add_argument("--port", type=int, default=7860,
                        help="port to serve on (0: any free port; the address printed has it)")
    parser.add_argument("--root", default="TrainedModels", help="folder of the trained models")
    parser.add_argument("--out", default="Output", help="folder the results are written to")
    parser.add_argument("--images", default=IMAGES_DIR, help="folder of the example images")
    parser.add_argument("--device", default="auto",
                        help="device of the applications (auto | cpu | cuda); training's is "
                             "chosen in the page")
    parser.add_argument("--auth_file", default=None,
                        help="accounts, one 'user:hash' line each: every visitor signs in and "
                             "has their own work (required with a --host beyond loopback)")
    parser.add_argument("--add_user", default=None, metavar="NAME",
                        help="add NAME to --auth_file (the password is asked twice, or read as "
                             "two lines from standard input), then exit")
    parser.add_argument("--max_trainings", type=int, default=None,
                        help="trainings at once, each user at most one (default: one per GPU, "
                             "else one)")
    parser.add_argument("--user_quota", default="2GB",
                        help="each user's space for uploads, results and trainings (with "
                             "--auth_file)")
    parser.add_argument("--ssl_certfile", default=None, help="serve HTTPS with this certificate")
    parser.add_argument("--ssl_keyfile", default=None, help="...and this private key")
    parser.add_argument("--trusted_proxies", default="", metavar="ADDRESSES",
                        help="comma-separated addresses (or networks) of reverse proxies whose "
                             "X-Forwarded-For / X-Forwarded-Proto headers are believed (default: "
                             "nobody's; every other client's are ignored)")
    parser.add_argument("--behind_tls_proxy", action="store_true",
                        help="browsers reach the studio by HTTPS through a reverse proxy (one "
                             "of --trusted_proxies) that forwards plain HTTP to it: cookies are "
                             "Secure, and a --host beyond loopback needs no --ssl_certfile")
    return parser.parse_args(argv)


def studio_settings(args) -> dict:
    """serve()'s account, limit and HTTPS settings from the options, checked."""
    proxies = accounts.parse_proxies(args.trusted_proxies)
    accounts.check_host(args.host, args.auth_file, args.ssl_certfile, args.behind_tls_proxy,
                        proxies)
    max_trainings(args.max_trainings)      # refused before the server starts
    if bool(args.ssl_certfile) != bool(args.ssl_keyfile):
        raise SinGANError("HTTPS needs both --ssl_certfile and --ssl_keyfile")
    for path in filter(None, (args.ssl_certfile, args.ssl_keyfile)):
        if not os.path.isfile(path):
            raise SinGANError(f"{path} does not exist (see the README's 'On a shared server' "
                              "for making a certificate)")
    return {"accounts": accounts.read_accounts(args.auth_file) if args.auth_file else None,
            "quota_bytes": parse_size(args.user_quota), "max_trainings": args.max_trainings,
            "ssl_certfile": args.ssl_certfile, "ssl_keyfile": args.ssl_keyfile,
            "trusted_proxies": proxies, "behind_tls_proxy": args.behind_tls_proxy}


def main(argv=None):
    args = parse_args(argv)
    if args.add_user:
        if not args.auth_file:
            raise SinGANError("--add_user needs --auth_file FILE (the account file to add the "
                              "user to)")
        accounts.add_user(args.auth_file, args.add_user, accounts.ask_password())
        print(f"added {args.add_user} to {args.auth_file}")
        return
    settings = studio_settings(args)
    try:   # gradio is optional: the page's module is imported only to serve it
        serve = importlib.import_module("singan.studio.page").serve
    except ImportError as err:
        raise SinGANError(f"the studio needs gradio ({err}); pip install -r "
                          "requirements-studio.txt") from None
    demo, url = serve(args.host, args.port, args.root, args.out, args.images, args.device,
                      **settings)
    print(f"singan studio: {url}  (Ctrl-C stops it)", flush=True)
    raise_on_sigterm()
    try:
        demo.block_thread()
    except KeyboardInterrupt as stop:   # Ctrl-C, or SIGTERM (guards.Terminated)
        print("stopping: the running training saves its running stage first", flush=True)
        demo.studio_queue.shutdown()
        demo.close()
        if isinstance(stop, Terminated):
            sys.exit(143)


