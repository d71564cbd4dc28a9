"""The reactor SLS files, rendered by Salt's own Jinja with the event data a
master would pass: which events start an orchestration, and which do not.

The reactors are cheap filters only: a minion can fire any of these tags with
a payload of its choosing (``event.send`` with ``preload``), so the
orchestrations check again against the master's own view
(tests/unit/orch/test_orch.py).  The payloads below are the ones Salt 3008.4
delivers (tests/integration/test_reactor_security.py captures them live)."""

import pytest
import salt.config
import salt.utils.templates
import salt.utils.yaml

from tests.conftest import REPO

ACCEPTED = "/etc/salt/pki/master/minions/"


def render(name, data, files=(), tag=None, opts=None):
    """``name`` rendered for an event; the master's files it may look at are
    ``files`` (paths that exist), and it may read none of them."""
    if tag is None:
        tag = f"salt/minion/{data.get('id', '')}/start" if name == "join.sls" else "salt/presence/change"
    looked = []

    def file_exists(path):
        looked.append(path)
        return path in files

    def no_read(path):
        raise AssertionError(f"the reactor read {path}: the orchestration decides from the master's own view")

    salt_funcs = {"file.file_exists": file_exists, "file.read": no_read}
    opts = dict(salt.config.DEFAULT_MASTER_OPTS.copy(), **(opts or {}))
    text = salt.utils.templates.render_jinja_tmpl(
        (REPO / "salt/reactor" / name).read_text(),
        {"data": data, "tag": tag, "salt": salt_funcs, "opts": opts, "saltenv": "base", "sls": "reactor"},
    )
    # the master's key store is all a reactor looks at
    assert all(path.startswith(opts["pki_dir"] + "/minions/") for path in looked), looked
    return salt.utils.yaml.safe_load(text) or {}


def join_pillar(high):
    (state,) = high.values()
    args = state["runner.state.orchestrate"][0]["args"]
    return args[0]["mods"], args[1]["pillar"]


@pytest.mark.parametrize("minion", ["node3", "node1"])
def test_reconnect_of_an_accepted_minion_goes_to_the_orchestration(minion):
    """A start event without grains: a reconnect (every minion's after a
    salt-master restart), or a join cut short by one.  Whether the minion
    is a new member is orch.join's to decide, from the mine
    (tests/unit/orch/test_orch.py: a reconnect of a member does nothing)."""
    high = render("join.sls", {"id": minion}, files={ACCEPTED + minion})
    assert join_pillar(high) == ("orch.join", {"saltcluster_join": minion, "saltcluster_join_event": "reconnect"})


def test_real_start_goes_to_the_orchestration_as_a_start():
    """A member that really restarted (start_event_grains sends its roles)
    may come back with a fresh disk: orch.join checks its identity."""
    data = {"id": "node1", "grains": {"roles": ["compute"]}}
    high = render("join.sls", data, files={ACCEPTED + "node1"})
    assert join_pillar(high) == ("orch.join", {"saltcluster_join": "node1", "saltcluster_join_event": "start"})


@pytest.mark.parametrize(
    "minion, files",
    [
        ("node3", set()),  # no accepted key: a forged start event
        ("node3 or *", {ACCEPTED + "node3 or *"}),  # a target expression, not a name
        ("node3\n", {ACCEPTED + "node3\n"}),  # a trailing newline: no plain name either
        ("../../etc/x", set()),
        ("", set()),
    ],
)
def test_start_events_that_do_nothing(minion, files):
    assert render("join.sls", {"id": minion}, files=files) == {}


def test_start_event_of_another_minion_does_nothing():
    """event.send fired by node2 with the tag of node1's start: Salt puts the
    real sender's id in the data, and the two must agree."""
    data = {"id": "node2", "cmd": "_minion_event", "tag": "salt/minion/node1/start", "data": {}}
    files = {ACCEPTED + "node1", ACCEPTED + "node2"}
    assert render("join.sls", data, files=files, tag="salt/minion/node1/start") == {}


def test_pki_dir_comes_from_the_master_config():
    opts = {"pki_dir": "/srv/pki"}
    assert render("join.sls", {"id": "node3"}, files={ACCEPTED + "node3"}, opts=opts) == {}
    high = render("join.sls", {"id": "node3"}, files={"/srv/pki/minions/node3"}, opts=opts)
    assert join_pillar(high)[1]["saltcluster_join"] == "node3"


