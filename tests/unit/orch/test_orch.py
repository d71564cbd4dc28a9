"""The join and leave orchestrations, rendered by Salt's own Jinja the way the
master renders them (runner side, master opts), against a fake master: its
key list, its presence view, its mine cache and the minions' answers.

Reactors pass on whatever an event says; these renderings are where a forged
event must stop: every eviction and every join is checked here against what
the master can confirm itself."""

import os

import pytest
import salt.config
import salt.utils.templates
import salt.utils.yaml

from tests.conftest import REPO
from tests.support.mine import mine_for, publish, published

BOOT_ID = "4f5c2a4e-0d6a-4c1e-9a43-6a1f2f0c1b7d"


class FakeMaster:
    """What the orchestration asks the master (wheel, runners, publishes) and
    its own files, kept under ``tmp_path``."""

    def __init__(self, tmp_path):
        self.root = tmp_path
        self.accepted = ["gateway", "master", "node1", "node2", "node3"]
        self.alive = ["gateway", "master", "node1", "node2"]
        # what each minion published (salt-run cache.mine): membership's entries
        self.mine = published(mine_for(["gateway", "master", "node1", "node2"]))
        self.mine["node3"] = publish(dict(mine_for(["node10"])["node10"], host="node3", addrs=["10.5.5.40"]))
        self.pids = {m: 4000 + i for i, m in enumerate(self.accepted)}
        self.missed = {}  # minion: questions it leaves unanswered before it answers
        self.wheel_ok = True
        self.answering = []  # not connected as far as presence sees, yet answers
        self.calls = []
        self.opts = salt.config.DEFAULT_MASTER_OPTS.copy()
        self.opts.update(
            cachedir=str(tmp_path / "cache"),
            pidfile=str(tmp_path / "master.pid"),
            pki_dir=str(tmp_path / "pki"),
            # as state.orchestrate renders: this tree from the master's own file_roots
            file_client="local",
            file_roots={"base": [str(REPO / "salt")]},
        )
        # the master's pillar (the orchestration's): the bootstrap marker's setting
        self.marker = tmp_path / "bootstrapped"
        self.pillar = {"saltcluster": {"network": {"join_marker": str(self.marker)}}}
        (tmp_path / "master.pid").write_text("1\n")
        os.utime(tmp_path / "master.pid", (1000, 1000))
        self.marker.write_text("x\n")

    @property
    def state_dir(self):
        return self.root / "cache" / "saltcluster"

    def identity(self, minion):
        return f"{BOOT_ID} {self.pids[minion]}"

    def record(self, minion, identity=None):
        """A join of ``minion`` completed (as the orchestration records it)."""
        path = self.state_dir / "joined" / minion
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text((identity or self.identity(minion)) + "\n")

    def lock(self, minion, mtime):
        path = self.state_dir / "joining" / minion
        path.mkdir(parents=True)
        os.utime(path, (mtime, mtime))

    # the salt functions the orchestration calls while it renders
    def wheel(self, fun, *args, **kwargs):
        self.calls.append(("wheel", fun, args))
        assert fun == "key.list" and args == ("accepted",)
        if not self.wheel_ok:
            return {"return": "Exception occurred in wheel key.list", "success": False}
        return {"fun": "wheel.key.list", "return": {"minions": list(self.accepted)}, "success": True}

    def runner(self, fun, arg=None, kwarg=None, **kwargs):
        self.calls.append(("runner", fun, kwargs))
        if fun == "manage.alived":
            return list(self.alive)
        if fun == "cache.mine":
            assert kwargs.get("tgt_type") == "list"
            return {m: self.mine[m] for m in kwargs["tgt"].split(",") if m in self.mine}
        raise AssertionError(fun)

    def cmd(self, tgt, fun, arg=(), timeout=None, tgt_type="glob", **kwargs):
        self.calls.append(("publish", tgt, fun))
        if fun == "test.ping":
            assert tgt_type == "list"
            return {m: {"ret": True, "retcode": 0} for m in tgt.split(",") if m in self.alive + self.answering}
        if tgt not in self.alive:
            return {}
        assert fun == ["grains.item", "file.read"], fun
        assert list(arg) == [["pid", "roles"], ["/proc/sys/kernel/random/boot_id"]], arg
        if self.missed.get(tgt, 0) > 0:  # a minion too busy to answer this one
            self.missed[tgt] -= 1
            return {}
        return {
            tgt: {
                "ret": {"grains.item": {"pid": self.pids[tgt], "roles": self.roles(tgt)}, "file.read": BOOT_ID + "\n"},
                "retcode": {"grains.item": 0, "file.read": 0},
            }
        }

    @staticmethod
    def roles(minion):
        """The roles grain each minion answers with."""
        return {"gateway": ["gateway"], "master": ["master"]}.get(minion, ["compute"])

    def published_to(self):
        return [c[1] for c in self.calls if c[0] == "publish"]

    def render(self, sls, pillar):
        pillar = dict(self.pillar, **pillar)

        def pillar_get(key, default=""):
            value = pillar
            for part in key.split(":"):
                if not isinstance(value, dict) or part not in value:
                    return default
                value = value[part]
            return value

        funcs = {
            "pillar.get": pillar_get,
            "saltutil.wheel": self.wheel,
            "saltutil.runner": self.runner,
            "saltutil.cmd": self.cmd,
            "file.file_exists": os.path.isfile,
            "file.directory_exists": os.path.isdir,
            "file.read": lambda path: open(path, encoding="utf-8").read(),
            "file.stats": lambda path: {"mtime": os.stat(path).st_mtime},
        }
        text = salt.utils.templates.render_jinja_tmpl(
            (REPO / "salt/orch" / sls).read_text(),
            {"salt": funcs, "opts": self.opts, "pillar": pillar, "saltenv": "base", "sls": "orch." + sls[:-4]},
        )
        return salt.utils.yaml.safe_load(text) or {}


