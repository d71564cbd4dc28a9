"""Health-gated membership through a real master that runs this repository's
health reactor (etc/master.d/saltcluster.conf): a compute node's own
cluster_health.publish drains it for real (its checks fail here: the
scratch home is no NFS mount), fires saltcluster/health/<id>/changed, the
reactor starts orch.health, and the master's hostfile (a real state run)
and upstream follow the node's claim in the mine; the last nodes are never
drained away; a forged event changes nothing.

A cluster of its own (hmaster, hnode1, hnode2), so the package's four-minion
cluster is left alone.  No gateway minion: cluster.membership on a gateway
runs nginx's service state, which would start this machine's nginx; the
upstream is read as the gateway's render reads it (cluster.upstream)."""

import fcntl
import json
import os
import pathlib
import time

import pytest
import salt.utils.yaml

from tests.conftest import REPO
from tests.integration.conftest import TEST_USER, ok, published_mine, running_minions
from tests.integration.test_reactor_security import forge, orchestrations, states_of

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the MPI user writes the hostfile as itself")

HOSTS = {"hmaster": ["master"], "hnode1": ["compute"], "hnode2": ["compute"]}
COMPUTE = ["hnode1", "hnode2"]
ORCH_WAIT = 120  # seconds from the event to orch.health's return


@pytest.fixture(scope="module")
def health_root(tmp_path_factory, scratch, mpi_user):
    """The hostfile's directory, the MPI user's own (it writes the file as
    itself), apart from the package cluster's."""
    root = scratch / "health-mpi"
    root.mkdir(exist_ok=True)
    os.chown(root, TEST_USER["uid"], TEST_USER["gid"])
    for minion in HOSTS:
        (scratch / minion).mkdir(exist_ok=True)
        (scratch / minion / "hosts").write_text("127.0.0.1 localhost\n")
    return root


@pytest.fixture(scope="module")
def health_pillar_root(pillar_root, health_root, tmp_path_factory):
    """The package's pillar, with this cluster's hostfile path."""
    root = tmp_path_factory.mktemp("health-pillar")
    for sls in pillar_root.glob("*.sls"):
        (root / sls.name).write_text(sls.read_text())
    (root / "top.sls").write_text((pillar_root / "top.sls").read_text() + "    - hcluster\n")
    (root / "hcluster.sls").write_text(json.dumps({"saltcluster": {"mpi": {"hostfile": str(health_root / "hosts")}}}))
    return root


@pytest.fixture(scope="module")
def health_master(salt_factories, health_pillar_root):
    conf = salt.utils.yaml.safe_load((REPO / "etc/master.d/saltcluster.conf").read_text())
    reactor = [entry for entry in conf["reactor"] if "saltcluster/health/*/changed" in entry]
    assert reactor, conf["reactor"]
    factory = salt_factories.salt_master_daemon(
        "health-master",
        overrides={
            "reactor": reactor,
            "file_roots": {"base": [str(REPO / "salt")]},
            "pillar_roots": {"base": [str(health_pillar_root), str(REPO / "pillar")]},
            "enable_fqdns_grains": False,
        },
    )
    with factory.started():
        yield factory


@pytest.fixture(scope="module")
def health_minions(health_master):
    with running_minions(health_master, HOSTS) as factories:
        yield factories


@pytest.fixture(scope="module")
def hcli(health_master):
    return health_master.salt_cli(timeout=180)


@pytest.fixture(scope="module")
def hrun(health_master):
    return health_master.salt_run_cli(timeout=120)


def record_path(minion):
    return pathlib.Path(minion.config["cachedir"]) / "saltcluster" / "health.json"


def claim_serving(minion, hcli, name, state="serving"):
    """``name`` serves (or is drained), as if its checks had said so: its
    record says so, and it sends that claim to the mine itself."""
    path = record_path(minion)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"state": state, "passes": 2, "fails": 0, "since": time.time(), "failed": {}}))
    ret = hcli.run("mine.send", "saltcluster_health", "mine_function=cluster_health.claim", minion_tgt=name)
    assert ret.returncode == 0 and ret.data is True, ret


