"""cluster_orch.state: one state run at a time per minion across the
master's orchestrations (locks taken in order, bounded, released whatever
happens, published to exactly the minions locked), Salt's minion-side queue
never asked, and a minion whose first highstate has not synced the modules
left out of membership runs unless that highstate runs.  master_extmods:
the salt-master's runners and states follow the served tree."""

import fcntl
import os
import threading
import time

import cluster_orch
import master_extmods
import pytest


class FakeSaltState:
    """salt.state as the orchestration's loader has it: records each call,
    and can be held inside a call."""

    def __init__(self):
        self.calls = []
        self.inside = []
        self.overlap = False
        self.hold = threading.Event()
        self.hold.set()
        self.entered = threading.Event()

    def __call__(self, name, tgt, tgt_type="glob", **kwargs):
        if self.inside:
            self.overlap = True
        self.inside.append(name)
        self.entered.set()
        self.calls.append({"name": name, "tgt": tgt, "tgt_type": tgt_type, **kwargs})
        self.hold.wait(10)
        self.inside.remove(name)
        return {"name": name, "changes": {}, "result": True, "comment": f"ran on {tgt}"}


@pytest.fixture
def salt_state():
    return FakeSaltState()


class FakeMine:
    """The master's copy of the mine (salt-run cache.mine): who published a
    health claim."""

    def __init__(self):
        self.claims = {m: {"saltcluster_health": {"state": "serving"}} for m in ["gateway", "master", "node1", "node2"]}
        self.asked = []

    def runner(self, fun, tgt, tgt_type):
        assert (fun, tgt_type) == ("cache.mine", "list")
        self.asked.append(tgt)
        return {m: self.claims[m] for m in tgt.split(",") if m in self.claims}


@pytest.fixture
def mine():
    return FakeMine()


@pytest.fixture
def configure_loader_modules(tmp_path, salt_state, mine):
    return {
        cluster_orch: {
            "__opts__": {"__role": "master", "cachedir": str(tmp_path), "test": False},
            "__states__": {"salt.state": salt_state},
            "__salt__": {"saltutil.runner": mine.runner},
        },
        master_extmods: {"__opts__": {"test": False, "conf_file": str(tmp_path / "etc" / "minion")}},
    }


ACCEPTED = ["gateway", "master", "node1", "node2", "node3", "node4"]


@pytest.fixture(autouse=True)
def targets(monkeypatch):
    """The master's key list, matched as CkMinions would for these targets."""

    def match(tgt, tgt_type):
        if tgt_type == "list":
            return sorted(tgt.split(",") if isinstance(tgt, str) else tgt)
        if tgt == "* and not node3":
            return [m for m in ACCEPTED if m != "node3"]
        if tgt == "G@roles:master":
            return ["master"]
        return [m for m in ACCEPTED if m == tgt]

    monkeypatch.setattr(cluster_orch, "_targets", match)


