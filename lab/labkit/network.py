"""The lab's network: one network namespace with a bridge per topology
network (the lab's own address on each) and a tap per host NIC.  Nothing
outside the namespace reaches it."""

import contextlib
import ipaddress
import os
import signal

from labkit import config
from labkit.base import run


def ns(*cmd, check=True, **kw):
    """Run CMD inside the lab's namespace."""
    return run(["ip", "netns", "exec", config.NETNS, *cmd], check=check, **kw)


def exists():
    return config.NETNS in run(["ip", "netns", "list"], capture_output=True).stdout.split()


def prefixlen(net):
    return ipaddress.ip_network(config.TOPOLOGY["networks"][net]["cidr"]).prefixlen


def up():
    if not exists():
        run(["ip", "netns", "add", config.NETNS])
    ns("ip", "link", "set", "lo", "up")
    for net, spec in config.TOPOLOGY["networks"].items():
        bridge = spec["bridge"]
        if ns("ip", "link", "show", bridge, check=False, capture_output=True).returncode != 0:
            ns("ip", "link", "add", bridge, "type", "bridge")
        ns("ip", "addr", "replace", f"{spec['lab_addr']}/{prefixlen(net)}", "dev", bridge)
        ns("ip", "link", "set", bridge, "up")


def down():
    """End every process left in the namespace, then remove it."""
    if exists():
        # UML leaves helper processes in the namespace: end everything there
        pids = run(["ip", "netns", "pids", config.NETNS], capture_output=True).stdout.split()
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(int(pid), signal.SIGKILL)
        run(["ip", "netns", "del", config.NETNS])


def tap_name(host, net):
    return f"t-{host[:8]}-{net[:3]}"


def tap_up(host, net):
    tap = tap_name(host, net)
    if ns("ip", "link", "show", tap, check=False, capture_output=True).returncode != 0:
        ns("ip", "tuntap", "add", tap, "mode", "tap")
    ns("ip", "link", "set", tap, "master", config.TOPOLOGY["networks"][net]["bridge"])
    ns("ip", "link", "set", tap, "up")
    return tap
