"""Health-gated membership on the booted lab: each compute node checks its
own health on a schedule (cluster_health.publish, pillar/health.sls), is
drained (out of the gateway's upstream and the master's hostfile) after
health:fail_after failed checks in a row and comes back after
health:pass_after passed ones; the reactor and orch.health make the files
follow.  Under a steady bounded load through the gateway nothing fails;
a check that fails once drains nothing; stopping every compute node's
nginx never empties the upstream.  The lab is left as it was found.

Every wait is bounded by what the settings promise (computed below), and
nothing is retried: a wait only reads the files again."""

import json
import re
import time

import pytest
from labkit import ops, probes, remote
from labkit.config import address

from tests.lab.conftest import SteadyLoad, lb_answers, sh
from tests.lab.conftest import wait_for as lab_wait_for

COMPUTE = ["node1", "node2"]
# One check's own time on top of the interval: ssh-keyscan -T 3, the
# /whoami request (3 s), setpriv and nginx -t (5 s each at most), and the
# minion's scheduler tick.
CHECK_BOUND = 20
# From the flip to the files: the event, the reactor starting orch.health,
# and its cluster.membership run on the master and the gateway (the same run
# took 11-22 s on three hosts in the join timelines, bench/results-join.md),
# with room for a busy one-vCPU guest.
ORCH_BOUND = 90
POLL = 2
# the load goes on this long after the files changed: the gateway's reload
# and the requests right after it
LOAD_AFTER = 10


def settings():
    """(interval, fail_after, pass_after) as node2 has them: its schedule's
    seconds (pillar/health.sls) and saltcluster:health."""
    # the minion's schedule as it runs it (pillar.get masks a key named
    # "seconds" in its output)
    ret = remote.salt_json(["node2", "schedule.list", "return_yaml=False"])
    interval = (ret["node2"].get("saltcluster-health") or {}).get("seconds")
    health = remote.salt_json(["node2", "cluster.settings"])["node2"]["health"]
    assert isinstance(interval, int) and interval > 0, ret
    return interval, health["fail_after"], health["pass_after"]


@pytest.fixture(scope="module")
def bounds(lab, highstated):
    """Seconds from a fault to the node out of both files, and from its
    recovery to the node back in both: the checks hysteresis needs in a row
    (the first one may come a whole interval after the change), one check's
    own time, and the orchestration."""
    interval, fail_after, pass_after = settings()
    drain = interval * fail_after + CHECK_BOUND + ORCH_BOUND
    back = interval * pass_after + CHECK_BOUND + ORCH_BOUND
    print(f"\nhealth: every {interval} s, drained after {fail_after} failures, back after {pass_after} passes: "
          f"bound {drain} s to drain, {back} s to come back")  # fmt: skip
    return {"interval": interval, "fail_after": fail_after, "drain": drain, "back": back}


def listed(name):
    """Where NAME is listed among the files draining changes: the gateway's
    upstream and the master's hostfile (two reads)."""
    rc, out, _ = sh("gateway", f"grep -c '# {name}$' {probes.GATEWAY_UPSTREAM} || true")
    upstream = out.strip() == "1"
    rc, out, _ = sh("master", f"grep -c '^{name}:' /home/jobhandler/hosts || true")
    return {"upstream": upstream, "hostfile": out.strip() == "1"}


def upstream_servers():
    rc, out, _ = sh("gateway", f"grep -c '^ *server [0-9]' {probes.GATEWAY_UPSTREAM} || true")
    return int(out.strip() or 0)


def wait_for(check, bound, what, every=None):
    """conftest.wait_for, reading every POLL seconds."""
    return lab_wait_for(check, bound, what, every, poll=POLL)


def out_of_both(name):
    found = listed(name)
    return True if not any(found.values()) else found


def in_both(name):
    found = listed(name)
    return True if all(found.values()) else found


def claim(name):
    """NAME's own health claim in the master's mine (saltcluster_health)."""
    rc, out, _ = sh("master", f"salt-run --out=json cache.mine tgt={name} tgt_type=list")
    return (json.loads(out or "{}").get(name) or {}).get("saltcluster_health") or {}


def status_rows():
    res = remote.salt_run(["--out=json", "cluster.status"])
    return {row["host"]: row for row in json.loads(res.stdout)}


def nginx(node, verb):
    rc, _, err = sh(node, f"systemctl {verb} nginx")
    assert rc == 0, (node, verb, err)



