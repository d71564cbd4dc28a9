"""The reactor SLS files, rendered by Salt's own Jinja with the event data a
master would pass: which events start an orchestration, and which do not."""

import pytest
import salt.config
import salt.utils.templates
import salt.utils.yaml

from tests.conftest import REPO

ACCEPTED = "/etc/salt/pki/master/minions/"
MARKER = "/etc/salt/saltcluster.bootstrapped"


def render(name, data, files=()):
    salt_funcs = {
        "file.file_exists": lambda path: path in files,
    }
    opts = salt.config.DEFAULT_MASTER_OPTS.copy()
    text = salt.utils.templates.render_jinja_tmpl(
        (REPO / "salt/reactor" / name).read_text(),
        {"data": data, "tag": "test", "salt": salt_funcs, "opts": opts, "saltenv": "base", "sls": "reactor"},
    )
    return salt.utils.yaml.safe_load(text) or {}


def join_pillar(high):
    (state,) = high.values()
    args = state["runner.state.orchestrate"][0]["args"]
    return args[0]["mods"], args[1]["pillar"]


def test_accepted_minion_start_orchestrates_its_join():
    high = render("join.sls", {"id": "node3"}, files={ACCEPTED + "node3", MARKER})
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


def test_presence_loss_orchestrates_a_leave():
    high = render("leave.sls", {"new": [], "lost": ["node3", "node4"]})
    (state,) = high.values()
    assert state["runner.state.orchestrate"][0]["args"][1]["pillar"] == {"saltcluster_gone": ["node3", "node4"]}


def test_deleted_key_orchestrates_a_leave():
    high = render("leave.sls", {"act": "delete", "id": "node3"})
    (state,) = high.values()
    assert state["runner.state.orchestrate"][0]["args"][1]["pillar"] == {"saltcluster_gone": ["node3"]}


@pytest.mark.parametrize(
    "data",
    [
        {"act": "delete", "id": "* or rogue"},  # not a minion name
        {"act": "accept", "id": "node3"},
        {"act": "pend", "id": "rogue"},
        {"new": ["node3"], "lost": []},
        {"new": [], "lost": ["bad name; rm"]},
    ],
)
def test_key_and_presence_events_that_do_nothing(data):
    assert render("leave.sls", data) == {}


def render_rejoin(data, master_age="30", hosts_has=(), files=()):
    salt_funcs = {
        "file.file_exists": lambda path: path in files or path == "/var/run/salt-master.pid",
        "file.read": lambda path: "4242\n",
        "file.search": lambda path, pattern: any(pattern == "\\s" + h + "$" for h in hosts_has),
        "cmd.run": lambda cmd, python_shell=False: f"  {master_age}\n" if cmd == "ps -o etimes= -p 4242" else "",
    }
    text = salt.utils.templates.render_jinja_tmpl(
        (REPO / "salt/reactor/rejoin.sls").read_text(),
        {"data": data, "tag": "test", "salt": salt_funcs, "opts": salt.config.DEFAULT_MASTER_OPTS.copy(),
         "saltenv": "base", "sls": "reactor"},
    )  # fmt: skip
    return salt.utils.yaml.safe_load(text) or {}


def test_master_restart_finishes_an_unfinished_join():
    files = {ACCEPTED + "node3", ACCEPTED + "node1", MARKER}
    high = render_rejoin({"new": ["node1", "node3"], "lost": []}, hosts_has=["node1"], files=files)
    assert [join_pillar({k: v}) for k, v in high.items()] == [("orch.join", {"saltcluster_join": "node3"})]


@pytest.mark.parametrize(
    "age, files",
    [
        ("500", {ACCEPTED + "node3", MARKER}),  # a master up for long: ordinary joins use the start event
        ("30", {MARKER}),  # no accepted key
        ("30", {ACCEPTED + "node3"}),  # still bootstrapping
    ],
)
def test_presence_new_that_does_nothing(age, files):
    assert render_rejoin({"new": ["node3"], "lost": []}, master_age=age, files=files) == {}
