"""The booted lab (lab/labkit, the library behind lab/saltlab): real UML
hosts with real sshd, nginx, mpiexec and kernel NFS.  The session brings the
lab up (building kernel and image if needed), applies the highstate once, and
leaves the lab running for the next run (`lab/saltlab down` stops it)."""

import os
import sys

import pytest

from tests.conftest import REPO

if str(REPO / "lab") not in sys.path:
    sys.path.insert(0, str(REPO / "lab"))

from labkit import hosts, ops, remote  # noqa: E402
from labkit.config import lb_url  # noqa: E402


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/lab/" in str(item.fspath):
            item.add_marker(pytest.mark.lab)


@pytest.fixture(scope="session")
def lab():
    """The lab, booted for this session unless it already runs; a lab this
    session booted is powered off at the end."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    was_up = all(hosts.running(name) for name in hosts.specs())
    assert ops.up() == 0
    yield
    if not was_up and not os.environ.get("SALTLAB_KEEP"):
        ops.down()


@pytest.fixture(scope="session")
def highstated(lab):
    secs, changed, failed = ops.highstate()
    assert not failed, "\n".join(failed)
    print(f"\nfirst highstate in this session: {changed} changes in {secs:.0f} s")
    return secs


def sh(node, command, timeout=120):
    res = remote.ssh(node, command, timeout=timeout)
    return res.returncode, res.stdout, res.stderr


class SteadyLoad:
    """A bounded load through the gateway, sent from the outside client for
    SECONDS (one request at a time, at most one every 50 ms): a thread runs
    it; `result()` waits and returns (requests, failures, answers by node)."""

    SCRIPT = (
        "end=$((SECONDS+{secs})); "
        "while [ $SECONDS -lt $end ]; do "
        "r=$(curl -s --max-time 15 -w ' %{{http_code}}' {url} | tr '\\n' ' '); "
        "echo \"${{r:-none 000}}\"; "
        "sleep 0.05; done"
    )

    def __init__(self, seconds):
        import threading

        self.seconds = seconds
        self._out = []
        self._thread = threading.Thread(
            target=lambda: self._out.append(
                sh("client", self.SCRIPT.format(secs=seconds, url=lb_url()), timeout=seconds + 60)
            )
        )
        self._thread.start()

    def result(self):
        self._thread.join(self.seconds + 90)
        rc, out, err = self._out[0]
        assert rc == 0, err
        lines = [line.split() for line in out.splitlines() if line.strip()]
        failed = [line for line in lines if line[-1] != "200"]
        by_node = {}
        for line in lines:
            if line[-1] == "200":
                by_node[line[0]] = by_node.get(line[0], 0) + 1
        return len(lines), failed, by_node
