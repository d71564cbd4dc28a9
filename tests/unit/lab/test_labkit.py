"""labkit's pure parts (no root, no lab): the topology and the hosts it
gives, the image's cache key, the saltlab command line's mapping to the API,
secrets written 0600, and what the waits, reboots and jobs note for a
summary."""

import json
import os
import re
import stat
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO

if str(REPO / "lab") not in sys.path:
    sys.path.insert(0, str(REPO / "lab"))

from labkit import build, cli, config, demo, figures, hosts, keys, ops, probes, remote  # noqa: E402
from labkit.base import LabError  # noqa: E402

RAW = yaml.safe_load((REPO / "lab/topology.yaml").read_text())


def test_topology_gives_each_host_its_addresses_and_memory():
    topology = config.load_topology()
    assert set(topology["hosts"]) == set(RAW["hosts"]) == {"gateway", "master", "node1", "node2", "client"}
    for name, spec in RAW["hosts"].items():
        assert topology["hosts"][name]["mem"] == spec["mem"] > 0
        for net in ("internal", "external"):
            if net in spec:
                assert config.address(name, net) == spec[net]
    assert config.address("gateway", "external") != config.address("gateway")
    assert config.lb_url() == f"http://{RAW['hosts']['gateway']['external']}/whoami"
    # the cluster's members: every host with a role, in the topology's order
    assert config.members() == ["gateway", "master", "node1", "node2"]


@pytest.mark.parametrize(
    "change, named",
    [
        (lambda t: t["hosts"]["node1"].update(internal="10.9.9.9"), "node1's internal address 10.9.9.9"),
        (lambda t: t["hosts"]["node2"].pop("mem"), "node2 has no memory size"),
        (lambda t: t["hosts"]["client"].pop("external"), "client has no address"),
        (lambda t: t.update(join_pool="10.5.5.200-10.5.5.100"), "join_pool 10.5.5.200-10.5.5.100"),
        (lambda t: t["hosts"]["master"].update(ncpus=0), "master's ncpus 0"),
    ],
)
def test_bad_topology_is_refused_naming_the_host(tmp_path, change, named):
    topology = yaml.safe_load((REPO / "lab/topology.yaml").read_text())
    change(topology)
    path = tmp_path / "topology.yaml"
    path.write_text(yaml.safe_dump(topology))
    with pytest.raises(LabError, match=named):
        config.load_topology(path)


def test_more_than_one_cpu_needs_seccomp_mode(monkeypatch):
    spec = dict(RAW["hosts"]["master"], ncpus=2)
    monkeypatch.setattr(config, "KERNEL", "7.3")
    assert config.ncpus("master", spec) == 2
    assert config.ncpus("node1", RAW["hosts"]["node1"]) == 1
    monkeypatch.setattr(config, "NCPUS", {"node1": 3})
    assert config.ncpus("node1", RAW["hosts"]["node1"]) == 3
    monkeypatch.setattr(config, "KERNEL", "6.12")
    with pytest.raises(LabError, match="node1: ncpus=3 needs UML's seccomp mode; kernel 6.12"):
        config.ncpus("node1", RAW["hosts"]["node1"])


def test_joined_hosts_get_free_pool_addresses(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "RUN", tmp_path)
    first = RAW["join_pool"].split("-")[0]
    assert hosts.free_addr() == first
    hosts.save_joined({"node3": {"internal": first, "roles": ["compute"], "mem": RAW["join_mem"], "join": "token"}})
    assert list(hosts.specs()) == [*RAW["hosts"], "node3"]
    assert hosts.addr("node3") == first
    assert hosts.addr("client") == RAW["hosts"]["client"]["external"]
    assert hosts.minions() == ["gateway", "master", "node1", "node2", "node3"]
    assert hosts.free_addr() != first


def _image_key(overlay_dir, requirements=b"salt==3008.4\n", recipe=1):
    overlay = build.overlay_files(overlay_dir)
    return build.image_key("trixie", ["openssh-server", "mpich"], requirements, overlay, recipe)


