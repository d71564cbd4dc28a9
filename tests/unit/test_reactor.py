"""The reactor SLS files, rendered by Salt's own Jinja with the event data a
master would pass: which events start an orchestration, and which do not.

The reactors are cheap filters only: a minion can fire any of these tags with
a payload of its choosing (``event.send`` with ``preload``), so the
orchestrations check again against the master's own view
(tests/unit/test_orch.py).  The payloads below are the ones Salt 3008.4
delivers (tests/integration/test_reactor_security.py captures them live)."""

import pytest
import salt.config
import salt.utils.templates
import salt.utils.yaml

from tests.conftest import REPO

ACCEPTED = "/etc/salt/pki/master/minions/"
MARKER = "/etc/salt/saltcluster.bootstrapped"


HOSTS = """127.0.0.1 localhost
10.5.5.100 node3-old-alias
# BEGIN saltcluster members (managed by Salt, do not edit)
10.5.5.10 master
10.5.5.9 node1
# END saltcluster members
10.5.5.101 node4
"""


def render(name, data, files=(), hosts=HOSTS, tag=None, opts=None):
    if tag is None:
        tag = f"salt/minion/{data.get('id', '')}/start" if name == "join.sls" else "salt/presence/change"
    salt_funcs = {
        "file.file_exists": lambda path: path in files or (path == "/etc/hosts" and hosts is not None),
        "file.read": lambda path: {"/etc/hosts": hosts}[path],
    }
    opts = dict(salt.config.DEFAULT_MASTER_OPTS.copy(), **(opts or {}))
    text = salt.utils.templates.render_jinja_tmpl(
        (REPO / "salt/reactor" / name).read_text(),
        {"data": data, "tag": tag, "salt": salt_funcs, "opts": opts, "saltenv": "base", "sls": "reactor"},
    )
    return salt.utils.yaml.safe_load(text) or {}


def join_pillar(high):
    (state,) = high.values()
    args = state["runner.state.orchestrate"][0]["args"]
    return args[0]["mods"], args[1]["pillar"]


def test_accepted_minion_start_orchestrates_its_join():
    high = render("join.sls", {"id": "node3"}, files={ACCEPTED + "node3", MARKER})
    assert join_pillar(high) == ("orch.join", {"saltcluster_join": "node3"})


@pytest.mark.parametrize("minion", ["node3", "node4"])  # node4: listed, but outside the members block
def test_reconnect_of_a_non_member_orchestrates_its_join(minion):
    """A join cut short by a salt-master restart: the minion's reconnect
    (a start event without grains) finishes it."""
    high = render("join.sls", {"id": minion}, files={ACCEPTED + minion, MARKER})
    assert join_pillar(high) == ("orch.join", {"saltcluster_join": minion})


def test_reconnect_of_a_member_does_nothing():
    """Every minion fires start again when a restarted salt-master comes
    back: members are not joined all over again."""
    assert render("join.sls", {"id": "node1"}, files={ACCEPTED + "node1", MARKER}) == {}


def test_real_start_of_a_member_orchestrates_its_join():
    """A member that really restarted (start_event_grains sends its roles)
    may come back with a fresh disk: it gets its highstate again."""
    data = {"id": "node1", "grains": {"roles": ["compute"]}}
    high = render("join.sls", data, files={ACCEPTED + "node1", MARKER})
    assert join_pillar(high) == ("orch.join", {"saltcluster_join": "node1"})


def test_start_without_a_hosts_file_orchestrates_the_join():
    high = render("join.sls", {"id": "node3"}, files={ACCEPTED + "node3", MARKER}, hosts=None)
    assert join_pillar(high) == ("orch.join", {"saltcluster_join": "node3"})


@pytest.mark.parametrize(
    "minion, files",
    [
        ("node3", {MARKER}),  # no accepted key: a forged start event
        ("node3", {ACCEPTED + "node3"}),  # the cluster is still bootstrapping
        ("node3 or *", {ACCEPTED + "node3 or *", MARKER}),  # a target expression, not a name
        ("../../etc/x", {MARKER}),
        ("", {MARKER}),
    ],
)
def test_start_events_that_do_nothing(minion, files):
    assert render("join.sls", {"id": minion}, files=files) == {}


def test_start_event_of_another_minion_does_nothing():
    """event.send fired by node2 with the tag of node1's start: Salt puts the
    real sender's id in the data, and the two must agree."""
    data = {"id": "node2", "cmd": "_minion_event", "tag": "salt/minion/node1/start", "data": {}}
    files = {ACCEPTED + "node1", ACCEPTED + "node2", MARKER}
    assert render("join.sls", data, files=files, tag="salt/minion/node1/start") == {}


def test_pki_dir_and_marker_come_from_the_master_config():
    opts = {"pki_dir": "/srv/pki", "saltcluster_join_marker": "/srv/marker"}
    assert render("join.sls", {"id": "node3"}, files={ACCEPTED + "node3", MARKER}, opts=opts) == {}
    high = render("join.sls", {"id": "node3"}, files={"/srv/pki/minions/node3", "/srv/marker"}, opts=opts)
    assert join_pillar(high) == ("orch.join", {"saltcluster_join": "node3"})


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
    ],
)
def test_key_and_presence_events_that_do_nothing(data):
    assert render("leave.sls", data, tag="salt/key" if "act" in data else "salt/presence/change") == {}