@pytest.fixture
def master(tmp_path):
    return FakeMaster(tmp_path)


def _fun(state):
    """'salt.state' for {'salt.state': [...]} or {'salt': ['state', ...]}."""
    (key, args), *_ = [(k, v) for k, v in state.items() if not k.startswith("__")]
    if "." in key:
        return key, args
    return f"{key}.{next(a for a in args if isinstance(a, str))}", args


def _arg(args, name):
    return next(a[name] for a in args if isinstance(a, dict) and name in a)


def acting(high):
    """The states that act on minions or the master's records: everything
    but the notice of what was refused."""
    return {sid: _fun(state) for sid, state in high.items() if not sid.endswith("-refused")}


def refused(high, sid):
    state = high.get(sid)
    assert state, f"no {sid} in {sorted(high)}"
    return _arg(_fun(state)[1], "text")


# ---------------------------------------------------------------- leave


def leave(master, gone, event="presence"):
    return master.render("leave.sls", {"saltcluster_gone": gone, "saltcluster_leave_event": event})


def test_forged_loss_of_a_member_that_is_up_evicts_nobody(master):
    """node2 fired salt/presence/change saying node1 is lost: node1 is
    connected and its key accepted, so nothing changes."""
    high = leave(master, ["node1"])
    assert acting(high) == {}
    assert "node1" in refused(high, "saltcluster-orch-leave-refused")
    assert master.published_to() == []  # the master's own view, no publish


def test_real_loss_evicts_only_the_minion_the_master_lost_too(master):
    master.alive.remove("node2")
    master.record("node2")
    high = leave(master, ["node1", "node2"])
    states = acting(high)
    fun, args = states["saltcluster-orch-leave-cache-clear-mine"]
    assert fun == "salt.runner" and _arg(args, "tgt") == "node2" and _arg(args, "tgt_type") == "list"
    fun, args = states["saltcluster-orch-leave-membership"]
    assert fun == "cluster_orch.state" and _arg(args, "tgt") == "* and not L@node2"
    assert _arg(args, "skip_unsynced") is True
    fun, args = states["saltcluster-orch-leave-nfs-export"]
    assert (fun, _arg(args, "sls")) == ("cluster_orch.state", "cluster.nfs.server")
    assert _arg(args, "tgt") == "G@roles:master and not L@node2"
    fun, args = states["saltcluster-orch-leave-file-absent-joined"]
    assert fun == "file.absent" and _arg(args, "names") == [str(master.state_dir / "joined" / "node2")]
    assert "node1" in refused(high, "saltcluster-orch-leave-refused")


@pytest.mark.parametrize(
    "gone, why",
    [
        (["rogue"], "no accepted key"),  # never a member: nothing to forget
        (["node3"], "no mine data"),  # lost before, already forgotten
        (["* or node1"], "not a minion name"),
        (["node1\n"], "not a minion name"),
    ],
)
def test_losses_the_master_cannot_confirm_change_nothing(master, gone, why):
    master.mine.pop("node3")
    high = leave(master, gone)
    assert acting(high) == {}
    assert why in refused(high, "saltcluster-orch-leave-refused")


