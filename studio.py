"""The local web studio: train SinGAN or ConSinGAN, draw samples, harmonize, edit, paint,
super-resolve and animate in the browser.

    pip install -r requirements-studio.txt
    python studio.py                      # then open http://127.0.0.1:7860

Served on this machine only (127.0.0.1) unless --host says otherwise; never shared publicly.
On a shared server every visitor signs in (README, "On a shared server"):

    python studio.py --auth_file studio_users.txt --add_user alice     # once per user
    python studio.py --host 0.0.0.0 --auth_file studio_users.txt \
        --ssl_certfile cert.pem --ssl_keyfile key.pem

Its options and its work live in singan/cli/studio.py; `python -m singan studio --help` (or
`singan studio` where singan is installed) is the same command.
"""
from singan.cli import run
from singan.cli.studio import main

if __name__ == "__main__":
    run(main)
