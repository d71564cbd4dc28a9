"""Nodes join and leave with no human: a minion presenting the join token is
autosigned, the reactor hands its start to orch.join; lost minions (clean
shutdown or crash) go through orch.leave.  Runs after test_cluster, in file
order: node3 joins and leaves, comes back with node4 and node5 at once, node4
crashes, node3 and node5 leave, node6 joins across a salt-master restart, a host
without the token is refused."""

import re
import subprocess
import time

import pytest
from labkit import ops, probes, remote
from labkit.base import LabError

from tests.lab.conftest import SteadyLoad, lb_answers, sh

MEMBERSHIP_TIMEOUT = 600


def wait_until(check, timeout, what, names=()):
    """The time CHECK is first True, asked every 3 s up to TIMEOUT; a
    failure shows the last answer and what the master's last
    orchestrations did (and NAMES' health claims in the mine)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except subprocess.TimeoutExpired as exc:  # a guest too busy to answer ssh in time: ask again
            last = f"no answer in time: {exc.cmd[-1]!r}"
        if last is True:
            return time.monotonic()
        time.sleep(3)
    why = "\n".join(probes.orchestrations())
    if names:
        why += f"\nhealth claims in the mine: {probes.health_claims(names)}"
    pytest.fail(f"{what} not reached in {timeout} s: {last}\nthe master's last orchestrations:\n{why}")



def mpi_one_rank_per_host():
    """hellow with one rank on every host of the hostfile (Hydra -ppn 1):
    which hosts the next job uses."""
    rc, out, _ = sh("master", "grep -vc '^#' /home/jobhandler/hosts")
    return ops.mpi_run("hellow", f"np={int(out)}", "ppn=1")


def strict_ssh(node):
    return sh("master", f"su jobhandler -c 'ssh -o BatchMode=yes -o StrictHostKeyChecking=yes {node} hostname'")


def test_node3_joins_everywhere(lab, highstated):
    t0 = time.monotonic()
    assert ops.join(["node3"]) == 0
    t_up = time.monotonic() - t0
    t_done = wait_until(lambda: probes.everywhere(["node3"]), MEMBERSHIP_TIMEOUT, "node3 in every membership file") - t0
    print(f"\njoin node3: host up and answering Salt after {t_up:.1f} s, visible everywhere after {t_done:.1f} s")
    # accepted for its token: the lab handed the master no key for it
    assert "node3" in remote.salt_keys()["minions"]
    rc, out, err = strict_ssh("node3")
    assert rc == 0 and out.strip() == "node3", err
    rc, out, _ = sh("node3", "findmnt -n -o SOURCE,FSTYPE /home/jobhandler")
    assert out.split() == ["master:/home/jobhandler", "nfs4"]
    ret = ops.mpi_run("hellow", "np=6")
    assert ret["retcode"] == 0, ret
    assert "on node3" in ret["stdout"]
    assert "node3" in lb_answers(6)


def test_node3_leaves_cleanly_under_load(lab, highstated):
    load = SteadyLoad(25)
    assert ops.leave(["node3"]) == 0
    t0 = time.monotonic()
    t_done = wait_until(lambda: probes.nowhere(["node3"]), MEMBERSHIP_TIMEOUT, "node3 gone from every membership file") - t0
    print(f"\nleave node3: gone everywhere {t_done:.1f} s after the host stopped")
    sent, failed, by_node = load.result()
    assert sent > 20 and failed == [], (sent, failed, by_node)
    answers = lb_answers(6)
    assert None not in answers and set(answers) == {"node1", "node2"}
    ret = mpi_one_rank_per_host()
    assert ret["retcode"] == 0 and "node3" not in ret["stdout"] and ret["hosts"] == ["node1", "node2"]


def test_three_nodes_join_at_once(lab, highstated):
    """node3 comes back (same name, fresh disk) with node4 and node5."""
    names = ["node3", "node4", "node5"]
    t0 = time.monotonic()
    assert ops.join(names) == 0
    t_done = wait_until(lambda: probes.everywhere(names), MEMBERSHIP_TIMEOUT, "node3-5 in every membership file",
                        names) - t0  # fmt: skip
    print(f"\njoin node3 node4 node5 at once: all visible everywhere after {t_done:.1f} s")
    rc, out, _ = sh("master", "grep -v '^#' /home/jobhandler/hosts")
    assert out.split() == ["node1:2", "node2:2", "node3:2", "node4:2", "node5:2"]
    for node in names:
        rc, out, err = strict_ssh(node)
        assert rc == 0 and out.strip() == node, (node, err)
    assert set(lb_answers(10)) == {"node1", "node2", *names}


def test_killed_node_dropped_under_load(lab, highstated):
    load = SteadyLoad(40)
    time.sleep(3)
    assert ops.leave(["node4"], hard=True) == 0
    t0 = time.monotonic()
    t_done = wait_until(lambda: probes.nowhere(["node4"]), MEMBERSHIP_TIMEOUT, "crashed node4 gone everywhere") - t0
    print(f"\nkill node4: gone everywhere {t_done:.1f} s after the crash")
    sent, failed, by_node = load.result()
    assert sent > 20 and failed == [], (sent, failed, by_node)
    rc, out, _ = sh("master", "grep -v '^#' /home/jobhandler/hosts")
    assert out.split() == ["node1:2", "node2:2", "node3:2", "node5:2"]
    ret = mpi_one_rank_per_host()
    assert ret["retcode"] == 0 and ret["hosts"] == ["node1", "node2", "node3", "node5"], ret
    assert "node4" not in ret["stdout"] and "on node5" in ret["stdout"]
    # node4 is not coming back: the operator removes its key (a leave event too)
    sh("master", "salt-key -y -d node4")


def test_remaining_joined_nodes_leave_under_load(lab, highstated):
    load = SteadyLoad(25)
    assert ops.leave(["node3", "node5"]) == 0
    wait_until(lambda: probes.nowhere(["node3", "node5"]), MEMBERSHIP_TIMEOUT, "node3 and node5 gone everywhere")
    sent, failed, by_node = load.result()
    assert sent > 20 and failed == [], (sent, failed, by_node)
    rc, out, _ = sh("master", "grep -v '^#' /home/jobhandler/hosts")
    assert out.split() == ["node1:2", "node2:2"]


def test_join_completes_across_a_salt_master_restart(lab, highstated):
    import threading

    joined = []
    # the joiner only boots node6: whether Salt answers is what this test
    # watches itself, across the restart
    joiner = threading.Thread(
        target=lambda: joined.append(ops.join(["node6"], wait_salt=False))
    )
    joiner.start()
    # as soon as the master has accepted node6's key, its start event and the
    # join orchestration follow within seconds: restart salt-master under them
    wait_until(lambda: "node6" in remote.salt_keys().get("minions", []), 300, "node6's key accepted")
    time.sleep(5)
    # the join has not got that far: node6 serves nowhere yet (its /etc/hosts
    # line may be there already: any membership run renders every host that
    # published its entries, as node6 did when its minion started)
    rc, hostfile, _ = sh("master", "cat /home/jobhandler/hosts")
    assert rc == 0 and not re.search(r"^node6\b", hostfile, re.M), hostfile
    rc, _, err = sh("master", "systemctl restart salt-master")
    assert rc == 0, err
    t0 = time.monotonic()
    # a restarted master in a one-vCPU guest takes minutes to settle (every
    # reconnecting member starts again): a longer bound than a join
    t_done = wait_until(lambda: probes.everywhere(["node6"]), 900, "node6 everywhere after the restart") - t0
    joiner.join(300)
    assert joined == [0]
    print(f"\njoin node6 across a salt-master restart: everywhere {t_done:.1f} s after the restart")
    assert ops.leave(["node6"]) == 0
    wait_until(lambda: probes.nowhere(["node6"]), MEMBERSHIP_TIMEOUT, "node6 gone")


def test_minion_without_token_is_not_accepted(lab, highstated):
    assert ops.join(["rogue"], token=False) == 0
    try:
        time.sleep(20)  # several more auth attempts
        keys = remote.salt_keys()
        assert "rogue" in keys["minions_pre"] and "rogue" not in keys["minions"], keys
        assert not any(probes.membership_view("rogue").values())
        rc, out, _ = sh("master", "salt --out=txt --timeout=5 rogue test.ping")
        assert "rogue" not in out
        # inside the cluster's cidr but not a member: the shared home is not exported to it
        rc, out, _ = sh("rogue", "mkdir -p /mnt/probe; timeout 60 mount -t nfs4 -o ro,soft,timeo=30,retrans=1 "
                                 "master:/home/jobhandler /mnt/probe; echo rc=$?; umount /mnt/probe 2>/dev/null; true",
                        timeout=120)  # fmt: skip
        assert "rc=" in out and "rc=0" not in out, out
    finally:
        ops.leave(["rogue"], hard=True)
        sh("master", "salt-key -y -d rogue")


def test_bad_join_names_refused(lab, highstated):
    for bad in ("node1", "Node_9", "../x"):
        with pytest.raises(LabError, match=re.escape(repr(bad))):
            ops.join([bad])