def hostfile(health_root):
    return [line for line in (health_root / "hosts").read_text().splitlines() if not line.startswith("#")]


def claims(hrun):
    ret = hrun.run("cache.mine", tgt=",".join(HOSTS), tgt_type="list")
    return {m: (e.get("saltcluster_health") or {}).get("state") for m, e in ret.data.items()}


@pytest.fixture(scope="module")
def cluster(health_minions, hcli, hrun, health_root):
    """Membership published at start, modules synced, both nodes serving,
    and the hostfile written once by the master's own state run.  The
    salt-master gets the orchestrations' cluster_orch state, as the
    master's highstate gives it (master_extmods.synced)."""
    published_mine(hrun, list(HOSTS))
    ret = hcli.run("saltutil.sync_all", minion_tgt="*")
    assert ret.returncode == 0 and sorted(ret.data) == sorted(HOSTS), ret
    ret = hrun.run("saltutil.sync_states")
    assert ret.returncode == 0 and "states.cluster_orch" in ret.data, ret
    # every host publishes a claim once its modules are synced (the master's
    # too, shown by cluster.status): orch.health's membership run counts a
    # host without one as not synced yet (cluster_orch skip_unsynced)
    for name in HOSTS:
        claim_serving(health_minions[name], hcli, name)
    ok(hcli.run("state.apply", "cluster.membership", minion_tgt="hmaster"))
    assert [line.split(":")[0] for line in hostfile(health_root)] == COMPUTE
    return health_minions


def drain(hcli, name):
    """``name`` runs its own publish until its failed checks drain it:
    fail_after runs (health:fail_after, 3 by default)."""
    for _ in range(3):
        ret = hcli.run("cluster_health.publish", minion_tgt=name)
        assert isinstance(ret.data, dict), ret
    assert ret.data["state"] == "drained" and ret.data["changed"] is True, ret.data
    assert ret.data["failed"].get("nfs_home"), ret.data  # the scratch home is no NFS mount
    return ret.data


def test_a_node_that_drains_itself_leaves_the_hostfile_and_the_upstream(health_master, cluster, hcli, hrun,
                                                                       health_root, scratch):  # fmt: skip
    after = time.time()
    drain(hcli, "hnode2")
    assert claims(hrun)["hnode2"] == "drained"
    (orch,) = orchestrations(health_master, after, "orch.health", wait=ORCH_WAIT,
                             pillar={"saltcluster_health_node": "hnode2"})  # fmt: skip
    states = states_of(orch)
    assert set(states) == {
        "saltcluster-orch-health-membership", "saltcluster-orch-health-file-directory",
        "saltcluster-orch-health-record",
    }, states  # fmt: skip
    assert all(s["result"] is True for s in states.values()), states
    assert [line.split(":")[0] for line in hostfile(health_root)] == ["hnode1"]
    ret = hcli.run("cluster.upstream", minion_tgt="hmaster")
    assert [b["name"] for b in ret.data] == ["hnode1"], ret
    # still a member: /etc/hosts keeps it, so it can come back
    assert "127.0.0.1 hnode2" in (scratch / "hmaster" / "hosts").read_text()


def test_a_forged_event_for_another_node_changes_nothing(health_master, cluster, hcli, health_root):
    """hnode2 fires hnode1's health event, both ways: the reactor drops the
    one that carries hnode2's own id; the other reaches orch.health, which
    follows hnode1's own claim (serving): hnode1 stays, hnode2 stays out.
    The same event again is refused outright."""
    after = time.time()
    tag = "saltcluster/health/hnode1/changed"
    forge(cluster["hnode2"], tag, {"state": "drained"})
    assert orchestrations(health_master, after, "orch.health", wait=10,
                          pillar={"saltcluster_health_node": "hnode1"}) == []  # fmt: skip
    event = {"tag": tag, "data": {"id": "hnode1", "cmd": "_minion_event", "data": {"state": "drained"}}}
    for _ in range(2):
        after = time.time()
        forge(cluster["hnode2"], tag, {"events": [event]})
        (orch,) = orchestrations(health_master, after, "orch.health", wait=ORCH_WAIT,
                                 pillar={"saltcluster_health_node": "hnode1"})  # fmt: skip
        assert [line.split(":")[0] for line in hostfile(health_root)] == ["hnode1"]
    states = states_of(orch)
    assert set(states) == {"saltcluster-orch-health-refused"}, states
    assert "is the one the last health orchestration applied" in states["saltcluster-orch-health-refused"]["comment"]


