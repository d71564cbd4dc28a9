"""The cluster runner (``_runners/saltcluster.py``, ``salt-run
cluster.status``): rows and table from fake minion answers."""

import copy
import importlib.util
import os

import pytest
from tests.conftest import REPO

_spec = importlib.util.spec_from_file_location("saltcluster_runner", REPO / "_runners" / "saltcluster.py")
runner = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(runner)

T0 = 1795000000  # 2026-11-18T11:06:40Z


def healthy(host, roles):
    return {"host": host, "roles": roles, "healthy": True, "checks": {}}


# as the master's cluster.members returns them; health: what each claims
MEMBERS = [
    {"name": "gateway", "addr": "10.5.5.1", "roles": ["gateway"], "health": "serving"},
    {"name": "master", "addr": "10.5.5.10", "roles": ["master"], "health": "serving"},
    {"name": "node1", "addr": "10.5.5.9", "roles": ["compute"], "health": "drained"},
    {"name": "node2", "addr": "10.5.5.18", "roles": ["compute"], "health": "serving"},
    {"name": "node3", "addr": "10.5.5.19", "roles": ["compute"], "health": None},
]


@pytest.fixture
def minions():
    """What each minion answers, by function; a minion missing from a
    function's mapping does not answer it (down)."""
    return {
        "accepted": ["gateway", "master", "node1", "node2", "node3", "node4"],
        "cluster_health.check": {
            "gateway": healthy("gateway", ["gateway"]),
            "master": healthy("master", ["master"]),
            "node1": {
                "host": "node1", "roles": ["compute"], "healthy": False,
                "checks": {
                    "nfs_home": {"ok": False, "reason": "/home/jobhandler is not a mount point"},
                    "web_whoami": {"ok": True, "reason": ""},
                },
            },
            "node2": healthy("node2", ["compute"]),
            # node3 is down; node4 has no cluster_health module yet
            "node4": "'cluster_health.check' is not available.",
        },  # fmt: skip
        "cluster.members": {"master": MEMBERS},
        "cluster_health.hostfile_slots": {
            "master": {"path": "/home/jobhandler/hosts", "mtime": T0, "error": None,
                       "slots": {"node2": 2, "node3": 2}},  # fmt: skip
        },
        "cluster_health.upstream": {
            "gateway": {
                "path": "/etc/nginx/saltcluster.d/lb.conf", "mtime": T0 + 60, "error": None,
                "servers": [
                    {"name": "node2", "addr": "10.5.5.18", "port": 80, "weight": 1, "down": False},
                    {"name": "node3", "addr": "10.5.5.19", "port": 80, "weight": 2, "down": True},
                    # a line without a member comment, of no member
                    {"name": None, "addr": "10.5.5.77", "port": 80, "weight": 1, "down": False},
                ],
            },
        },  # fmt: skip
    }


@pytest.fixture
def calls():
    return []


@pytest.fixture
def opts(tmp_path):
    """salt-run's opts for ``salt-run cluster.status`` (no --out)."""
    return {"cachedir": str(tmp_path / "cache"), "fun": "cluster.status"}


@pytest.fixture
def configure_loader_modules(minions, calls, opts, monkeypatch):
    def execute(tgt, fun, arg=(), timeout=None, tgt_type="glob", **kwargs):
        calls.append({"tgt": tgt, "fun": fun, "arg": arg, "timeout": timeout, "tgt_type": tgt_type, **kwargs})
        assert tgt_type == "list" and timeout
        if isinstance(fun, list):  # a compound call: each answers all, or not at all
            answered = set(tgt).intersection(*(minions[f] for f in fun))
            return {m: {f: copy.deepcopy(minions[f][m]) for f in fun} for m in answered}
        return {m: copy.deepcopy(minions[fun][m]) for m in tgt if m in minions[fun]}

    monkeypatch.setattr(runner, "_accepted", lambda: list(minions["accepted"]))
    return {runner: {"__salt__": {"salt.execute": execute}, "__opts__": opts}}


