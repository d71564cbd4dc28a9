"""The lab's UML kernel keeps FP state intact: the same float and hashing
work gives the same results in guests (several processes at once, so context
switches save and restore FP registers) as on this host.  In seccomp mode
the FP state travels in the stub's signal frame, sized by the host's xstate
at run time; 6.12 in ptrace mode needs lab/kernel/uml-xstate-size.patch on
hosts with a large xstate."""

import contextlib
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from labkit import config, hosts, remote

WORK = (
    "import hashlib, math\n"
    "from concurrent.futures import ProcessPoolExecutor\n"
    "def job(k):\n"
    "    acc = 0.0\n"
    "    for i in range(1, 200000):\n"
    "        acc += math.sin(i * k) * math.sqrt(i) / (1.0 + math.log(i))\n"
    "    return repr(acc) + ' ' + hashlib.sha256(repr(acc).encode() * 2000).hexdigest()\n"
    "with ProcessPoolExecutor(4) as pool:\n"
    "    print('\\n'.join(pool.map(job, range(1, 9))))\n"
)


def test_fp_and_hashing_match_host(lab):
    expected = subprocess.run([sys.executable, "-c", WORK], capture_output=True, text=True, check=True).stdout
    procs = {
        node: remote.ssh(node, f"python3 -c {shlex.quote(WORK)}", timeout=300)
        for node in ("node1", "node2")
    }
    for node, res in procs.items():
        assert res.returncode == 0, res.stderr
        assert res.stdout == expected, node


def _userspace_processes(pid):
    """Host-side status of a UML kernel's guest userspace processes (its
    children on the host): {field: value} each."""
    found = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        with contextlib.suppress(OSError):
            status = dict(
                line.split(":\t", 1) for line in Path(f"/proc/{child}/status").read_text().splitlines() if ":\t" in line
            )
            found.append({k: v.strip() for k, v in status.items()})
    return found


def test_guests_run_in_seccomp_mode(lab):
    """Every guest's userspace runs under a host seccomp filter and is not
    ptraced: the mode the lab's speed figures assume.  (UML consumes
    seccomp=on itself, so the guest's /proc/cmdline does not show it; with
    "on" rather than "auto" a guest that cannot use it stops at boot.)"""
    if config.KERNEL != "7.3":
        pytest.skip(f"kernel {config.KERNEL} runs in ptrace mode")
    for node in ("master", "node1"):
        procs = _userspace_processes(hosts.running(node))
        assert procs, node
        assert {(p["Seccomp"], p["TracerPid"]) for p in procs} == {("2", "0")}, (node, procs[:2])
