"""What the lab is made of, in one place: paths, the topology
(lab/topology.yaml: addresses, memory, the join pool), the kernels, the
image's contents and the timeouts.  Reads files only."""

import ipaddress
import os
import re
from pathlib import Path

import yaml

from labkit.base import LabError

LAB = Path(__file__).resolve().parent.parent
REPO = LAB.parent
CACHE = Path(os.environ.get("SALTCLUSTER_CACHE", Path.home() / ".cache/saltcluster")) / "lab"
RUN = CACHE / "run"  # the running lab: hosts' shares, pid files, joined.json
KNOWN_HOSTS = RUN / "known_hosts"  # the lab's own, forgotten with the lab
NETNS = "saltlab"
TOPOLOGY_FILE = LAB / "topology.yaml"
NETWORKS = ("internal", "external")


def load_topology(path=TOPOLOGY_FILE):
    """The topology file, checked: every host has an address on at least
    one network, inside that network's cidr, and its memory in MiB; the join
    pool is a range inside the internal network."""
    topology = yaml.safe_load(Path(path).read_text())
    cidrs = {net: ipaddress.ip_network(spec["cidr"]) for net, spec in topology["networks"].items()}
    for name, spec in topology["hosts"].items():
        addrs = {net: spec[net] for net in NETWORKS if net in spec}
        if not addrs:
            raise LabError(f"{path}: host {name} has no address (internal or external)")
        for net, addr in addrs.items():
            if ipaddress.ip_address(addr) not in cidrs[net]:
                raise LabError(f"{path}: {name}'s {net} address {addr} is outside {cidrs[net]}")
        if not isinstance(spec.get("mem"), int):
            raise LabError(f"{path}: host {name} has no memory size (mem: MiB)")
        if not isinstance(spec.get("ncpus", 1), int) or spec.get("ncpus", 1) < 1:
            raise LabError(f"{path}: host {name}'s ncpus {spec['ncpus']!r} is not a whole number from 1")
    first, last = (ipaddress.ip_address(a) for a in topology["join_pool"].split("-"))
    if not (first in cidrs["internal"] and last in cidrs["internal"] and first <= last):
        raise LabError(f"{path}: join_pool {topology['join_pool']} is not a range inside {cidrs['internal']}")
    if not isinstance(topology.get("join_mem"), int):
        raise LabError(f"{path}: no join_mem (MiB) for joining hosts")
    return topology


TOPOLOGY = load_topology()


def address(name, net="internal"):
    """A base host's address on NET, from the topology."""
    return TOPOLOGY["hosts"][name][net]


def members():
    """The base hosts in the cluster (those with a role; not the outside client)."""
    return [name for name, spec in TOPOLOGY["hosts"].items() if spec["roles"]]


def lb_url():
    """The load balancer as the outside client reaches it: the gateway's external address."""
    return f"http://{address('gateway', 'external')}/whoami"


# The lab's kernels.  7.3 (Debian 13's backports) runs guests in UML's
# seccomp mode: a guest system call or page fault is one round trip to the
# host instead of a series of ptrace stops, and it sizes the host's FP state
# at run time (the xstate patch is for 6.12 only).  6.12 in ptrace mode stays
# selectable (SALTLAB_KERNEL=6.12) so bench/ can compare the two in one run.
KERNELS = {
    "7.3": {"package": "linux-source-7.3", "suite": "trixie-backports",
            "patches": ["uml-tap-cloexec.patch", "uml-vector-tap-queues.patch"], "cmdline": ["seccomp=on"]},
    "6.12": {"package": "linux-source-6.12", "suite": None,  # the host's own bookworm-security
             "patches": ["uml-tap-cloexec.patch", "uml-xstate-size.patch"], "cmdline": []},
}  # fmt: skip
# the kernel in use; bench/kernels.py sets it to compare kernels in one run
KERNEL = os.environ.get("SALTLAB_KERNEL", "7.3")


def kernel_spec():
    if KERNEL not in KERNELS:
        raise LabError(f"SALTLAB_KERNEL={KERNEL!r} is not a lab kernel: use one of {', '.join(KERNELS)}")
    return KERNELS[KERNEL]


def kernel_cmdline():
    return kernel_spec()["cmdline"]


# Virtual CPUs per host beside the topology's `ncpus` (default 1); bench/
# sets it to compare a master with more CPUs in the same run.
NCPUS = {}