def test_draining_the_last_serving_node_keeps_them_all(health_master, cluster, hcli, health_root):
    after = time.time()
    drain(hcli, "hnode1")
    (orch,) = orchestrations(health_master, after, "orch.health", wait=ORCH_WAIT,
                             pillar={"saltcluster_health_node": "hnode1"})  # fmt: skip
    assert [line.split(":")[0] for line in hostfile(health_root)] == COMPUTE
    ret = hcli.run("cluster.upstream", minion_tgt="hmaster")
    assert [b["name"] for b in ret.data] == COMPUTE, ret
    # and the membership run says why
    membership = states_of(orch)["saltcluster-orch-health-membership"]
    run = membership["changes"]["ret"]["hmaster"]
    (notice,) = [s for key, s in run.items() if "all-kept" in key]
    assert notice["comment"].startswith("hostfile: no compute member serves (hnode1 drained, hnode2 drained)")


def test_a_node_back_in_health_comes_back(health_master, cluster, hcli, hrun, health_root):
    """Its claim says serving again (as its passes would make it), and its
    own event brings it back."""
    for name in COMPUTE:
        after = time.time()
        claim_serving(cluster[name], hcli, name)
        ret = hcli.run("event.send", f"saltcluster/health/{name}/changed", minion_tgt=name)
        assert ret.returncode == 0, ret
        assert orchestrations(health_master, after, "orch.health", wait=ORCH_WAIT,
                              pillar={"saltcluster_health_node": name})  # fmt: skip
    assert claims(hrun) == {"hmaster": "serving", "hnode1": "serving", "hnode2": "serving"}
    assert [line.split(":")[0] for line in hostfile(health_root)] == COMPUTE


def test_two_flips_held_up_on_the_master_both_complete(health_master, cluster, hcli, hrun, health_root):
    """Two orch.health runs meet on hmaster: this test holds hmaster's state
    lock (cluster_orch's, on the master) while both nodes flip, so both
    membership runs wait for it at once; let go, each runs in turn and
    none is lost (Salt's queue: true answered the second one 'queued' and
    its step failed; queue: <n> left both waiting for ever)."""
    lock = pathlib.Path(health_master.config["cachedir"]) / "saltcluster" / "state-locks" / "hmaster"
    lock.parent.mkdir(parents=True, exist_ok=True)
    after = time.time()
    with open(lock, "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        held.seek(0)
        held.truncate()
        held.write("the test\n")
        held.flush()
        for name in COMPUTE:
            claim_serving(cluster[name], hcli, name, state="drained")
            ret = hcli.run("--async", "event.send", f"saltcluster/health/{name}/changed", minion_tgt=name)
            assert ret.returncode == 0, ret
        time.sleep(15)
        # nothing has run on hmaster while the lock is held
        assert orchestrations(health_master, after, "orch.health", wait=0) == []
        assert [line.split(":")[0] for line in hostfile(health_root)] == COMPUTE
        fcntl.flock(held, fcntl.LOCK_UN)
    done = {}
    deadline = time.time() + 2 * ORCH_WAIT
    while len(done) < 2 and time.time() < deadline:
        for name in COMPUTE:
            found = orchestrations(health_master, after, "orch.health", wait=0, pillar={"saltcluster_health_node": name})
            if found:
                done[name] = states_of(found[-1])
        time.sleep(1)
    assert sorted(done) == COMPUTE, done
    for name, states in done.items():
        membership = states["saltcluster-orch-health-membership"]
        assert membership["result"] is True, (name, membership)
        assert all(s["result"] is True for s in states.values()), (name, states)
    # both drained: the last serving nodes are kept, and the master says why
    assert [line.split(":")[0] for line in hostfile(health_root)] == COMPUTE