def test_loss_of_a_minion_that_still_answers_a_ping_evicts_nobody(master):
    """Presence says gone (its address is not connected, e.g. behind NAT),
    but the minion answers over its own key: it stays."""
    master.alive.remove("node2")
    master.answering.append("node2")
    high = leave(master, ["node2"])
    assert acting(high) == {}
    assert "answered a ping" in refused(high, "saltcluster-orch-leave-refused")


def test_a_replayed_loss_changes_nothing_the_second_time(master):
    master.alive.remove("node2")
    assert "saltcluster-orch-leave-cache-clear-mine" in leave(master, ["node2"])
    master.mine.pop("node2")  # what cache.clear_mine did
    assert acting(leave(master, ["node2"])) == {}


def test_an_id_listed_twice_is_evicted_once(master):
    master.alive.remove("node2")
    states = acting(leave(master, ["node2", "node2"]))
    assert _arg(states["saltcluster-orch-leave-cache-clear-mine"][1], "tgt") == "node2"
    assert len(_arg(states["saltcluster-orch-leave-file-absent-joined"][1], "names")) == 1


def test_deleted_key_evicts_the_minion(master):
    master.accepted.remove("node2")  # salt-key -d node2 (the minion may still be up)
    states = acting(leave(master, ["node2"], event="key"))
    assert _arg(states["saltcluster-orch-leave-cache-clear-mine"][1], "tgt") == "node2"


def test_key_event_for_an_accepted_key_evicts_nobody(master):
    """A minion can fire salt/key itself (the tag is blacklisted only for the
    `events` form): the key is still accepted, so it was not deleted."""
    high = leave(master, ["node2"], event="key")
    assert acting(high) == {}
    assert "still accepted" in refused(high, "saltcluster-orch-leave-refused")


@pytest.mark.parametrize("event", ["", "whatever"])
def test_unknown_leave_event_evicts_nobody(master, event):
    master.alive.remove("node2")
    assert acting(leave(master, ["node2"], event=event)) == {}


def test_unreadable_key_list_evicts_nobody(master):
    master.wheel_ok = False
    master.accepted.remove("node2")
    assert acting(leave(master, ["node2"], event="key")) == {}


def test_empty_or_bad_leave_pillar_renders_nothing_that_acts(master):
    assert acting(leave(master, [])) == {}
    assert acting(leave(master, "node2")) == {}


# ---------------------------------------------------------------- join


def join(master, minion, event=None):
    """orch.join for ``minion``; ``event`` as the reactor passes it (`start`
    or `reconnect`), or none, as an operator's `salt-run state.orch` does."""
    pillar = {"saltcluster_join": minion}
    if event is not None:
        pillar["saltcluster_join_event"] = event
    return master.render("join.sls", pillar)


JOIN_STEPS = [
    "saltcluster-orch-join-file-directory-state",
    "saltcluster-orch-join-lock",
    "saltcluster-orch-join-mine-update",
    "saltcluster-orch-join-nfs-export",
    "saltcluster-orch-join-node-highstate",
    "saltcluster-orch-join-node-health",
    "saltcluster-orch-join-node-health-failed",
    "saltcluster-orch-join-membership",
    "saltcluster-orch-join-record",
    "saltcluster-orch-join-unlock",
    "saltcluster-orch-join-unlock-after-failure",
]


def test_new_minion_joins_under_a_lock_and_is_recorded(master):
    master.alive.append("node3")
    high = join(master, "node3")
    states = acting(high)
    assert sorted(states) == sorted(JOIN_STEPS)
    lock = str(master.state_dir / "joining" / "node3")
    assert states["saltcluster-orch-join-lock"][0] == "cmd.run"
    assert _arg(states["saltcluster-orch-join-lock"][1], "name") == f"mkdir {lock}"
    # the export follows before the node's highstate mounts it
    nfs = states["saltcluster-orch-join-nfs-export"][1]
    assert states["saltcluster-orch-join-nfs-export"][0] == "cluster_orch.state"
    assert (_arg(nfs, "tgt"), _arg(nfs, "sls")) == ("G@roles:master", "cluster.nfs.server")
    highstate = states["saltcluster-orch-join-node-highstate"][1]
    assert {"cluster_orch": "saltcluster-orch-join-nfs-export"} in _arg(highstate, "require")
    assert (_arg(highstate, "tgt"), _arg(highstate, "highstate")) == ("node3", True)
    membership = states["saltcluster-orch-join-membership"]
    assert membership[0] == "cluster_orch.state" and _arg(membership[1], "skip_unsynced") is True
    # no step asks Salt's minion-side queue (it loses or deadlocks concurrent runs)
    assert not [sid for sid, (_, a) in states.items() if any(isinstance(x, dict) and "queue" in x for x in a)]
    record = states["saltcluster-orch-join-record"][1]
    assert _arg(record, "name") == str(master.state_dir / "joined" / "node3")
    assert _arg(record, "contents") == master.identity("node3")
    assert _arg(states["saltcluster-orch-join-unlock"][1], "name") == lock
    assert len(_arg(states["saltcluster-orch-join-unlock-after-failure"][1], "onfail")) >= 6


