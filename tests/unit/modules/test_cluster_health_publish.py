"""cluster_health.publish: the hysteresis that decides whether a host serves
(drained after health:fail_after failures in a row, back after
health:pass_after passes), the record it keeps between scheduled runs, the
claim it sends to the mine, and the event it fires only when a compute
node's state flips; and the state that admits a node at the end of its
highstate (_states/cluster_health_gate.py: cluster_health.serving)."""

import copy
import json
import os
import stat

import cluster_health
import cluster_health_gate as health_state
import pytest

FAIL_AFTER, PASS_AFTER = 3, 2
PASS, FAIL = True, False


def run(sequence, state="serving", admit=False):
    """The states a host goes through for a sequence of check outcomes."""
    record = {"state": state, "passes": 0, "fails": 0, "since": 0}
    states = []
    for ok in sequence:
        record = cluster_health._step(record, ok, FAIL_AFTER, PASS_AFTER, admit=admit, now=len(states) + 1)
        states.append(record["state"])
    return states


# -- the hysteresis ----------------------------------------------------------------


def test_three_failures_in_a_row_drain():
    assert run([FAIL, FAIL, FAIL]) == ["serving", "serving", "drained"]


def test_two_passes_in_a_row_bring_a_drained_host_back():
    assert run([PASS, PASS], state="drained") == ["drained", "serving"]


def test_a_single_failure_does_not_drain():
    assert run([FAIL, PASS, FAIL, PASS, PASS, FAIL]) == ["serving"] * 6


@pytest.mark.parametrize(
    "state, sequence",
    [
        ("serving", [FAIL, FAIL, PASS] * 10),
        ("serving", [FAIL, PASS] * 15),
        ("drained", [PASS, FAIL] * 15),
        ("drained", [FAIL, FAIL, PASS, FAIL] * 8),
        ("joining", [PASS, FAIL] * 15),
    ],
    ids=["fail-fail-pass", "fail-pass", "pass-fail", "drained-mostly-failing", "joining-flapping"],
)
def test_a_flapping_host_never_flips(state, sequence):
    assert set(run(sequence, state=state)) == {state}


def test_counts_are_consecutive_and_since_is_the_last_change():
    record = {"state": "serving", "passes": 5, "fails": 0, "since": 100}
    record = cluster_health._step(record, FAIL, FAIL_AFTER, PASS_AFTER, now=200)
    assert record == {"state": "serving", "passes": 0, "fails": 1, "since": 100}
    record = cluster_health._step(record, FAIL, FAIL_AFTER, PASS_AFTER, now=210)
    record = cluster_health._step(record, FAIL, FAIL_AFTER, PASS_AFTER, now=220)
    assert record == {"state": "drained", "passes": 0, "fails": 3, "since": 220}
    record = cluster_health._step(record, PASS, FAIL_AFTER, PASS_AFTER, now=230)
    assert record == {"state": "drained", "passes": 1, "fails": 0, "since": 220}


def test_a_fresh_host_joins_after_pass_after_passes_or_one_admitted_pass():
    assert run([FAIL, PASS, PASS], state="joining") == ["joining", "joining", "serving"]
    assert run([FAIL, FAIL, FAIL, FAIL], state="joining") == ["joining"] * 4  # never served: nothing to drain
    assert run([PASS], state="joining", admit=True) == ["serving"]
    assert run([FAIL], state="joining", admit=True) == ["joining"]


def test_admit_does_not_cut_a_drained_hosts_way_back_short():
    assert run([PASS], state="drained", admit=True) == ["drained"]


# -- publish: the record, the claim, the event ----------------------------------


@pytest.fixture
def roles():
    return ["compute"]


@pytest.fixture
def failing():
    """Names of the checks that fail in the next publish."""
    return set()


@pytest.fixture
def sent():
    return {"mine": [], "events": []}


@pytest.fixture
def configure_loader_modules(tmp_path, sent):
    def mine_send(name, mine_function=None):
        sent["mine"].append((name, mine_function, cluster_health.claim()))
        return True

    def event_send(tag, data=None):
        sent["events"].append((tag, copy.deepcopy(data)))
        return True

    return {
        cluster_health: {
            "__salt__": {
                "cluster.settings": lambda cached=False: {"health": {"fail_after": FAIL_AFTER,
                                                                     "pass_after": PASS_AFTER}},
                "mine.send": mine_send,
                "event.send": event_send,
            },
            "__opts__": {"id": "node1", "cachedir": str(tmp_path / "cache")},
            "__grains__": {"id": "node1"},
            "__context__": {},
        }
    }


@pytest.fixture(autouse=True)
def fake_check(configure_loader_modules, monkeypatch, roles, failing):
    """check(): this host's role checks, each failing if named in ``failing``."""

    def check(only=None):
        names = cluster_health._checks_for(roles)
        checks = {n: cluster_health._fail(f"{n} broke") if n in failing else cluster_health._ok() for n in names}
        return {"host": "node1", "roles": list(roles), "healthy": not (failing & set(names)), "checks": checks}

    monkeypatch.setattr(cluster_health, "check", check)


def record_file(tmp_path):
    return tmp_path / "cache" / "saltcluster" / "health.json"


def publish_times(n, **kwargs):
    return [cluster_health.publish(**kwargs) for _ in range(n)]