@pytest.fixture(scope="module", autouse=True)
def served_again(lab, highstated, bounds):
    """Both compute nodes serving before and after: whatever a test
    stopped is started again, and the files follow within the bound.  (A
    test before may have left a node drained for a while, e.g. an NFS
    server restart in test_faults: it comes back within the same bound.)"""
    for node in COMPUTE:
        wait_for(lambda node=node: claim(node).get("state") == "serving" and in_both(node) is True or claim(node),
                 bounds["back"], f"{node} serving before the health tests")  # fmt: skip
    yield
    for node in COMPUTE:
        sh(node, "systemctl start nginx")
    for node in COMPUTE:
        wait_for(lambda node=node: in_both(node), bounds["back"], f"{node} back after the health tests")


def test_a_check_that_fails_once_drains_nothing(bounds):
    """nginx on node2 down for less than an interval: at most one check
    sees it, and node2 stays in both files and keeps serving."""
    nginx("node2", "stop")
    time.sleep(max(bounds["interval"] - 3, 1))
    nginx("node2", "start")
    # node2's own claim flips first (the files follow the claims, never
    # anything else): had the one failure counted, the claim would say
    # drained by fail_after checks later, each a whole interval apart, plus
    # one check's own time; watched for one check more than that
    deadline = time.monotonic() + bounds["interval"] * (bounds["fail_after"] + 1) + CHECK_BOUND
    while time.monotonic() < deadline:
        assert in_both("node2") is True
        assert claim("node2").get("state") == "serving", claim("node2")
        time.sleep(POLL * 2)
    assert claim("node2").get("fails", 0) == 0  # passing again


def test_node2_without_nginx_is_drained_under_load_with_no_failed_request(bounds):
    load = SteadyLoad(bounds["drain"] + 20)
    time.sleep(3)
    nginx("node2", "stop")
    took = wait_for(lambda: out_of_both("node2"), bounds["drain"], "node2 out of the upstream and the hostfile")
    print(f"\nhealth: node2 without nginx out of the upstream and the hostfile after {took:.1f} s "
          f"(bound {bounds['drain']} s)")  # fmt: skip
    load.stop_after(LOAD_AFTER)
    sent, failed, by_node = load.result()
    assert sent > 20 and failed == [], (sent, failed, by_node)
    # its own claim, and still a member: /etc/hosts, known_hosts, the export
    found = claim("node2")
    assert found["state"] == "drained" and "web_whoami" in found["failed"], found
    view = probes.membership_view("node2")
    assert all(v for k, v in view.items() if k.startswith("hosts@") or k.startswith("known_hosts")), view
    rc, out, _ = sh("master", "exportfs -v")
    assert f"{address('node2')}(" in out, out
    # jobs are placed on node1 only; the gateway answers from node1 only
    ret = ops.mpi_run("hellow", "np=2", "ppn=1")
    assert ret["retcode"] == 0 and ret["hosts"] == ["node1"], ret
    assert set(lb_answers(4)) == {"node1"}
    row = status_rows()["node2"]
    assert row["serves"] == "drained" and row["hostfile"] == {"master": None} and row["healthy"] is False, row
    assert re.search(r"^node2 .* DRAINED ", remote.salt_run(["cluster.status"]).stdout, re.M)


def test_node2_with_nginx_again_comes_back(bounds):
    load = SteadyLoad(bounds["back"] + 20)
    time.sleep(3)
    nginx("node2", "start")
    took = wait_for(lambda: in_both("node2"), bounds["back"], "node2 back in the upstream and the hostfile")
    print(f"\nhealth: node2 with nginx again back in both after {took:.1f} s (bound {bounds['back']} s)")
    load.stop_after(LOAD_AFTER)
    sent, failed, by_node = load.result()
    assert sent > 20 and failed == [], (sent, failed, by_node)
    assert claim("node2")["state"] == "serving"
    assert set(lb_answers(4)) == set(COMPUTE)
    assert status_rows()["node2"]["serves"] == "serving"