def test_the_others_learn_of_a_new_node_only_after_its_health_passed(master):
    """After its highstate the node's own checks run (cluster_health.publish
    admits it: its claim says serving from then on); the hostfile and the
    upstream on the other hosts follow only if they pass, and a failure
    ends the join saying so."""
    master.alive.append("node3")
    states = acting(join(master, "node3"))
    fun, args = states["saltcluster-orch-join-node-health"]
    assert (fun, _arg(args, "tgt"), _arg(args, "kwarg")) == ("salt.function", "node3", {"admit": True})
    assert fun == "salt.function" and _arg(args, "name") == "cluster_health.publish"
    assert {"cluster_orch": "saltcluster-orch-join-node-highstate"} in _arg(args, "require")
    membership = states["saltcluster-orch-join-membership"][1]
    assert {"salt": "saltcluster-orch-join-node-health"} in _arg(membership, "require")
    fun, args = states["saltcluster-orch-join-node-health-failed"]
    assert fun == "test.fail_without_changes"
    assert _arg(args, "onfail") == [{"salt": "saltcluster-orch-join-node-health"}]
    assert _arg(args, "comment").startswith("not adding node3 to the hostfile and the upstream: its health checks")
    assert {"salt": "saltcluster-orch-join-node-health"} in _arg(
        states["saltcluster-orch-join-unlock-after-failure"][1], "onfail"
    )


def test_replayed_start_of_a_joined_member_does_nothing(master):
    """A start event (forged, replayed, or a reconnect) for a member whose
    salt-minion has not restarted since its last join: no second join."""
    master.record("node1")
    high = join(master, "node1")
    assert acting(high) == {}
    assert "already joined" in refused(high, "saltcluster-orch-join-refused")


def test_real_restart_of_a_member_joins_it_again(master):
    master.record("node1", identity=f"{BOOT_ID} 17")  # an earlier salt-minion
    assert sorted(acting(join(master, "node1"))) == sorted(JOIN_STEPS)


def test_start_of_a_minion_without_an_accepted_key_does_nothing(master):
    high = join(master, "rogue")
    assert acting(high) == {}
    assert "no accepted key" in refused(high, "saltcluster-orch-join-refused")
    assert master.published_to() == []  # nothing is sent to an unknown id


@pytest.mark.parametrize("minion", ["node1 or *", "", "../x", "a" * 70, "node1\n"])
def test_join_of_a_bad_name_does_nothing(master, minion):
    high = join(master, minion)
    assert acting(high) == {}
    assert master.calls == []


def test_join_while_bootstrapping_does_nothing(master):
    """Until the master's first highstate wrote the marker, `salt '*'
    state.apply` is setting the cluster up: a start joins nothing."""
    master.alive.append("node3")
    os.unlink(master.marker)
    for event in ("start", "reconnect"):
        high = join(master, "node3", event)
        assert acting(high) == {} and "bootstrap" in refused(high, "saltcluster-orch-join-refused")
    assert master.calls == []


def test_bootstrap_marker_is_the_setting(master, tmp_path):
    """saltcluster:network:join_marker, as cluster.bootstrapped writes it:
    the master's pillar, else parameters/defaults.yaml."""
    master.alive.append("node3")
    moved = tmp_path / "elsewhere"
    master.pillar["saltcluster"]["network"]["join_marker"] = str(moved)
    assert "no " + str(moved) in refused(join(master, "node3"), "saltcluster-orch-join-refused")
    moved.write_text("x\n")
    assert sorted(acting(join(master, "node3"))) == sorted(JOIN_STEPS)
    defaults = salt.utils.yaml.safe_load((REPO / "salt/cluster/parameters/defaults.yaml").read_text())
    master.pillar = {}
    default = defaults["saltcluster"]["network"]["join_marker"]
    high = join(master, "node3")
    if os.path.exists(default):  # a bootstrapped master runs these tests
        assert sorted(acting(high)) == sorted(JOIN_STEPS)
    else:
        assert "no " + default in refused(high, "saltcluster-orch-join-refused")