def test_a_fresh_compute_node_is_admitted_by_its_passes_with_one_event(tmp_path, sent):
    first, second = publish_times(2)
    assert (first["state"], first["changed"]) == ("joining", False)
    assert (second["state"], second["previous"], second["changed"]) == ("serving", "joining", True)
    assert sent["events"] == [("saltcluster/health/node1/changed", {"state": "serving", "previous": "joining"})]
    # every run sends the claim, read back from the record the run wrote
    assert [(name, fun, c["state"]) for name, fun, c in sent["mine"]] == [
        ("saltcluster_health", "cluster_health.claim", "joining"),
        ("saltcluster_health", "cluster_health.claim", "serving"),
    ]
    saved = json.loads(record_file(tmp_path).read_text())
    assert saved["state"] == "serving" and saved["passes"] == 2 and saved["since"] == second["since"]
    assert stat.S_IMODE(os.stat(record_file(tmp_path)).st_mode) == 0o600


def test_drain_and_back_fire_one_event_each(sent, failing):
    publish_times(2)  # serving
    sent["events"].clear()
    failing.add("web_whoami")
    states = [r["state"] for r in publish_times(4)]
    assert states == ["serving", "serving", "drained", "drained"]
    failing.clear()
    states = [r["state"] for r in publish_times(3)]
    assert states == ["drained", "serving", "serving"]
    assert [data for _, data in sent["events"]] == [
        {"state": "drained", "previous": "serving"},
        {"state": "serving", "previous": "drained"},
    ]


def test_the_claim_names_the_failed_checks_and_the_retcode_says_not_serving(failing):
    publish_times(2)
    failing.add("nfs_home")
    for _ in range(3):
        ret = cluster_health.publish()
    assert ret["state"] == "drained" and ret["failed"] == {"nfs_home": "nfs_home broke"}
    assert cluster_health.__context__["retcode"] == 1
    assert cluster_health.claim() == {
        "state": "drained", "since": ret["since"], "passes": 0, "fails": 3, "failed": {"nfs_home": "nfs_home broke"},
    }  # fmt: skip


def test_the_counts_survive_between_runs_in_the_cachedir(tmp_path, failing):
    """The schedule runs each publish in a process of its own: the record
    on disk is all that carries the counts."""
    publish_times(2)
    failing.add("ssh_host_key")
    cluster_health.publish()
    cluster_health.__context__.clear()
    cluster_health.publish()
    assert json.loads(record_file(tmp_path).read_text())["fails"] == 2
    assert cluster_health.publish()["state"] == "drained"


@pytest.mark.parametrize("text", ["", "{not json", '{"state": "boss", "passes": 0, "fails": 0}', "[]",
                                  '{"state": "serving", "passes": -1, "fails": 0}'])  # fmt: skip
def test_a_record_that_is_none_starts_afresh(tmp_path, text):
    record_file(tmp_path).parent.mkdir(parents=True)
    record_file(tmp_path).write_text(text)
    assert cluster_health.publish()["previous"] == "joining"


def test_the_join_gate_admits_on_one_pass_without_an_event(sent):
    ret = cluster_health.publish(admit=True)
    assert (ret["state"], ret["changed"]) == ("serving", True)
    assert sent["events"] == []  # orch.join applies membership itself
    assert "retcode" not in cluster_health.__context__


def test_the_join_gate_keeps_a_failing_node_out(failing, sent):
    failing.add("web_whoami")
    ret = cluster_health.publish(admit=True)
    assert ret["state"] == "joining" and cluster_health.__context__["retcode"] == 1
    assert ret["failed"] == {"web_whoami": "web_whoami broke"} and sent["events"] == []


@pytest.mark.parametrize("roles", [["gateway"], ["master"]])
def test_a_host_without_the_compute_role_is_never_drained_and_fires_nothing(failing, sent, roles):
    """Draining takes a host out of the hostfile and the upstream, which
    list compute nodes only: a gateway's or master's failing checks show in
    cluster.status, they drain nothing."""
    failing.update({"nginx_running", "nginx_config", "nfs_export", "hostfile"})
    states = [r["state"] for r in publish_times(6)]
    assert states == ["joining"] + ["serving"] * 5
    assert sent["events"] == []


# -- the state that admits a node at the end of its highstate ----------------------


@pytest.fixture
def state_loader(configure_loader_modules):
    health_state.__salt__ = {"cluster_health.publish": cluster_health.publish}
    health_state.__opts__ = {"test": False}
    health_state.__context__ = {}
    return health_state


def test_state_admits_a_healthy_node(state_loader):
    ret = state_loader.serving("cluster-health")
    assert ret["result"] is True and ret["changes"] == {"health": {"old": "joining", "new": "serving"}}
    ret = state_loader.serving("cluster-health")
    assert ret["result"] is True and ret["changes"] == {}  # the next highstate changes nothing


def test_state_fails_naming_the_failed_checks(state_loader, failing):
    failing.add("nfs_home")
    ret = state_loader.serving("cluster-health")
    assert ret["result"] is False and ret["changes"] == {}
    assert "joining: left out of the hostfile and the upstream" in ret["comment"] and "nfs_home broke" in ret["comment"]


def test_state_in_test_mode_checks_nothing(state_loader, tmp_path):
    state_loader.__opts__["test"] = True
    assert state_loader.serving("cluster-health")["result"] is None
    assert not record_file(tmp_path).exists()
