"""The booted lab (lab/labkit, the library behind lab/saltlab): real UML
hosts with real sshd, nginx, mpiexec and kernel NFS.  The session brings the
lab up (building kernel and image if needed) and applies the highstate once
(`converged`): on a lab it booted from fresh disks that is the operator's one
`salt '*' state.apply`, which test_first_contact.py judges and which runs
before every other lab test.  A lab that was already running is left running
for the next run (`lab/saltlab down` stops it)."""

import os
import sys

import time

import pytest

from tests.conftest import REPO

if str(REPO / "lab") not in sys.path:
    sys.path.insert(0, str(REPO / "lab"))

from labkit import hosts, ops, remote  # noqa: E402
from labkit.config import lb_url  # noqa: E402


FIRST = "tests/lab/test_first_contact.py"


def pytest_collection_modifyitems(config, items):
    """Mark the lab's tests, and put the first contact with a fresh lab
    before every other lab test (the rest keep their file order)."""
    lab_items = [item for item in items if "tests/lab/" in str(item.fspath)]
    for item in lab_items:
        item.add_marker(pytest.mark.lab)
    first = [item for item in lab_items if str(item.fspath).endswith(FIRST)]
    if first and lab_items[0] is not first[0]:
        at = items.index(lab_items[0])
        rest = [item for item in items if item not in first]
        items[:] = rest[:at] + first + rest[at:]


@pytest.fixture(scope="session")
def lab():
    """The lab, booted for this session unless it already runs; a lab this
    session booted is powered off at the end.  Its value: True when this
    session booted every host, each from a fresh disk (`ops.up` only
    boots, it applies nothing)."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    running = {name for name in hosts.specs() if hosts.running(name)}
    was_up = running == set(hosts.specs())
    assert ops.up() == 0
    yield not running
    if not was_up and not os.environ.get("SALTLAB_KEEP"):
        ops.down()


@pytest.fixture(scope="session")
def converged(lab):
    """The session's one first apply, whichever test asks first: on a lab
    this session booted fresh, the operator's `salt '*' state.apply` with
    nothing synced or published before it; on a lab that was already up,
    a highstate of its running hosts.  What it reports (the failures are
    test_first_contact's to judge, or highstated's)."""
    secs, changed, failed = ops.highstate(everyone=lab)
    print(f"\nfirst highstate in this session ({'fresh lab' if lab else 'running lab'}): "
          f"{changed} changes in {secs:.0f} s")  # fmt: skip
    return {"fresh": lab, "secs": secs, "changed": changed, "failed": failed}


@pytest.fixture(scope="session")
def highstated(converged):
    """A lab the session's first apply converged (with or without
    test_first_contact selected)."""
    assert not converged["failed"], "\n".join(converged["failed"])
    return converged["secs"]


def sh(node, command, timeout=120):
    res = remote.ssh(node, command, timeout=timeout)
    return res.returncode, res.stdout, res.stderr



def wait_for(check, bound, what, every=None, poll=2):
    """Read ``check`` every ``poll`` seconds until it returns True, for at
    most ``bound`` seconds (``every`` is called on each read: an invariant
    to assert).  Returns the seconds it took; a failure shows the last
    answer."""
    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 < bound:
        if every:
            every()
        last = check()
        if last is True:
            return time.monotonic() - t0
        time.sleep(poll)
    pytest.fail(f"{what}: not within {bound} s: {last}")


def lb_answers(n):
    """The first word of N answers through the gateway from the outside
    client, one request at a time (None: no answer)."""
    names = []
    for _ in range(n):
        rc, out, _ = sh("client", f"curl -s --max-time 5 {lb_url()}")
        names.append(out.split()[0] if out.strip() else None)
    return names


class SteadyLoad:
    """A bounded load through the gateway, sent from the outside client for
    SECONDS (one request at a time, at most one every 50 ms): a thread runs
    it; `result()` waits and returns (requests, failures, answers by node)."""

    STOP_FILE = "/tmp/saltcluster-steady-load.stop"
    SCRIPT = (
        "rm -f {stop}; end=$((SECONDS+{secs})); "
        "while [ $SECONDS -lt $end ] && [ ! -e {stop} ]; do "
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
                sh("client", self.SCRIPT.format(secs=seconds, url=lb_url(), stop=self.STOP_FILE), timeout=seconds + 60)
            )
        )
        self._thread.start()

    def stop_after(self, seconds):
        """End the load SECONDS from now (before its full length): the
        requests around a change are what the test is about, not the wait
        for the bound."""
        time.sleep(seconds)
        rc, _, err = sh("client", f"touch {self.STOP_FILE}")
        assert rc == 0, err

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
