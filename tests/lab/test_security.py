"""Attacks on the cluster, performed for real on the booted lab; each must
change nothing (README, Security model).  The MPI user, the data a member
publishes and the events it sends are not trusted."""

import json
import shlex
import time

import pytest
from labkit import ops, probes, remote
from labkit.config import address

from tests.lab.conftest import sh

CANARY = "/etc/saltcluster-canary"
BASE = ["gateway", "master", "node1", "node2"]
# every file the formula writes in the shared home
HOME_FILES = ["hosts", ".ssh/id_ed25519", ".ssh/id_ed25519.pub", ".ssh/authorized_keys", "src/cpi.c", "bin/cpi"]
SLEEP_C = r"""
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int rank;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    sleep(atoi(argv[1]));
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) printf("slept intact\n");
    MPI_Finalize();
    return 0;
}
"""
HANG_C = r"""
#include <mpi.h>
#include <unistd.h>
int main(int argc, char **argv) { MPI_Init(&argc, &argv); for (;;) pause(); }
"""


def as_jobhandler(script, timeout=120):
    return sh("master", f"su - jobhandler -c {shlex.quote(script)}", timeout=timeout)


@pytest.fixture
def canary(lab):
    sh("master", f"echo canary > {CANARY}; chmod 644 {CANARY}")
    yield
    sh("master", f"rm -f {CANARY}")


@pytest.mark.parametrize("kind", ["symlink", "hardlink"])
def test_links_in_the_shared_home_change_nothing_outside(lab, highstated, canary, kind):
    """jobhandler (any MPI job) swaps every file the formula writes in its
    home for a link to a root-owned file; the states that rewrite them run
    as root.  The root file keeps its content and owner, and the home gets
    regular files of its own back."""
    # a hard link to another user's file needs fs.protected_hardlinks=0
    # (Debian's default is 1): lift it so the attack can be made at all
    sh("master", "sysctl -qw fs.protected_hardlinks=0")
    try:
        link = "ln -sf" if kind == "symlink" else "ln -f"
        rc, out, err = as_jobhandler("cd && " + "; ".join(f"{link} {CANARY} {f}" for f in HOME_FILES) + "; ls -l hosts")
        assert rc == 0 and (CANARY in out or kind == "hardlink"), (out, err)
        ret = remote.salt_json(["master", "state.apply", "cluster.mpi.hostfile,cluster.ssh.keys,cluster.mpi.programs"],
                               check=False)["master"]  # fmt: skip
        assert isinstance(ret, dict), ret
        failed = {k: v["comment"] for k, v in ret.items() if v.get("result") is False}
        assert failed == {}, failed
    finally:
        sh("master", "sysctl -qw fs.protected_hardlinks=1")
    rc, out, _ = sh("master", f"cat {CANARY}; stat -c '%U %a %h' {CANARY}")
    assert out.split() == ["canary", "root", "644", "1"], out
    for name in HOME_FILES:
        rc, out, _ = sh("master", f"stat -c '%F %U %h' /home/jobhandler/{name}")
        assert out.strip() == "regular file jobhandler 1", (name, out)
    # the cluster still works on what the states put back
    ret = ops.mpi_run("cpi", "np=4")
    assert ret["retcode"] == 0, ret


def test_hydra_section_and_loader_variables_refused(lab, highstated):
    sh("master", "rm -f /tmp/x")
    ret = remote.salt_json(["master", "mpi.run", "hellow", 'args=[":", "-n", "1", "/usr/bin/touch", "/tmp/x"]'],
                           check=False)["master"]  # fmt: skip
    assert isinstance(ret, str) and ret.startswith("ERROR") and "':'" in ret, ret
    for node in ("master", "node1", "node2"):
        rc, out, _ = sh(node, "test -e /tmp/x; echo $?")
        assert out.strip() == "1", node
    ret = remote.salt_json(["master", "mpi.run", "hellow", 'env={"LD_PRELOAD": "/tmp/evil.so"}'], check=False)["master"]
    assert isinstance(ret, str) and ret.startswith("ERROR") and "LD_PRELOAD" in ret, ret


# node2's forged membership: each of the mine entries a member publishes
# (pillar/mine.sls), sent by hand with whatever root on node2 put in a grain
FORGED_ENTRIES = {
    "saltcluster_grains": {"id": "master", "roles": ["compute", "master"], "num_cpus": 1000000},
    "saltcluster_addrs": [address("node2"), address("master")],
    "saltcluster_host_keys": {"ed25519.pub": f"ssh-ed25519 AAAA\n{address('node2')} ssh-ed25519 AAAAforged"},
}