def held(tmp_path, minion):
    """Another orchestration's lock on minion: an open, flocked fd."""
    path = tmp_path / "saltcluster" / "state-locks" / minion
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("pid 77: saltcluster-orch-join-membership\n")
    fd = os.open(path, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def free(tmp_path, minion):
    fd = os.open(tmp_path / "saltcluster" / "state-locks" / minion, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_state_runs_on_one_minion_wait_for_each_other(tmp_path, salt_state):
    salt_state.hold.clear()
    first = threading.Thread(target=cluster_orch.state, args=("first", "master"), kwargs={"sls": "cluster.nfs.server"})
    first.start()
    assert salt_state.entered.wait(5)
    done = []
    second = threading.Thread(
        target=lambda: done.append(cluster_orch.state("second", "G@roles:master", tgt_type="compound", sls="x"))
    )
    second.start()
    time.sleep(1.5)
    # the second run has not reached the minion while the first one runs there
    assert [c["name"] for c in salt_state.calls] == ["first"]
    salt_state.hold.set()
    first.join(5)
    second.join(5)
    assert [c["name"] for c in salt_state.calls] == ["first", "second"]
    assert not salt_state.overlap and done[0]["result"] is True
    assert free(tmp_path, "master")


def test_salt_queue_is_never_asked_for(salt_state):
    cluster_orch.state("step", "node1", sls="cluster.membership", queue=True, timeout=60)
    (call,) = salt_state.calls
    assert call["queue"] is False and call["timeout"] == 60 and call["sls"] == "cluster.membership"


def test_a_lock_held_past_the_bound_fails_the_step_naming_minion_and_holder(tmp_path, salt_state):
    fd = held(tmp_path, "node2")
    try:
        ret = cluster_orch.state("step", "node1,node2", tgt_type="list", sls="x", lock_timeout=0.6)
    finally:
        os.close(fd)
    assert ret["result"] is False and salt_state.calls == []
    assert "node2" in ret["comment"] and "saltcluster-orch-join-membership" in ret["comment"]
    # the lock it had taken first (sorted order: node1) is given back
    assert free(tmp_path, "node1")


def test_other_minions_are_not_held_up(tmp_path, salt_state):
    fd = held(tmp_path, "node2")
    try:
        ret = cluster_orch.state("step", "node1", sls="x", lock_timeout=0.5)
    finally:
        os.close(fd)
    assert ret["result"] is True and [c["tgt"] for c in salt_state.calls] == [["node1"]]


def test_locks_are_released_when_the_run_raises(tmp_path, salt_state, monkeypatch):
    def boom(**kwargs):
        raise RuntimeError("master went away")

    monkeypatch.setitem(cluster_orch.__states__, "salt.state", boom)
    with pytest.raises(RuntimeError):
        cluster_orch.state("step", "node1", sls="x")
    assert free(tmp_path, "node1")


def test_the_run_goes_to_exactly_the_minions_locked(salt_state):
    """A list target, not the expression again: a minion accepted while the
    step waited gets no run without its lock."""
    cluster_orch.state("membership", "* and not node3", tgt_type="compound", sls="m")
    (call,) = salt_state.calls
    assert (call["tgt"], call["tgt_type"]) == (["gateway", "master", "node1", "node2", "node4"], "list")


def test_membership_leaves_out_a_minion_never_synced_that_runs_nothing(tmp_path, salt_state, mine):
    # node4 has published no health claim: its first highstate has not got that far
    ret = cluster_orch.state("membership", "* and not node3", tgt_type="compound", sls="m", skip_unsynced=True)
    (call,) = salt_state.calls
    assert call["tgt"] == ["gateway", "master", "node1", "node2"]
    assert ret["result"] is True and "Left out, their first highstate comes later: node4" in ret["comment"]
    assert free(tmp_path, "node4")


def test_membership_waits_for_a_never_synced_minion_whose_highstate_runs(tmp_path, salt_state, mine):
    fd = held(tmp_path, "node4")  # its first highstate holds it
    try:
        ret = cluster_orch.state(
            "membership", "* and not node3", tgt_type="compound", sls="m", skip_unsynced=True, lock_timeout=0.6
        )
    finally:
        os.close(fd)
    assert ret["result"] is False and "node4" in ret["comment"] and salt_state.calls == []
    # its claim is published by then: it gets the run
    mine.claims["node4"] = {"saltcluster_health": {"state": "joining"}}
    ret = cluster_orch.state("membership", "* and not node3", tgt_type="compound", sls="m", skip_unsynced=True)
    assert ret["result"] is True and "node4" in salt_state.calls[0]["tgt"]


def test_a_member_is_never_left_out(tmp_path, salt_state, mine):
    """node2 is synced (its claim is in the mine): a join of its own that
    runs or failed changes nothing, it gets every membership run."""
    (tmp_path / "saltcluster" / "joining" / "node2").mkdir(parents=True)
    cluster_orch.state("membership", "node2", sls="m", skip_unsynced=True)
    assert salt_state.calls[0]["tgt"] == ["node2"]


def test_only_never_synced_minions_left_out_is_no_failure(salt_state):
    ret = cluster_orch.state("m", "node4", sls="m", skip_unsynced=True)
    assert ret["result"] is True and salt_state.calls == [] and "node4" in ret["comment"]


def test_a_target_that_matches_nobody_fails_as_salt_state_does(salt_state):
    ret = cluster_orch.state("m", "nosuchnode", sls="m")
    assert ret["result"] is False and "'nosuchnode'" in ret["comment"] and salt_state.calls == []


def test_overlapping_targets_in_two_threads_never_deadlock(salt_state):
    """Sorted order: each takes node1 before node2, whatever its target says."""
    rets = []
    threads = [
        threading.Thread(target=lambda t=t: rets.append(cluster_orch.state("s", t, tgt_type="list", sls="x", lock_timeout=5)))
        for t in ("node2,node1", "node1,node2", "node2,node1")
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert [r["result"] for r in rets] == [True, True, True] and not salt_state.overlap


def test_locks_taken_are_released_when_taking_the_next_one_raises(tmp_path, salt_state, monkeypatch):
    real = cluster_orch._lock

    def lock(minion, holder, deadline):
        if minion == "node2":
            raise OSError(24, "Too many open files")
        return real(minion, holder, deadline)

    monkeypatch.setattr(cluster_orch, "_lock", lock)
    with pytest.raises(OSError):
        cluster_orch.state("s", "node1,node2", tgt_type="list", sls="x")
    assert free(tmp_path, "node1") and salt_state.calls == []


def test_the_holder_is_named_by_step_and_orchestration(tmp_path, salt_state, monkeypatch):
    monkeypatch.setitem(cluster_orch.state.__globals__, "__orchestration_jid__", "20261127170000123456")
    salt_state.hold.clear()
    t = threading.Thread(target=cluster_orch.state, args=("saltcluster-orch-join-nfs-export", "master"), kwargs={"sls": "x"})
    t.start()
    assert salt_state.entered.wait(5)
    ret = cluster_orch.state("other", "master", sls="x", lock_timeout=0.3)
    salt_state.hold.set()
    t.join(5)
    assert ret["result"] is False
    assert "saltcluster-orch-join-nfs-export (orchestration 20261127170000123456" in ret["comment"]


@pytest.mark.parametrize(
    "kwargs, named",
    [({"lock_timeout": "soon"}, "'soon'"), ({"lock_timeout": None}, "None")],
)
def test_bad_arguments_are_refused_naming_the_value_before_anything(tmp_path, salt_state, kwargs, named):
    ret = cluster_orch.state("step", "node1", sls="x", **kwargs)
    assert ret["result"] is False and named in ret["comment"] and salt_state.calls == []
    assert not (tmp_path / "saltcluster").exists()


def test_loads_only_inside_the_master():
    assert cluster_orch.__virtual__() == "cluster_orch"
    cluster_orch.__opts__["__role"] = "minion"
    assert cluster_orch.__virtual__()[0] is False


# ---------------------------------------------------------------- master_extmods


@pytest.fixture
def served(tmp_path, monkeypatch):
    """The fileserver's _runners and _states, and the master's extmods."""
    tree = tmp_path / "tree"
    extmods = tmp_path / "extmods"
    for kind, name in (("runners", "saltcluster.py"), ("states", "cluster_orch.py")):
        (tree / f"_{kind}").mkdir(parents=True)
        (tree / f"_{kind}" / name).write_text(f"# {kind} v2\n")
    synced = []

    def list_master(saltenv, prefix):
        return sorted(str(p.relative_to(tree)) for p in (tree / prefix).rglob("*") if p.is_file())

    def hash_file(path, saltenv):
        import salt.utils.hashutils

        return {"hash_type": "sha256", "hsum": salt.utils.hashutils.get_hash(str(tree / path[7:]), "sha256")}

    def runner(fun, arg=None, kwarg=None, saltenv="base"):
        # saltutil.runner passes its own saltenv to a runner that takes one
        assert arg is None and kwarg is None
        kind = fun.rsplit("_", 1)[1]
        (extmods / kind).mkdir(parents=True, exist_ok=True)
        for p in (tree / f"_{kind}").iterdir():
            (extmods / kind / p.name).write_text(p.read_text())
        synced.append((fun, saltenv))
        return [f"{kind}.{p.stem}" for p in (tree / f"_{kind}").iterdir()]

    monkeypatch.setattr(master_extmods, "_master_extmods", lambda: str(extmods))
    monkeypatch.setitem(master_extmods.__salt__, "cp.list_master", list_master)
    monkeypatch.setitem(master_extmods.__salt__, "cp.hash_file", hash_file)
    monkeypatch.setitem(master_extmods.__salt__, "saltutil.runner", runner)
    return tree, extmods, synced


def test_extmods_sync_when_they_differ_and_not_again(served):
    tree, extmods, synced = served
    ret = master_extmods.synced("m")
    assert ret["result"] is True and sorted(ret["changes"]["synced"]) == ["runners", "states"]
    assert synced == [("saltutil.sync_runners", "base"), ("saltutil.sync_states", "base")]
    ret = master_extmods.synced("m")
    assert ret["result"] is True and ret["changes"] == {} and len(synced) == 2
    # an older copy of one module: only its kind syncs
    (extmods / "states" / "cluster_orch.py").write_text("# states v1\n")
    ret = master_extmods.synced("m")
    assert list(ret["changes"]["synced"]) == ["states"]


def test_extmods_test_mode_says_what_would_sync_and_syncs_nothing(served):
    tree, extmods, synced = served
    master_extmods.__opts__["test"] = True
    ret = master_extmods.synced("m")
    assert ret["result"] is None and ret["changes"] == {"pending": {"runners": ["saltcluster.py"], "states": ["cluster_orch.py"]}}
    assert synced == [] and not extmods.exists()


def test_extmods_a_sync_that_changes_nothing_fails(served, monkeypatch):
    monkeypatch.setitem(master_extmods.__salt__, "saltutil.runner", lambda fun, saltenv="base": [])
    ret = master_extmods.synced("m")
    assert ret["result"] is False and "still differs" in ret["comment"]