def test_image_key_follows_the_overlay_contents_and_nothing_else(tmp_path):
    overlay = tmp_path / "overlay"
    (overlay / "etc/systemd/system").mkdir(parents=True)
    unit = overlay / "etc/systemd/system/salt-minion.service"
    unit.write_text("[Service]\nExecStart=/usr/local/bin/salt-minion\n")
    script = overlay / "boot"
    script.write_text("#!/bin/sh\n")
    key = _image_key(overlay)
    assert len(key) == 16
    # read again, touched, rewritten with the same bytes: the same key
    assert _image_key(overlay) == key
    unit.touch()
    unit.write_text(unit.read_text())
    assert _image_key(overlay) == key
    # each real input moves it
    assert _image_key(overlay, requirements=b"salt==3008.5\n") != key
    assert _image_key(overlay, recipe=2) != key
    script.chmod(0o755)
    assert _image_key(overlay) != key
    script.chmod(0o644)
    assert _image_key(overlay) == key
    unit.write_text("[Service]\nExecStart=/usr/local/bin/salt-minion -l debug\n")
    changed = _image_key(overlay)
    assert changed != key
    unit.rename(overlay / "etc/systemd/system/salt-minion2.service")
    assert _image_key(overlay) not in (key, changed)


def test_image_path_hashes_the_real_overlay():
    assert build.image_path() == build.image_path()
    assert build.image_path().parent.name == "image-" + build.image_key(
        config.RELEASE, config.IMAGE_PACKAGES, config.SALT_REQUIREMENTS.read_bytes(),
        build.overlay_files(config.IMAGE_OVERLAY), config.IMAGE_RECIPE)  # fmt: skip
    paths = [path for path, _, _ in build.overlay_files(config.IMAGE_OVERLAY)]
    assert "usr/local/sbin/saltlab-boot" in paths


@pytest.mark.parametrize(
    "argv, call, kwargs",
    [
        (["build"], ops.build, {"only": None}),
        (["build", "--only", "image"], ops.build, {"only": "image"}),
        (["up"], ops.up, {}),
        (["down"], ops.down, {}),
        (["status"], ops.status, {}),
        (["demo"], demo.demo, {}),
        (["join", "node3", "node4"], ops.join, {"names": ["node3", "node4"], "token": True}),
        (["join", "--no-token", "rogue"], ops.join, {"names": ["rogue"], "token": False}),
        (["leave", "node3"], ops.leave, {"names": ["node3"], "hard": False}),
        (["kill", "node3", "node4"], ops.leave, {"names": ["node3", "node4"], "hard": True}),
        (["exec", "node1", "--", "ls", "-l", "/"], ops.run_on, {"node": "node1", "command": ["ls", "-l", "/"]}),
        (["exec", "node1", "hostname"], ops.run_on, {"node": "node1", "command": ["hostname"]}),
        (["salt", "--", "*", "test.ping"], ops.salt_cli, {"args": ["*", "test.ping"]}),
    ],
)
def test_cli_maps_flags_to_keyword_arguments(argv, call, kwargs):
    assert cli.command(argv) == (call, kwargs)


def test_cli_refuses_unknown_commands_and_flags(capsys):
    for argv in (["bogus"], ["join"], ["build", "--only", "both"], ["leave", "--hard", "node3"]):
        with pytest.raises(SystemExit) as exc:
            cli.command(argv)
        assert exc.value.code == 2, argv
    assert "usage: saltlab" in capsys.readouterr().err


def test_cli_reports_a_lab_error_without_a_traceback(monkeypatch, capsys):
    def status():
        raise LabError("the lab network is gone")

    monkeypatch.setattr(ops, "status", status)
    assert cli.main(["status"]) == 2
    assert capsys.readouterr().err == "saltlab: the lab network is gone\n"


