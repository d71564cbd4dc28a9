"""What every other labkit module uses: the error a user can act on,
progress lines, running a command, the root check."""

import os
import subprocess
import sys


class LabError(Exception):
    """A problem the user can act on; printed without a traceback."""


def say(msg):
    print(f"[saltlab] {msg}", file=sys.stderr, flush=True)


def run(cmd, check=True, **kw):
    return subprocess.run(cmd, check=check, text=True, **kw)


def need_root():
    if os.geteuid() != 0:
        raise LabError("saltlab needs root (network namespaces, taps, chroot): run it with sudo")
