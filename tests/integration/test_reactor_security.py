"""Forged events against a real master that runs this repository's reactor
(etc/master.d/saltcluster.conf): a minion fires them with ``event.send`` for
real, the reactor hands them to the orchestrations, and those refuse whatever
the master cannot confirm itself.

The master here has its own two compute minions (secnode1, secnode2), so the
package's four-minion cluster is left alone.  Nothing here runs a real join
(a highstate would install packages on this machine): both minions are
recorded as joined first, as orch.join records them."""

import json
import pathlib
import time

import pytest
import salt.utils.yaml

from tests.conftest import REPO
from tests.integration.conftest import published_mine, running_minions

MINIONS = ("secnode1", "secnode2")
BOOT_ID = "/proc/sys/kernel/random/boot_id"
MASTER_KEYS = ("presence_events", "reactor", "zmq_heartbeat_ivl", "zmq_heartbeat_timeout", "loop_interval")


@pytest.fixture(scope="module")
def sec_root(tmp_path_factory):
    return tmp_path_factory.mktemp("sec")


@pytest.fixture(scope="module")
def sec_pillar_root(pillar_root, sec_root):
    """The package's pillar, plus the bootstrap marker's setting
    (saltcluster:network:join_marker), which orch.join reads from the
    master's pillar: absent until the fixture below says the cluster is
    bootstrapped."""
    root = sec_root / "pillar"
    root.mkdir()
    for sls in pillar_root.glob("*.sls"):
        (root / sls.name).write_text(sls.read_text())
    (root / "top.sls").write_text((pillar_root / "top.sls").read_text() + "    - sec\n")
    (root / "sec.sls").write_text(
        json.dumps({"saltcluster": {"network": {"join_marker": str(sec_root / "bootstrapped")}}})
    )
    return root


@pytest.fixture(scope="module")
def sec_master(salt_factories, sec_pillar_root):
    conf = salt.utils.yaml.safe_load((REPO / "etc/master.d/saltcluster.conf").read_text())
    overrides = {key: conf[key] for key in MASTER_KEYS}
    overrides.update(
        file_roots={"base": [str(REPO / "salt")]},
        pillar_roots={"base": [str(sec_pillar_root), str(REPO / "pillar")]},
        enable_fqdns_grains=False,
    )
    factory = salt_factories.salt_master_daemon("sec-master", overrides=overrides)
    with factory.started():
        yield factory


@pytest.fixture(scope="module")
def sec_minions(sec_master, scratch):
    for mid in MINIONS:
        (scratch / mid).mkdir(exist_ok=True)
        (scratch / mid / "hosts").write_text("127.0.0.1 localhost\n")
    with running_minions(sec_master, {mid: ["compute"] for mid in MINIONS}, start_event_grains=["roles"]) as factories:
        yield factories


@pytest.fixture(scope="module")
def sec_cli(sec_master):
    return sec_master.salt_cli(timeout=120)


@pytest.fixture(scope="module")
def sec_run(sec_master):
    return sec_master.salt_run_cli(timeout=120)


def identity(cli, minion):
    """The minion's running salt-minion as orch.join identifies it."""
    pid = cli.run("grains.get", "pid", minion_tgt=minion).data
    boot = cli.run("file.read", BOOT_ID, minion_tgt=minion).data
    assert isinstance(pid, int) and isinstance(boot, str), (pid, boot)
    return f"{boot.strip()} {pid}"


@pytest.fixture(scope="module")
def joined(sec_master, sec_minions, sec_cli, sec_run, sec_root):
    """Membership in the mine (the minions' start-up mine run), modules
    synced, both minions recorded as joined (what a completed orch.join
    leaves on the master), then the join marker: from here on the reactor
    acts on start events."""
    published_mine(sec_run, list(MINIONS))
    ret = sec_cli.run("saltutil.sync_all", minion_tgt="*")
    assert ret.returncode == 0 and sorted(ret.data) == list(MINIONS), ret
    # a member claims its health once its modules are synced (its health
    # schedule): the orchestrations' membership runs go only where it did
    ret = sec_cli.run("mine.send", "saltcluster_health", "mine_function=cluster_health.claim", minion_tgt="*")
    assert ret.returncode == 0, ret
    # the orchestrations' cluster_orch state, as the master's highstate syncs it
    ret = sec_run.run("saltutil.sync_states")
    assert ret.returncode == 0 and "states.cluster_orch" in ret.data, ret
    records = sec_master_state_dir(sec_master) / "joined"
    records.mkdir(parents=True, exist_ok=True)
    for mid in MINIONS:
        (records / mid).write_text(identity(sec_cli, mid) + "\n")
    (sec_root / "bootstrapped").write_text("bootstrapped\n")
    return sec_minions


def sec_master_state_dir(master):
    return pathlib.Path(master.config["cachedir"]) / "saltcluster"