@pytest.fixture
def records(opts):
    """The master's join records: node2 joined at T0 + 120, node3 is
    joining (a lock directory)."""
    base = os.path.join(opts["cachedir"], "saltcluster")
    os.makedirs(os.path.join(base, "joined"))
    os.makedirs(os.path.join(base, "joining", "node3"))
    path = os.path.join(base, "joined", "node2")
    with open(path, "w") as fh:
        fh.write("boot-id 1234")
    os.utime(path, (T0 + 120, T0 + 120))
    os.utime(os.path.join(base, "joining", "node3"), (T0 + 180, T0 + 180))
    return base


def rows_by_host(rows):
    return {r["host"]: r for r in rows}


def test_rows(records):
    rows = runner.status(table=False)
    assert [r["host"] for r in rows] == ["10.5.5.77", "gateway", "master", "node1", "node2", "node3", "node4"]
    by = rows_by_host(rows)
    assert by["node2"] == {
        "host": "node2",
        "roles": ["compute"],
        "address": "10.5.5.18",
        "accepted": True,
        "answering": True,
        "healthy": True,
        "failed": {},
        "serves": "serving",
        "hostfile": {"master": 2},
        "upstream": {"gateway": 1},
        "last_change": {"what": "joined", "at": "2026-11-18T11:08:40Z"},
    }
    # unhealthy: the failed check and its reason
    assert by["node1"]["healthy"] is False
    assert by["node1"]["failed"] == {"nfs_home": "/home/jobhandler is not a mount point"}
    assert by["node1"]["hostfile"] == {"master": None} and by["node1"]["upstream"] == {"gateway": None}
    # ... and drained: its own claim, out of the hostfile and the upstream
    assert by["node1"]["serves"] == "drained"
    assert by["node3"]["serves"] is None and by["node4"]["serves"] is None
    # down: still in the hostfile and (marked down) in the upstream
    assert by["node3"]["answering"] is False and by["node3"]["healthy"] is None
    assert by["node3"]["address"] == "10.5.5.19" and by["node3"]["roles"] == ["compute"]
    assert by["node3"]["hostfile"] == {"master": 2} and by["node3"]["upstream"] == {"gateway": 0}
    assert by["node3"]["last_change"] == {"what": "joining", "at": "2026-11-18T11:09:40Z"}
    # answering, but no check result
    assert by["node4"]["answering"] is True and by["node4"]["healthy"] is None
    assert "not available" in by["node4"]["failed"]["check"]
    assert by["node4"]["address"] is None and by["node4"]["last_change"] is None
    # in the upstream, but no minion at all
    assert by["10.5.5.77"]["accepted"] is False and by["10.5.5.77"]["upstream"] == {"gateway": 1}


def test_minions_asked(calls):
    runner.status(timeout=7, table=False)
    assert [(c["fun"], c["tgt"]) for c in calls] == [
        ("cluster_health.check", ["gateway", "master", "node1", "node2", "node3", "node4"]),
        (["cluster.members", "cluster_health.hostfile_slots"], ["master"]),
        ("cluster_health.upstream", ["gateway"]),
    ]
    assert {c["timeout"] for c in calls} == {7} and all(c["gather_job_timeout"] for c in calls)


def test_table(records):
    ret = runner.status()
    assert set(ret) == {"outputter", "data"} and ret["outputter"] == "txt"
    lines = ret["data"].splitlines()
    assert lines[0].split() == ["HOST", "ROLES", "ADDRESS", "MINION", "HEALTH", "SERVES", "HOSTFILE", "UPSTREAM",
                                "LAST", "CHANGE"]  # fmt: skip
    cells = {line.split()[0]: line.split() for line in lines[1:8]}
    assert cells["node1"] == ["node1", "compute", "10.5.5.9", "up", "FAIL", "nfs_home", "DRAINED", "-", "-", "-"]
    assert cells["node2"] == ["node2", "compute", "10.5.5.18", "up", "ok", "yes", "2", "1", "joined",
                              "2026-11-18T11:08:40Z"]  # fmt: skip
    assert cells["node3"] == ["node3", "compute", "10.5.5.19", "down", "?", "-", "2", "down", "joining",
                              "2026-11-18T11:09:40Z"]  # fmt: skip
    assert cells["node4"][:5] == ["node4", "-", "-", "up", "?"]
    assert cells["10.5.5.77"][:5] == ["10.5.5.77", "-", "-", "no", "key"]
    # the columns line up
    assert len({line.index(" up ") for line in lines[1:8] if " up " in line}) == 1
    text = ret["data"]
    assert "  node1 nfs_home: /home/jobhandler is not a mount point" in text
    assert "  node4 check: 'cluster_health.check' is not available." in text
    assert "hostfile: master:/home/jobhandler/hosts, changed 2026-11-18T11:06:40Z" in text
    assert "upstream: gateway:/etc/nginx/saltcluster.d/lb.conf, changed 2026-11-18T11:07:40Z" in text