# -- a reconnect: the start event without grains (every minion's, after a
# salt-master restart).  Whether it is a new member is the mine's to say.


def test_reconnect_of_a_member_does_nothing_and_asks_it_nothing(master):
    """node1's mine entry is there: a member coming back to a restarted
    master.  No join record needed (the base hosts were set up by a
    highstate, not a join), and no publish."""
    high = join(master, "node1", "reconnect")
    assert acting(high) == {}
    assert "a reconnect of a member" in refused(high, "saltcluster-orch-join-refused")
    assert master.published_to() == []
    assert ("runner", "cache.mine", {"tgt": "node1", "tgt_type": "list"}) in master.calls


def test_reconnect_of_a_minion_not_in_the_mine_joins_it(master):
    """Accepted, not in the mine: a new member (its first start went by
    while the master was away, or the mine forgot it)."""
    master.alive.append("node3")
    master.mine.pop("node3")
    assert sorted(acting(join(master, "node3", "reconnect"))) == sorted(JOIN_STEPS)


def _without(entries, name):
    return {k: v for k, v in entries.items() if k != name}


@pytest.mark.parametrize(
    "entries",
    [
        None,
        "node3",
        lambda e: dict(e, saltcluster_grains=dict(e["saltcluster_grains"], id="node1")),
        lambda e: dict(e, saltcluster_grains="node3"),
        lambda e: _without(e, "saltcluster_grains"),
        lambda e: _without(e, "saltcluster_addrs"),
        lambda e: _without(e, "saltcluster_host_keys"),
        lambda e: {"saltcluster_health": {"state": "serving"}},
    ],
    ids=["none", "not-a-mapping", "names-another-host", "grains-not-a-mapping", "no-grains", "no-addrs",
         "no-host-keys", "other-entry-only"],  # fmt: skip
)
def test_reconnect_with_no_member_entries_of_its_own_joins_it(master, entries):
    """Entries members() would not take for this minion's are no membership:
    a member publishes all three, its grains naming itself."""
    master.alive.append("node3")
    master.mine["node3"] = entries(master.mine["node3"]) if callable(entries) else entries
    assert sorted(acting(join(master, "node3", "reconnect"))) == sorted(JOIN_STEPS)


def test_reconnect_finishes_a_join_a_master_restart_cut_short(master):
    """node3 was published (join step mine-update) when the master stopped:
    its lock outlived that master.  Its reconnect takes the lock over and
    finishes the join."""
    master.alive.append("node3")
    master.lock("node3", mtime=500)
    states = acting(join(master, "node3", "reconnect"))
    assert sorted(states) == sorted(["saltcluster-orch-join-file-absent-stale-lock", *JOIN_STEPS])


def test_real_start_of_a_member_in_the_mine_is_still_checked_by_its_identity(master):
    """A start with grains (a reboot, maybe a fresh disk): the mine does not
    stop it; the join record does, if this salt-minion was joined."""
    assert sorted(acting(join(master, "node1", "start"))) == sorted(JOIN_STEPS)
    master.record("node1")
    assert "already joined" in refused(join(master, "node1", "start"), "saltcluster-orch-join-refused")


@pytest.mark.parametrize("event", ["", "whatever", "Reconnect"])
def test_unknown_join_event_is_a_start(master, event):
    """Anything but `reconnect` gets every check of a real start."""
    master.record("node1")
    high = join(master, "node1", event)
    assert "already joined" in refused(high, "saltcluster-orch-join-refused")


def test_join_of_a_minion_that_does_not_answer_does_nothing(master):
    high = join(master, "node3")  # accepted, not connected
    assert acting(high) == {} and "did not answer 3 questions of 30 s" in refused(high, "saltcluster-orch-join-refused")
    assert master.published_to() == ["node3"] * 3


def test_join_of_a_minion_that_misses_its_first_questions_goes_on(master):
    """A minion just started on a busy host misses two questions: the third
    answer decides, and the join runs."""
    master.missed["node1"] = 2
    assert sorted(acting(join(master, "node1", "start"))) == sorted(JOIN_STEPS)
    assert master.published_to() == ["node1"] * 3
    master.calls.clear()
    join(master, "node2", "start")
    assert master.published_to() == ["node2"]  # a first answer is the only question