def test_secrets_are_0600_from_the_first_byte(tmp_path):
    path = tmp_path / "minion.pem"
    path.write_text("old")
    path.chmod(0o644)
    keys.write_secret(path, b"-----BEGIN RSA PRIVATE KEY-----\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes() == b"-----BEGIN RSA PRIVATE KEY-----\n"


@pytest.fixture
def master_calls(tmp_path, monkeypatch):
    """The lab up and every host running, as root; what goes to the lab's
    hosts over ssh is recorded and answered by ``answer`` (no lab is
    touched)."""
    monkeypatch.setattr(config, "RUN", tmp_path)
    monkeypatch.setattr(ops.network, "exists", lambda: True)
    monkeypatch.setattr(ops.hosts, "running", lambda name: 4242)
    monkeypatch.setattr(ops.os, "geteuid", lambda: 0)

    class Calls(list):
        @staticmethod
        def answer(command):  # (rc, stdout, stderr), or an exception to raise
            return 0, "HOST     ROLES\nmaster   master\n", ""

    calls = Calls()

    def ssh(name, command, timeout=None, capture=True, check=False):
        calls.append((name, command, timeout))
        answer = calls.answer(command)
        if isinstance(answer, BaseException):
            raise answer
        return subprocess.CompletedProcess(command, answer[0], stdout=answer[1], stderr=answer[2])

    monkeypatch.setattr(ops.remote, "ssh", ssh)
    return calls


def test_status_prints_what_the_cluster_says_of_itself(master_calls, capsys):
    assert ops.status() == 0
    out = capsys.readouterr().out
    assert "lab network: up" in out and out.rstrip().endswith("HOST     ROLES\nmaster   master")
    assert master_calls == [
        ("master", f"salt-run cluster.status timeout={ops.STATUS_ANSWER_TIMEOUT}", ops.STATUS_SSH_TIMEOUT)
    ]


@pytest.mark.parametrize(
    "answer, said",
    [
        (subprocess.TimeoutExpired("salt-run", 60), "gave no answer in 60 s"),
        ((1, "", "'cluster.status' is not available.\n"), "failed: 'cluster.status' is not available."),
    ],
)
def test_status_reports_a_cluster_status_that_fails_and_still_succeeds(master_calls, capsys, answer, said):
    master_calls.answer = lambda command: answer
    assert ops.status() == 0
    assert f"cluster status: salt-run cluster.status {said}" in capsys.readouterr().out


def test_status_of_a_lab_that_is_down_asks_nobody(master_calls, monkeypatch, capsys):
    monkeypatch.setattr(ops.network, "exists", lambda: False)
    assert ops.status() == 0
    assert master_calls == [] and "lab network: down" in capsys.readouterr().out


def test_highstate_is_the_operators_one_apply(master_calls):
    """Nothing before the apply but the master's own runners: no module
    sync, no mine.update (membership is published at minion start)."""
    answer = {name: {} for name in ops.hosts.minions()}
    master_calls.answer = lambda command: (0, __import__("json").dumps(answer), "")
    assert ops.highstate() == (pytest.approx(0, abs=60), 0, [])
    commands = [command for _, command, _ in master_calls]
    assert commands[0] == "salt-run saltutil.sync_runners"
    assert len(commands) == 2 and commands[1].startswith("salt ") and commands[1].endswith(" state.apply queue=True")
    master_calls.clear()
    ops.highstate(everyone=True)
    assert [command for _, command, _ in master_calls][1].endswith(" '*' state.apply")


def test_highstate_counts_changes_and_failures(master_calls, monkeypatch):
    answer = {
        "node1": {"a": {"__id__": "a", "result": True, "changes": {"x": 1}},
                  "b": {"__id__": "b", "result": False, "changes": {}, "comment": "broke"}},
        "node2": "Minion did not return. [No response]",
    }  # fmt: skip
    master_calls.answer = lambda command: (0, __import__("json").dumps(answer), "")
    monkeypatch.setattr(ops.hosts, "minions", lambda: ["master", "node1", "node2"])
    monkeypatch.setattr(ops.hosts, "running", lambda name: 4242)
    secs, changed, failed = ops.highstate()
    assert changed == 1
    assert failed == ["master: no return", "node1: b: broke", "node2: Minion did not return. [No response]"]


def _done(rc=0, stdout=""):
    return subprocess.CompletedProcess("ssh", rc, stdout=stdout, stderr="")


def test_wait_minions_notes_every_round_it_goes_on_after_and_every_frozen_guest(monkeypatch):
    """The rounds a wait swallows (no answer over ssh, no JSON) and a guest
    found frozen each make a line; so does the wait's end, with its count."""
    names = ["gateway", "master", "node1", "node2"]
    pings = [
        subprocess.TimeoutExpired("ssh", config.PING_SSH_TIMEOUT),
        _done(1, "Salt request timed out. The master is not responding.\n"),
        _done(0, '{"gateway": true, "master": true, "node1": false, "node2": true}'),
        _done(0, '{"gateway": true, "master": true, "node1": true, "node2": true}'),
    ]

    def ssh(name, command, timeout=None, capture=True, check=False):
        if command == "true":  # the frozen probe: node1 runs nothing
            if name == "node1":
                raise subprocess.TimeoutExpired("ssh", timeout)
            return _done()
        assert name == "master" and command.endswith("'*' test.ping")
        answer = pings.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    revived = []
    monkeypatch.setattr(remote, "ssh", ssh)
    monkeypatch.setattr(remote.hosts, "running", lambda name: os.getpid())
    monkeypatch.setattr(remote.time, "sleep", lambda secs: None)
    monkeypatch.setattr(config, "FROZEN_AFTER", -1)
    with figures.journal() as lines:
        remote.wait_minions(names, remote.time.monotonic() + 60, revive=revived.append)
    assert revived == ["node1"] and pings == []
    assert re.fullmatch(rf"node1: frozen \(ssh ran nothing in {config.FROZEN_PROBE_TIMEOUT} s\); "
                        rf"its UML kernel pid {os.getpid()} is in state \w, \d+ s of CPU", lines[0])  # fmt: skip
    assert lines[1:] == [
        f"minions: test.ping round 1 got no answer in {config.PING_SSH_TIMEOUT} s; waiting on",
        "minions: test.ping round 2 answered no JSON (exit 1); waiting on",
        "minions: gateway, master, node1, node2 answering test.ping after 0.0 s (4 rounds)",
    ]


def test_wait_minions_that_runs_out_says_how_many_rounds_it_tried(monkeypatch):
    monkeypatch.setattr(remote, "ssh", lambda *a, **kw: _done(0, '{"node1": false}'))
    monkeypatch.setattr(remote.time, "sleep", lambda secs: None)
    with figures.journal() as lines, pytest.raises(LabError, match="minions not answering: node1"):
        remote.wait_minions(["node1"], remote.time.monotonic() + 0.05)
    assert re.fullmatch(r"minions: node1 not answering after \d+ test.ping rounds", lines[-1])


def test_wait_ssh_notes_its_rounds_and_a_probe_that_hangs(monkeypatch):
    answers = {"node1": [0], "node2": [255, 255, 0]}
    monkeypatch.setattr(remote, "ssh", lambda name, command, timeout=None: _done(answers[name].pop(0)))
    monkeypatch.setattr(remote.hosts, "running", lambda name: 4242)
    monkeypatch.setattr(remote.time, "sleep", lambda secs: None)
    with figures.journal() as lines:
        remote.wait_ssh(["node1", "node2"], remote.time.monotonic() + 60)
    assert lines == ["ssh: node1, node2 answering after 0.0 s (3 probe rounds)"]

    def hangs(name, command, timeout=None):
        raise subprocess.TimeoutExpired("ssh", timeout)

    monkeypatch.setattr(remote, "ssh", hangs)
    with figures.journal() as lines, pytest.raises(subprocess.TimeoutExpired):
        remote.wait_ssh(["node1"], remote.time.monotonic() + 60)
    assert lines == [f"ssh: node1 ran nothing in {config.SSH_PROBE_TIMEOUT} s (probe round 1)"]
    with figures.journal() as lines, pytest.raises(LabError, match="no ssh from node1 in time"):
        remote.wait_ssh(["node1"], remote.time.monotonic() - 1)
    assert lines == ["ssh: no answer from node1 after 0 probe rounds"]


def test_up_notes_what_it_booted_and_the_rebooter_each_reboot(tmp_path, monkeypatch):
    booted, waits = [], []
    monkeypatch.setattr(config, "RUN", tmp_path)
    monkeypatch.setattr(ops, "need_root", lambda: None)
    monkeypatch.setattr(ops, "build_kernel", lambda: "linux")
    monkeypatch.setattr(ops, "build_image", lambda: "image")
    monkeypatch.setattr(ops.network, "up", lambda: None)
    monkeypatch.setattr(ops.hosts, "running", lambda name: None)
    monkeypatch.setattr(ops.hosts, "boot", lambda name, spec, kernel, image: booted.append(name))
    monkeypatch.setattr(ops.remote, "wait_ssh", lambda names, deadline: waits.append(("ssh", names)))
    monkeypatch.setattr(ops.remote, "wait_minions", lambda names, deadline, revive: waits.append(("salt", revive)))
    monkeypatch.setattr(ops.figures, "record", lambda metric, value: None)
    monkeypatch.setattr(ops.os, "killpg", lambda pid, sig: None)
    with figures.journal() as lines:
        assert ops.up() == 0
        revive = waits[-1][1]
        revive("node1")
    assert booted == [*RAW["hosts"], "node1"]
    assert waits[-1] == ("ssh", ["node1"])
    assert lines == [
        "up: booted gateway, master, node1, node2, client, each from a fresh disk",
        "node1: rebooted, fresh (killed, its disk dropped, booted again)",
    ]


def test_mpi_run_notes_a_job_that_timed_out(monkeypatch):
    ret = {"retcode": 124, "timed_out": True, "killed": {"localhost": 3, "node1": 2}}
    monkeypatch.setattr(ops.remote, "salt_json", lambda args, check=True: {"master": ret})
    with figures.journal() as lines:
        assert ops.mpi_run("cpi", "np=4") == ret
    assert lines == [
        f"mpi.run cpi np=4: timed out after {config.MPI_TIMEOUT} s (retcode 124, "
        "processes killed per host: {'localhost': 3, 'node1': 2})"
    ]
    monkeypatch.setattr(ops.remote, "salt_json", lambda args, check=True: {"master": {"retcode": 0}})
    with figures.journal() as lines:
        ops.mpi_run("cpi")
    assert lines == []


def test_orchestrations_name_what_failed_or_refused_and_claims_read_the_mine(monkeypatch):
    """The failure report of a membership wait, from a fake master's job
    cache: failed and refused states are named, a green run is counted."""
    returns = {
        "list_jobs": {"1": {"Function": "runner.state.orchestrate"}, "2": {"Function": "runner.cache.mine"},
                      "3": {"Function": "runner.state.orchestrate"}},  # fmt: skip
        "1": {"data": {"master": {"a": {"__id__": "saltcluster-orch-join-lock", "result": True},
                                  "b": {"__id__": "saltcluster-orch-join-membership", "result": False,
                                        "comment": "Minion did not return"}}}},  # fmt: skip
        "3": {"data": {"master": {"a": {"__id__": "saltcluster-orch-health-record", "result": True}}}},
    }

    def salt_run(args, timeout=None, check=True):
        fun = args[1]
        if fun == "jobs.list_jobs":
            out = json.dumps(returns["list_jobs"])
        elif fun == "jobs.lookup_jid":
            out = json.dumps(returns[args[2]])
        else:
            out = "not json"
        return subprocess.CompletedProcess(args, 0, out, "")

    monkeypatch.setattr(probes.remote, "salt_run", salt_run)
    assert probes.orchestrations() == [
        "1 saltcluster-orch-join-membership: False: Minion did not return",
        "3: 1 states succeeded (saltcluster-orch-health-record...)",
    ]
    assert probes.health_claims(["node5"]) == {"node5": None}