def ncpus(name, spec):
    """How many virtual CPUs NAME boots with.  UML runs more than one only in
    seccomp mode, so asking for more on a ptrace kernel is refused."""
    n = NCPUS.get(name, spec.get("ncpus", 1))
    if n > 1 and "seccomp=on" not in kernel_cmdline():
        raise LabError(f"{name}: ncpus={n} needs UML's seccomp mode; kernel {KERNEL} runs guests in ptrace mode")
    return n


RELEASE = "trixie"  # Debian 13: MPICH 4.2.1 (4.0.2 in bookworm hangs in MPI_Finalize)
# Slurm 24.11 and munge 0.5.16 (the lab's pillar sets scheduler: slurm).
# labkit.build installs them after the other packages: munge's postinst
# adds its system account with the first free system uid, and installed
# with the rest it could take uid 100 before rpcbind's `_rpc`, the holder
# the lab's pillar moves (user:relocate_restart_services names rpcbind).
IMAGE_SLURM_PACKAGES = ["munge", "slurmctld", "slurmd", "slurm-client"]
IMAGE_PACKAGES = [
    "systemd", "systemd-sysv", "iproute2", "iputils-ping", "procps", "psmisc", "util-linux",
    "openssh-server", "openssh-client", "nginx-light", "mpich", "libmpich-dev", "gcc", "libc6-dev",
    "nfs-kernel-server", "nfs-common", "python3", "python3-venv", "python3-dev", "curl", "wrk", "nftables",
    "ca-certificates", "netbase", "less", *IMAGE_SLURM_PACKAGES,
]  # fmt: skip
# Salt and every dependency pinned (lab/image/requirements.txt): the image's
# venv is the same on every build
SALT_REQUIREMENTS = LAB / "image/requirements.txt"
IMAGE_OVERLAY = LAB / "image/overlay"
# Part of the image's cache key beside its inputs (release, packages,
# requirements, overlay): bump it when the build steps in labkit.build
# change, so that the next build makes a new image instead of reusing one
# made the old way.
IMAGE_RECIPE = 2  # 2: Slurm's packages in a second step, no munge key, no Slurm unit enabled
HOST_PACKAGES = ["debootstrap", "patch", "bc", "flex", "bison", "libelf-dev", "libssl-dev",
                 "xz-utils", "make", "gcc", "e2fsprogs", "iproute2", "openssh-client"]  # fmt: skip

SSH_OPTS = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR",
            "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=6"]  # fmt: skip
# what `saltlab join` accepts as a new host's name
HOST_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")

# Timeouts, in seconds.  A wait that runs out is a failure; nothing is retried.
SSH_UP_TIMEOUT = 180  # a (re)booted host until its sshd runs a command
SSH_PROBE_TIMEOUT = 10  # one `ssh HOST true` while waiting for that
SALT_UP_TIMEOUT = 240  # every host answering ssh until its minion answers (or its key is pending)
FROZEN_AFTER = 60  # a minion silent this long is checked for a frozen guest
FROZEN_PROBE_TIMEOUT = 20  # a guest whose sshd runs nothing in this long is frozen
PING_TIMEOUT = 10  # salt --timeout of one test.ping round while waiting for minions
PING_SSH_TIMEOUT = 90  # that round as a whole (a busy master answers slowly)
SALT_TIMEOUT = 120  # salt --timeout: how long the salt CLI waits for minions' returns
SALT_CALL_TIMEOUT = 600  # one salt CLI call over ssh, as a whole
QUERY_TIMEOUT = 60  # a short read over ssh: salt-key -L, a membership file
POWEROFF_TIMEOUT = 15  # a host taking `systemctl poweroff`
STOP_TIMEOUT = 60  # leave/kill: poweroff until the UML kernel has exited
DOWN_TIMEOUT = 30  # down: the same, for every host at once
KEY_DELETE_TIMEOUT = 300  # salt-key -d on a master busy with orchestrations
SYNC_TIMEOUT = 300  # salt-run saltutil.sync_runners on the master
HIGHSTATE_TIMEOUT = 1800  # state.apply on every host
MPI_TIMEOUT = 60  # mpi.run's own timeout= for the demo's and the tests' jobs
CURL_TIMEOUT = 5  # one request to the load balancer (curl --max-time)
CURL_SSH_TIMEOUT = 20  # that request's ssh as a whole