@pytest.mark.parametrize(
    "extra, is_table",
    [
        ({}, True),  # salt-run cluster.status
        ({"output": "json"}, False),  # salt-run cluster.status --out=json
        ({"fun": "state.orchestrate"}, False),  # from an orchestration
        ({"fun": "other.runner"}, False),  # from another runner
    ],
)
def test_table_or_rows(opts, extra, is_table):
    opts.update(extra)
    ret = runner.status()
    assert isinstance(ret, dict) is is_table
    assert isinstance(ret, list) is not is_table


def test_forced(opts):
    opts["output"] = "json"
    assert runner.status(table=True)["outputter"] == "txt"
    opts.pop("output")
    assert isinstance(runner.status(table=False), list)


def test_no_master_answering(minions):
    del minions["cluster_health.check"]["master"]
    rows = rows_by_host(runner.status(table=False))
    # membership and the hostfile come from the master: unknown now
    assert rows["node2"]["address"] is None and rows["node2"]["hostfile"] == {}
    assert rows["node2"]["roles"] == ["compute"]  # from its own check
    assert rows["node3"]["roles"] == []  # down, and nobody vouches for it
    assert rows["node2"]["upstream"] == {"gateway": 1}
    text = runner.status(table=True)["data"]
    assert "hostfile: no host holding its role answered" in text
    node2 = next(line for line in text.splitlines() if line.startswith("node2 "))
    assert node2.split()[5:7] == ["?", "?"]  # serves, hostfile


def test_hostfile_unreadable(minions):
    minions["cluster_health.hostfile_slots"]["master"] = {
        "path": "/home/jobhandler/hosts", "mtime": None, "slots": {}, "error": "No such file or directory",
    }  # fmt: skip
    rows = rows_by_host(runner.status(table=False))
    assert rows["node2"]["hostfile"] == {}
    assert "hostfile: master:/home/jobhandler/hosts: cannot read: No such file" in runner.status(table=True)["data"]


def test_two_gateways_that_disagree(minions):
    minions["accepted"].append("gw2")
    minions["cluster_health.check"]["gw2"] = healthy("gw2", ["gateway"])
    minions["cluster_health.upstream"]["gw2"] = {
        "path": "/etc/nginx/saltcluster.d/lb.conf", "mtime": T0, "error": None,
        "servers": [{"name": "node1", "addr": "10.5.5.9", "port": 80, "weight": 1, "down": False}],
    }  # fmt: skip
    rows = rows_by_host(runner.status(table=False))
    assert rows["node1"]["upstream"] == {"gateway": None, "gw2": 1}
    assert runner._cell_places(rows["node1"]["upstream"]) == "gateway:- gw2:1"


def test_nothing_accepted(minions):
    minions["accepted"] = []
    assert runner.status(table=False) == []
    assert runner.status(table=True)["data"].splitlines()[0].startswith("HOST")


def test_hosts_sorted_naturally_whatever_their_names(minions):
    """node2 before node10; a name the key store holds that is no host name
    ('²' is a digit to str.isdigit, no number to int) sorts, not fails."""
    minions["accepted"] += ["node10", "\u00b2", "x\u00b2"]
    hosts = [row["host"] for row in runner.status(table=False)]
    assert hosts.index("node2") < hosts.index("node4") < hosts.index("node10")
    assert {"\u00b2", "x\u00b2"} <= set(hosts)


def test_virtual_name():
    # Salt ships a runner module named cluster too: this one must not be a
    # file named cluster.py, or it would replace Salt's whole
    assert runner.__virtual__() == "cluster"
    assert not (REPO / "_runners" / "cluster.py").exists()
    assert (REPO / "salt" / "_runners").resolve() == (REPO / "_runners").resolve()
