"""The local web studio: train SinGAN or ConSinGAN, draw samples, harmonize, edit, paint,
super-resolve and animate in the browser.

    pip install -r requirements-studio.txt
    python studio.py                      # then open http://127.0.0.1:7860

Served on this machine only (127.0.0.1) unless --host says otherwise; never shared publicly.
"""
import argparse
import sys

from singan.image_io import IMAGES_DIR


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to serve on (0.0.0.0: every network interface)")
    parser.add_argument("--port", type=int, default=7860, help="port to serve on")
    parser.add_argument("--root", default="TrainedModels", help="folder of the trained models")
    parser.add_argument("--out", default="Output", help="folder the results are written to")
    parser.add_argument("--images", default=IMAGES_DIR, help="folder of the example images")
    parser.add_argument("--device", default="auto",
                        help="device of the applications (auto | cpu | cuda); training's is "
                             "chosen in the page")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        from singan.apps.studio import serve
    except ImportError as err:
        sys.exit(f"error: the studio needs gradio ({err}); pip install -r requirements-studio.txt")
    from singan.guards import Terminated, raise_on_sigterm
    demo, url = serve(args.host, args.port, args.root, args.out, args.images, args.device)
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


if __name__ == "__main__":
    main()