def orchestrations(master, after, mods, wait=60, pillar=None):
    """The returns of the orchestrations of ``mods`` (with ``pillar``, if
    given) that the reactor started after ``after``, waiting up to ``wait``
    seconds for the first one."""
    deadline = time.time() + wait
    while True:
        found = [
            ev.data
            for ev in master.event_listener.get_events([(master.id, "salt/run/*/ret")], after_time=after)
            if ev.data.get("fun") == "runner.state.orchestrate"
            and ev.data["fun_args"][0].get("mods") == mods
            and pillar in (None, ev.data["fun_args"][0].get("pillar"))
        ]
        if found or time.time() > deadline:
            return found
        time.sleep(0.5)


def states_of(orch_ret):
    ret = orch_ret["return"]
    (by_master,) = ret["data"].values()
    return {key.split("_|-")[1]: value for key, value in by_master.items()}


def forge(minion, tag, preload):
    """`salt-call event.send TAG preload=...` on ``minion``, for real."""
    ret = minion.salt_call_cli(timeout=60).run("event.send", tag, "preload=" + json.dumps(preload))
    assert ret.returncode == 0 and ret.data is True, ret


def mine_of(sec_run, minion):
    ret = sec_run.run("cache.mine", tgt=minion, tgt_type="list")
    assert ret.returncode == 0, ret
    return ret.data.get(minion)


@pytest.mark.parametrize(
    "preload",
    [
        # the master adds secnode2's id and cmd; `lost` sits at the top level
        {"lost": ["secnode1"]},
        # the `events` form: the data is entirely the sender's
        {"events": [{"tag": "salt/presence/change", "data": {"new": [], "lost": ["secnode1"]}}]},
    ],
    ids=["preload", "events"],
)
def test_forged_presence_loss_evicts_nobody(sec_master, joined, sec_run, preload):
    assert mine_of(sec_run, "secnode1")
    after = time.time()
    forge(joined["secnode2"], "salt/presence/change", preload)
    found = orchestrations(sec_master, after, "orch.leave", wait=20 if "lost" in preload else 60)
    for orch in found:  # the reactor may drop it already; any orchestration must refuse
        states = states_of(orch)
        assert set(states) == {"saltcluster-orch-leave-refused"}, states
        assert "secnode1" in states["saltcluster-orch-leave-refused"]["comment"]
    if "events" in preload:
        assert found, "the events form reaches orch.leave: its check is what stops it"
    assert mine_of(sec_run, "secnode1")


def test_forged_loss_passed_straight_to_the_orchestration_evicts_nobody(joined, sec_run, sec_master):
    """What a lab test does with `salt-run state.orch orch.leave pillar=...`."""
    pillar = {"saltcluster_gone": ["secnode1", "secnode2"], "saltcluster_leave_event": "presence"}
    ret = sec_run.run("state.orch", "orch.leave", pillar=json.dumps(pillar))
    assert ret.returncode == 0, ret
    states = states_of({"return": ret.data})
    assert set(states) == {"saltcluster-orch-leave-refused"}, states
    assert mine_of(sec_run, "secnode1") and mine_of(sec_run, "secnode2")


def test_key_event_sent_by_a_minion_evicts_nobody(joined, sec_run, sec_master):
    after = time.time()
    forge(joined["secnode2"], "salt/key", {"act": "delete"})
    assert orchestrations(sec_master, after, "orch.leave", wait=10) == []
    pillar = {"saltcluster_gone": ["secnode2"], "saltcluster_leave_event": "key"}
    ret = sec_run.run("state.orch", "orch.leave", pillar=json.dumps(pillar))
    states = states_of({"return": ret.data})
    assert set(states) == {"saltcluster-orch-leave-refused"} and "still accepted" in str(states), states


def highstates_of(master, after, minion):
    return [
        ev
        for ev in master.event_listener.get_events([(master.id, "salt/job/*/new")], after_time=after)
        if ev.data.get("fun") in ("state.highstate", "state.apply", "state.sls") and minion in ev.data.get("minions", [])
    ]


def test_replayed_start_of_a_joined_member_does_not_join_it_again(sec_master, joined):
    after = time.time()
    start = {"id": "secnode1", "cmd": "_minion_event", "grains": {"roles": ["compute"]}}
    for _ in range(3):
        forge(joined["secnode2"], "salt/minion/secnode1/start", {"events": [{"tag": "salt/minion/secnode1/start", "data": start}]})
    found = orchestrations(sec_master, after, "orch.join")
    assert found
    time.sleep(3)
    found = orchestrations(sec_master, after, "orch.join", wait=0)
    for orch in found:
        states = states_of(orch)
        assert set(states) == {"saltcluster-orch-join-refused"}, states
        assert "already joined" in states["saltcluster-orch-join-refused"]["comment"]
    assert highstates_of(sec_master, after, "secnode1") == []