def leave_pillar(high):
    (state,) = high.values()
    args = state["runner.state.orchestrate"][0]["args"]
    assert args[0]["mods"] == "orch.leave"
    return args[1]["pillar"]


def test_presence_loss_orchestrates_a_leave():
    high = render("leave.sls", {"new": [], "lost": ["node3", "node4"]})
    assert leave_pillar(high) == {"saltcluster_gone": ["node3", "node4"], "saltcluster_leave_event": "presence"}


def test_deleted_key_orchestrates_a_leave():
    high = render("leave.sls", {"act": "delete", "id": "node3", "result": True}, tag="salt/key")
    assert leave_pillar(high) == {"saltcluster_gone": ["node3"], "saltcluster_leave_event": "key"}


@pytest.mark.parametrize(
    "tag, data",
    [
        # what `salt-call event.send salt/presence/change preload='{"lost": ["node1"]}'`
        # on node2 delivers: the master adds the sender's id and cmd
        ("salt/presence/change", {"id": "node2", "cmd": "_minion_event", "lost": ["node1"], "data": {}}),
        # `salt-call event.send salt/key preload='{"act": "delete"}'` (the tag is
        # only blacklisted for the `events` form)
        ("salt/key", {"id": "node2", "cmd": "_minion_event", "act": "delete", "data": {}}),
        # a key event of another tag
        ("salt/presence/present", {"present": ["node1"]}),
    ],
)
def test_leave_events_sent_by_a_minion_do_nothing(tag, data):
    assert render("leave.sls", data, tag=tag) == {}


@pytest.mark.parametrize(
    "data",
    [
        {"act": "delete", "id": "* or rogue"},  # not a minion name
        {"act": "accept", "id": "node3"},
        {"act": "pend", "id": "rogue"},
        {"new": ["node3"], "lost": []},
        {"new": [], "lost": ["bad name; rm"]},
        {"new": [], "lost": "node1"},  # not a list
        {"new": [], "lost": ["node1\n"]},  # a trailing newline: not a plain name
    ],
)
def test_key_and_presence_events_that_do_nothing(data):
    assert render("leave.sls", data, tag="salt/key" if "act" in data else "salt/presence/change") == {}


# -- health: cluster_health.publish fires saltcluster/health/<id>/changed when
# a compute node's own state flips


def health_pillar(high):
    (state,) = high.values()
    args = state["runner.state.orchestrate"][0]["args"]
    assert args[0]["mods"] == "orch.health"
    return args[1]["pillar"]


def sent_by(minion, tag):
    """What `event.send TAG` run by ``minion`` delivers: the master adds
    the sender's id and cmd; its own data is under data."""
    return {"id": minion, "cmd": "_minion_event", "tag": tag, "data": {"state": "drained", "previous": "serving"}}


def test_a_nodes_own_health_flip_orchestrates_membership():
    tag = "saltcluster/health/node2/changed"
    high = render("health.sls", sent_by("node2", tag), files={ACCEPTED + "node2"}, tag=tag)
    assert health_pillar(high) == {"saltcluster_health_node": "node2"}


@pytest.mark.parametrize(
    "minion, tag, files",
    [
        ("node2", "saltcluster/health/node1/changed", {ACCEPTED + "node1", ACCEPTED + "node2"}),  # another's tag
        ("rogue", "saltcluster/health/rogue/changed", set()),  # no accepted key
        ("node2 or *", "saltcluster/health/node2 or */changed", {ACCEPTED + "node2 or *"}),
        ("node2\n", "saltcluster/health/node2\n/changed", {ACCEPTED + "node2\n"}),
        ("node2", "saltcluster/health/node2/other", {ACCEPTED + "node2"}),
        ("", "saltcluster/health//changed", set()),
    ],
    ids=["another-minions-tag", "no-key", "target-expression", "trailing-newline", "other-tag", "no-id"],
)
def test_health_events_that_do_nothing(minion, tag, files):
    assert render("health.sls", sent_by(minion, tag), files=files, tag=tag) == {}