def test_second_join_while_one_runs_does_nothing(master):
    master.lock("node2", mtime=2000)  # taken after the master started (mtime 1000)
    high = join(master, "node2")
    assert acting(high) == {} and "in progress" in refused(high, "saltcluster-orch-join-refused")


def test_lock_left_by_an_earlier_master_run_is_taken_over(master):
    master.lock("node2", mtime=500)  # the master restarted in the middle of that join
    states = acting(join(master, "node2"))
    assert sorted(states) == sorted(["saltcluster-orch-join-file-absent-stale-lock", *JOIN_STEPS])


def test_unreadable_key_list_joins_nobody(master):
    master.wheel_ok = False
    assert acting(join(master, "node2")) == {}


# ---------------------------------------------------------------- health


def claim(state, since=1795000000):
    return {"state": state, "since": since, "passes": 0, "fails": 3, "failed": {"web_whoami": "refused"}}


def health(master, node):
    return master.render("health.sls", {"saltcluster_health_node": node})


def test_a_flip_reapplies_membership_on_the_master_and_the_gateway(master):
    master.mine["node2"]["saltcluster_health"] = claim("drained")
    states = acting(health(master, "node2"))
    fun, args = states["saltcluster-orch-health-membership"]
    assert fun == "cluster_orch.state" and _arg(args, "sls") == "cluster.membership"
    assert (_arg(args, "tgt"), _arg(args, "tgt_type")) == ("G@roles:master or G@roles:gateway", "compound")
    assert _arg(args, "skip_unsynced") is True
    assert 0 < _arg(args, "timeout") <= 600 and _arg(args, "lock_timeout") <= 600  # bounded
    fun, args = states["saltcluster-orch-health-record"]
    assert fun == "file.managed" and _arg(args, "name") == str(master.state_dir / "health" / "node2")
    assert _arg(args, "contents") == "drained since 1795000000"
    assert {"cluster_orch": "saltcluster-orch-health-membership"} in _arg(args, "require")
    # decided from the master's own copy of the mine; nothing is asked of the node
    assert ("runner", "cache.mine", {"tgt": "node2", "tgt_type": "list"}) in master.calls
    assert master.published_to() == []


def test_the_same_claim_twice_changes_nothing(master):
    """A replayed or forged event, or a second one for one flip: the record
    says this claim was applied already."""
    master.mine["node2"]["saltcluster_health"] = claim("drained")
    record = master.state_dir / "health" / "node2"
    record.parent.mkdir(parents=True)
    record.write_text("drained since 1795000000\n")
    high = health(master, "node2")
    assert acting(high) == {}
    assert "is the one the last health orchestration applied" in refused(high, "saltcluster-orch-health-refused")
    master.mine["node2"]["saltcluster_health"] = claim("serving", since=1795000100)  # it came back
    assert "saltcluster-orch-health-membership" in acting(health(master, "node2"))


@pytest.mark.parametrize(
    "node, change, why",
    [
        ("node1 or *", None, "not a minion name"),
        ("node1\n", None, "not a minion name"),
        ("rogue", None, "no accepted key"),
        ("node1", None, "no health claim of its own"),  # a forged event: node1 claims nothing
        ("node1", "boss", "no health claim of its own"),
        ("node1", ["drained"], "no health claim of its own"),
    ],
)
def test_events_the_master_cannot_follow_change_nothing(master, node, change, why):
    if change is not None:
        master.mine["node1"]["saltcluster_health"] = {"state": change} if isinstance(change, str) else change
    high = health(master, node)
    assert acting(high) == {}
    assert why in refused(high, "saltcluster-orch-health-refused")
    assert master.published_to() == []


def test_a_forged_event_for_another_node_follows_that_nodes_own_claim(master):
    """node2 fires node1's health event: the orchestration reads node1's own
    claim (serving, applied already), never node2's word."""
    master.mine["node1"]["saltcluster_health"] = claim("serving")
    master.mine["node2"]["saltcluster_health"] = {"state": "drained", "host": "node1"}
    record = master.state_dir / "health" / "node1"
    record.parent.mkdir(parents=True)
    record.write_text("serving since 1795000000")
    assert acting(health(master, "node1")) == {}


def test_unreadable_key_list_follows_nothing(master):
    master.wheel_ok = False
    master.mine["node2"]["saltcluster_health"] = claim("drained")
    assert acting(health(master, "node2")) == {}