def test_every_compute_node_without_nginx_never_empties_the_upstream(bounds):
    """Both nodes drain themselves; draining the last one would empty the
    hostfile and the upstream, so both stay in them, and the membership
    runs say why.  The upstream is read on every poll: never empty."""

    def never_empty():
        assert upstream_servers() >= 1

    for node in COMPUTE:
        nginx(node, "stop")
    wait_for(
        lambda: all(claim(n).get("state") == "drained" for n in COMPUTE) or {n: claim(n) for n in COMPUTE},
        bounds["drain"], "both nodes drained", every=never_empty,
    )  # fmt: skip
    # the last flip's orchestration: both listed again, or still
    wait_for(lambda: all(in_both(n) is True for n in COMPUTE) or {n: listed(n) for n in COMPUTE},
             ORCH_BOUND, "both nodes kept in the files", every=never_empty)  # fmt: skip
    rows = status_rows()
    assert [rows[n]["serves"] for n in COMPUTE] == ["drained", "drained"], rows
    for node in COMPUTE:
        nginx(node, "start")
    for node in COMPUTE:
        wait_for(lambda node=node: claim(node).get("state") == "serving" or claim(node), bounds["back"],
                 f"{node} serving again", every=never_empty)  # fmt: skip


def test_node1_without_its_home_leaves_the_hostfile_and_comes_back_when_remounted(bounds):
    """The shared home unmounted on node1: its nfs_home and home_writable
    checks fail, node1 is drained (out of the hostfile: mpi.run places no
    rank there; out of the upstream), cluster.status says so in the table
    and in JSON; mounted again (its fstab line, as cluster.nfs.client
    wrote it), node1 comes back."""
    rc, _, err = sh("node1", "umount -l /home/jobhandler")
    assert rc == 0, err
    try:
        took = wait_for(lambda: out_of_both("node1"), bounds["drain"], "node1 out of the hostfile and the upstream")
        print(f"\nhealth: node1 without its home drained after {took:.1f} s (bound {bounds['drain']} s)")
        found = claim("node1")
        assert found["state"] == "drained" and "nfs_home" in found["failed"], found
        ret = ops.mpi_run("hellow", "np=2", "ppn=1")
        assert ret["retcode"] == 0 and ret["hosts"] == ["node2"], ret
        assert "on node1" not in ret["stdout"], ret["stdout"]
        row = status_rows()["node1"]
        assert row["serves"] == "drained" and row["healthy"] is False, row
        assert row["hostfile"] == {"master": None}, row
        assert re.search(r"^node1 .* FAIL \S*nfs_home\S* +DRAINED ", remote.salt_run(["cluster.status"]).stdout, re.M)
    finally:
        rc, _, err = sh("node1", "mountpoint -q /home/jobhandler || mount /home/jobhandler")
    assert rc == 0, err
    took = wait_for(lambda: in_both("node1"), bounds["back"], "node1 back in the hostfile and the upstream")
    print(f"\nhealth: node1 remounted back in both after {took:.1f} s (bound {bounds['back']} s)")
    assert status_rows()["node1"]["serves"] == "serving"
    ret = ops.mpi_run("hellow", "np=2", "ppn=1")
    assert ret["retcode"] == 0 and ret["hosts"] == ["node1", "node2"], ret


def local_claim(node):
    """NODE's health record as its minion keeps it (read over ssh, not
    through the master)."""
    rc, out, err = sh(node, "cat /var/cache/salt/minion/saltcluster/health.json")
    assert rc == 0, err
    return json.loads(out)


def test_the_salt_master_briefly_unreachable_drains_nothing(bounds):
    """salt-master stopped for longer than fail_after checks: the compute
    nodes' checks do not depend on it, so their records stay serving (read
    on the nodes themselves) and both stay in both files; once it is back,
    their claims in the mine say serving."""
    # longer than the failures in a row that drain a node
    outage = bounds["interval"] * (bounds["fail_after"] + 2)
    rc, _, err = sh("master", "systemctl stop salt-master")
    assert rc == 0, err
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < outage:
            for node in COMPUTE:
                record = local_claim(node)
                assert record["state"] == "serving", (node, record)
            time.sleep(POLL * 2)
    finally:
        rc, _, err = sh("master", "systemctl start salt-master")
    assert rc == 0, err
    for node in COMPUTE:
        assert in_both(node) is True
    for node in COMPUTE:
        wait_for(lambda node=node: claim(node).get("state") == "serving" or claim(node), bounds["back"],
                 f"{node}'s claim in the mine after the master is back")  # fmt: skip
    # cluster.status asks the minions again: the first call right after the
    # restart can find a minion not yet reconnected (its row then says no
    # claim, never drained); within the bound every row says serving
    serves = lambda: {n: status_rows()[n]["serves"] for n in COMPUTE}  # noqa: E731
    took = wait_for(lambda: serves() == {"node1": "serving", "node2": "serving"} or serves(), bounds["back"],
                    "cluster.status saying both serve after the master is back")  # fmt: skip
    print(f"\nhealth: cluster.status says both serve {took:.1f} s after the claims did")