def test_forged_reconnect_of_a_member_does_not_join_it_again(sec_master, joined):
    """secnode2 fires secnode1's start without grains (what every member's
    reconnect to a restarted master looks like): orch.join finds secnode1's
    entry in the mine and stops there, without asking secnode1 anything."""
    after = time.time()
    tag = "salt/minion/secnode1/start"
    forge(joined["secnode2"], tag, {"events": [{"tag": tag, "data": {"id": "secnode1", "cmd": "_minion_event"}}]})
    pillar = {"saltcluster_join": "secnode1", "saltcluster_join_event": "reconnect"}
    found = orchestrations(sec_master, after, "orch.join", pillar=pillar)
    assert found
    for orch in found:
        states = states_of(orch)
        assert set(states) == {"saltcluster-orch-join-refused"}, states
        assert "a reconnect of a member" in states["saltcluster-orch-join-refused"]["comment"]
    assert highstates_of(sec_master, after, "secnode1") == []


def test_restarted_member_gets_the_whole_join(sec_master, joined, sec_run, sec_cli):
    """secnode1's record names an earlier salt-minion (pid 1): its start is a
    real one, and the whole join renders, lock to record (shown, not run: a
    highstate would install packages on this machine)."""
    record = sec_master_state_dir(sec_master) / "joined" / "secnode1"
    saved = record.read_text()
    record.write_text(saved.split()[0] + " 1\n")
    try:
        ret = sec_run.run("state.orchestrate_show_sls", "orch.join", pillar=json.dumps({"saltcluster_join": "secnode1"}))
    finally:
        record.write_text(saved)
    assert ret.returncode == 0, ret
    (high,) = ret.data.values()
    assert isinstance(high, dict), high
    assert set(high) == {
        "saltcluster-orch-join-file-directory-state", "saltcluster-orch-join-lock",
        "saltcluster-orch-join-mine-update",
        "saltcluster-orch-join-nfs-export", "saltcluster-orch-join-node-highstate",
        "saltcluster-orch-join-node-health", "saltcluster-orch-join-node-health-failed",
        "saltcluster-orch-join-membership", "saltcluster-orch-join-record",
        "saltcluster-orch-join-unlock", "saltcluster-orch-join-unlock-after-failure",
    }  # fmt: skip
    contents = next(a["contents"] for a in high["saltcluster-orch-join-record"]["file"] if isinstance(a, dict) and "contents" in a)
    assert contents == saved.strip() == identity(sec_cli, "secnode1")


def test_start_event_with_another_minions_tag_does_nothing(sec_master, joined):
    after = time.time()
    forge(joined["secnode2"], "salt/minion/secnode1/start", {"grains": {"roles": ["compute"]}})
    assert orchestrations(sec_master, after, "orch.join", wait=8) == []


def test_start_of_a_minion_without_an_accepted_key_does_nothing(sec_master, joined, sec_run):
    after = time.time()
    start = {"id": "rogue", "cmd": "_minion_event", "grains": {"roles": ["compute"]}}
    forge(joined["secnode2"], "salt/minion/rogue/start", {"events": [{"tag": "salt/minion/rogue/start", "data": start}]})
    assert orchestrations(sec_master, after, "orch.join", wait=8) == []  # the reactor drops it
    ret = sec_run.run("state.orch", "orch.join", pillar=json.dumps({"saltcluster_join": "rogue"}))
    states = states_of({"return": ret.data})
    assert set(states) == {"saltcluster-orch-join-refused"} and "no accepted key" in str(states), states


def test_deleted_key_is_a_leave(sec_master, joined, sec_run, scratch):
    """Last: the real salt/key event of `salt-key -d` evicts secnode2, and its
    join record goes with it."""
    (scratch / "secnode1" / "hosts").write_text("127.0.0.1 localhost\n")
    # decommissioned as an operator does it: the host stops, then its key
    # goes (a running minion's scheduled mine.update could publish again
    # after the leave cleared its mine data)
    joined["secnode2"].terminate()
    after = time.time()
    ret = sec_master.salt_key_cli().run("-d", "secnode2", "-y")
    assert ret.returncode == 0, ret
    # (presence may report secnode2 lost as well: that leave finds no accepted key)
    pillar = {"saltcluster_gone": ["secnode2"], "saltcluster_leave_event": "key"}
    (orch,) = orchestrations(sec_master, after, "orch.leave", wait=120, pillar=pillar)
    states = states_of(orch)
    assert {"saltcluster-orch-leave-cache-clear-mine", "saltcluster-orch-leave-membership"} <= set(states), states
    # this test cluster has no master-role minion to re-export (cluster.nfs.server
    # would install nfs-kernel-server here): that step fails, loudly, and alone
    nfs = states.pop("saltcluster-orch-leave-nfs-export")
    assert nfs["result"] is False and nfs["comment"].startswith("No minion matches 'G@roles:master and not L@secnode2'"), nfs
    assert all(s["result"] is True for s in states.values()), states
    assert not (sec_master_state_dir(sec_master) / "joined" / "secnode2").exists()
    assert (sec_master_state_dir(sec_master) / "joined" / "secnode1").exists()
    hosts = (scratch / "secnode1" / "hosts").read_text()
    assert "127.0.0.1 secnode1" in hosts and "secnode2" not in hosts
