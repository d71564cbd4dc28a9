"""Nodes join and leave with no human: the reactor hands a started minion to
orch.join; lost minions go through orch.leave.  Runs after test_cluster."""

import argparse
import re
import time

import pytest

from tests.lab.conftest import sh

def wait_until(check, timeout, what):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last is True:
            return time.monotonic()
        time.sleep(3)
    pytest.fail(f"{what} not reached in {timeout} s: {last}")


def lb_answers(lab, n):
    names = []
    for _ in range(n):
        rc, out, _ = sh(lab, "client", "curl -s --max-time 5 http://10.0.2.5/whoami")
        names.append(out.split()[0] if out.strip() else None)
    return names


def test_node3_joins_everywhere(lab, highstated):
    t0 = time.monotonic()
    assert lab.cmd_join(argparse.Namespace(names=["node3"])) == 0
    t_up = time.monotonic() - t0

    def everywhere():
        view = lab.membership_view("node3")
        return True if all(view.values()) else view

    t_done = wait_until(everywhere, 600, "node3 in every membership file") - t0
    print(f"\njoin node3: host up and answering Salt after {t_up:.1f} s, visible everywhere after {t_done:.1f} s")
    rc, out, err = sh(lab, "master", "su jobhandler -c 'ssh -o BatchMode=yes -o StrictHostKeyChecking=yes node3 hostname'")
    assert rc == 0 and out.strip() == "node3", err
    rc, out, _ = sh(lab, "node3", "findmnt -n -o SOURCE,FSTYPE /home/jobhandler")
    assert out.split() == ["master:/home/jobhandler", "nfs4"]
    ret = lab.mpi_run("hellow", "np=6")
    assert ret["retcode"] == 0, ret
    assert "on node3" in ret["stdout"]
    assert "node3" in lb_answers(lab, 6)


def test_node3_leaves_cleanly(lab, highstated):
    assert lab.cmd_leave(argparse.Namespace(names=["node3"], verb="leave")) == 0
    t0 = time.monotonic()

    def nowhere():
        view = lab.membership_view("node3")
        return True if not any(view.values()) else view

    t_done = wait_until(nowhere, 600, "node3 gone from every membership file") - t0
    print(f"\nleave node3: gone everywhere {t_done:.1f} s after the host stopped")
    answers = lb_answers(lab, 6)
    assert None not in answers and set(answers) == {"node1", "node2"}
    ret = lab.mpi_run("hellow", "np=4")
    assert ret["retcode"] == 0 and "node3" not in ret["stdout"] and ret["hosts"] == ["node1", "node2"]


def test_bad_join_names_refused(lab, highstated):
    for bad in ("node1", "Node_9", "../x"):
        with pytest.raises(lab.LabError, match=re.escape(repr(bad))):
            lab.cmd_join(argparse.Namespace(names=[bad]))