def test_forged_membership_from_a_member_changes_nothing(lab, highstated):
    """Root on node2 publishes another host's name, a second known_hosts line
    and a huge cpu count; a membership run on every host keeps the master's
    name and address on every other host, and no forged line lands there.
    (node2's own files are not checked: its root is the attacker.)"""
    forge = " && ".join(
        f"salt-call --local grains.setval {entry}_forged '{json.dumps(data)}' >/dev/null"
        f" && salt-call mine.send {entry} mine_function=grains.get {entry}_forged"
        for entry, data in FORGED_ENTRIES.items()
    )
    rc, _, err = sh("node2", forge)
    assert rc == 0, err
    try:
        ret = remote.salt_json(["-L", ",".join(BASE), "state.apply", "cluster.membership"], check=False)
        assert set(ret) == set(BASE), ret
        for node in (n for n in BASE if n != "node2"):
            rc, out, _ = sh(node, "sed -n '/BEGIN saltcluster/,/END saltcluster/p' /etc/hosts")
            master_lines = [line for line in out.splitlines() if line.split()[-1:] == ["master"]]
            assert master_lines == [f"{address('master')} master"], (node, out)
            rc, out, _ = sh(node, "grep -c forged /etc/ssh/ssh_known_hosts || true")
            assert out.strip() == "0", node
        rc, out, _ = sh("master", "cat /home/jobhandler/hosts")
        assert "1000000" not in out and "master:" not in out, out
    finally:
        sh("node2", "; ".join(f"salt-call --local grains.delkey {entry}_forged >/dev/null" for entry in FORGED_ENTRIES)
                    + "; salt-call mine.update >/dev/null")  # fmt: skip
        remote.salt_json(["-L", ",".join(BASE), "state.apply", "cluster.membership"], check=False)
    rc, out, _ = sh("master", "grep -c '^node2:' /home/jobhandler/hosts")
    assert out.strip() == "1", "node2 is a member again once it publishes the truth"


def test_a_timed_out_job_leaves_another_job_intact(lab, highstated):
    """Two jobs at once on the same nodes: one hangs and is killed at its
    timeout; the other, still running then, finishes with its output."""
    for name, src in (("hangs", HANG_C), ("sleeper", SLEEP_C)):
        rc, _, err = as_jobhandler(f"cat > {name}.c <<'EOF'\n{src}\nEOF\nmpicc -o bin/{name} {name}.c")
        assert rc == 0, err
    out = {}

    def run(key, args, timeout):
        out[key] = remote.salt_json(["master", "mpi.run", *args], timeout=timeout, check=False).get("master")

    import threading

    try:
        hang = threading.Thread(target=run, args=("hang", ["hangs", "np=2", "ppn=1", "timeout=15"], 300))
        sleep = threading.Thread(target=run, args=("sleep", ["sleeper", "np=2", "ppn=1", "args=[35]", "timeout=120"], 300))
        hang.start()
        time.sleep(3)
        sleep.start()
        hang.join(320)
        sleep.join(320)
        assert isinstance(out["hang"], dict) and out["hang"]["timed_out"] is True, out["hang"]
        assert isinstance(out["sleep"], dict) and out["sleep"]["retcode"] == 0, out["sleep"]
        assert "slept intact" in out["sleep"]["stdout"], out["sleep"]
        for node in ("master", "node1", "node2"):
            rc, ps, _ = sh(node, "pgrep -u jobhandler -a -f 'bin/hangs|bin/sleeper' || true")
            assert ps.strip() == "", (node, ps)
    finally:
        as_jobhandler("rm -f bin/hangs bin/sleeper hangs.c sleeper.c")


def _event_from(node, tag, preload):
    rc, _, err = sh(node, f"salt-call event.send {tag} preload={json.dumps(json.dumps(preload))}")
    assert rc == 0, err


def _highstates_on(node):
    rc, out, _ = sh(node, "grep -c 'Executing command state.highstate' /var/log/salt/minion || true")
    return int(out.strip() or 0)


def _quiet(timeout=400):
    """Until the master runs no job (the reactors' orchestrations included)."""
    deadline = time.monotonic() + timeout
    time.sleep(10)
    while time.monotonic() < deadline:
        rc, out, _ = sh("master", "salt-run --out=json jobs.active")
        if out.strip() in ("{}", ""):
            return
        time.sleep(5)
    pytest.fail("the master did not go quiet")


def test_forged_events_from_a_member_change_nothing(lab, highstated):
    """Root on node2 sends the events the reactors act on, with payloads
    naming node1: a presence loss (both ways event.send can shape it), a key
    deletion, and start events replayed for node1.  node1 stays a member
    everywhere, and replayed starts run no highstate on it.  (The first
    start naming a base host that never joined through the reactor is a
    real join of it: bounded, once.)"""
    start = {"tag": "salt/minion/node1/start", "data": {"id": "node1", "cmd": "_minion_event", "grains": {"roles": ["compute"]}}}
    _event_from("node2", "salt/minion/node1/start", {"events": [start]})
    _quiet()
    before = _highstates_on("node1")
    _event_from("node2", "salt/presence/change", {"lost": ["node1"]})
    _event_from("node2", "salt/presence/change",
                {"events": [{"tag": "salt/presence/change", "data": {"new": [], "lost": ["node1"]}}]})  # fmt: skip
    _event_from("node2", "salt/key", {"act": "delete", "id": "node1"})
    for _ in range(3):
        _event_from("node2", "salt/minion/node1/start", {"events": [start]})
    _quiet()
    view = probes.membership_view("node1")
    assert all(view.values()), view
    rc, out, _ = sh("master", "salt-run --out=json cache.mine tgt=node1 tgt_type=list")
    assert "node1" in json.loads(out or "{}"), out
    rc, out, _ = sh("master", "exportfs -v")
    assert f"{address('node1')}(" in out, out
    assert _highstates_on("node1") == before
