"""saltlab: the saltcluster lab -- the whole cluster as real booted hosts on
one machine.

Each host is a User-Mode Linux kernel (its own kernel, with NFS server and
client built in) booting a shared Debian 13 (trixie) image through its own
copy-on-write disk, on bridges inside a network namespace the lab creates and
nothing else reaches.  The master host runs salt-master over this repository
(mounted by hostfs); every cluster host runs salt-minion with a key the lab
preseeded.

    saltlab build                 kernel + image (cached, keyed by their inputs)
    saltlab up | down | status
    saltlab join [--no-token] NAME...   boot compute hosts that join by themselves
    saltlab leave | kill NAME...  stop joined hosts cleanly | hard
    saltlab exec NODE -- CMD...   run CMD on NODE (from inside the lab)
    saltlab salt -- ARGS...       run `salt ARGS` on the master
    saltlab demo                  build, up, highstate, MPI jobs, load balancer
"""

import argparse
import subprocess
import sys

from labkit import demo, ops
from labkit.base import LabError


def parser():
    top = argparse.ArgumentParser(prog="saltlab", description=__doc__.split("\n\n")[0])
    sub = top.add_subparsers(dest="verb", required=True)
    p = sub.add_parser("build", help="build the UML kernel and the host image (cached)")
    p.add_argument("--only", choices=["kernel", "image"], help="build just one of them")
    sub.add_parser("up", help="boot every lab host and wait for Salt")
    sub.add_parser("down", help="power every host off and remove the lab network")
    sub.add_parser("status", help="what runs")
    sub.add_parser("demo", help="build, up, highstate, MPI jobs, load balancer")
    p = sub.add_parser("join", help="boot new compute hosts (node3, ...) that join by themselves")
    p.add_argument("--no-token", action="store_true", help="without the join token: must not be accepted")
    p.add_argument("names", nargs="+")
    for verb, what in (("leave", "shut joined hosts down cleanly"), ("kill", "stop joined hosts hard (a crash)")):
        p = sub.add_parser(verb, help=what)
        p.add_argument("names", nargs="+")
    p = sub.add_parser("exec", help="run a command on a lab host")
    p.add_argument("node")
    p.add_argument("command", nargs=argparse.REMAINDER)
    p = sub.add_parser("salt", help="run the salt CLI on the master")
    p.add_argument("args", nargs=argparse.REMAINDER)
    return top


def _words(words):
    """A REMAINDER argument without the `--` that separates it."""
    return words[1:] if words and words[0] == "--" else words


def command(argv=None):
    """The API call a saltlab command line stands for: (function, keyword
    arguments)."""
    args = parser().parse_args(argv)
    calls = {
        "build": lambda: (ops.build, {"only": args.only}),
        "up": lambda: (ops.up, {}),
        "down": lambda: (ops.down, {}),
        "status": lambda: (ops.status, {}),
        "demo": lambda: (demo.demo, {}),
        "join": lambda: (ops.join, {"names": args.names, "token": not args.no_token}),
        "leave": lambda: (ops.leave, {"names": args.names, "hard": False}),
        "kill": lambda: (ops.leave, {"names": args.names, "hard": True}),
        "exec": lambda: (ops.run_on, {"node": args.node, "command": _words(args.command)}),
        "salt": lambda: (ops.salt_cli, {"args": _words(args.args)}),
    }
    return calls[args.verb]()


def main(argv=None):
    func, kwargs = command(argv)
    try:
        return func(**kwargs)
    except LabError as exc:
        print(f"saltlab: {exc}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as exc:
        print(f"saltlab: command failed ({exc.returncode}): {' '.join(map(str, exc.cmd))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `saltlab status | head`
        return 0
