"""Faults survived and bad input refused, on the booted lab (bounded in count
and time).  Killing a web node under load and reconfiguring the upstream
under load are in test_membership (kill node4, leaves)."""

import json
import re
import time

import pytest
from labkit import remote
from labkit.config import address, lb_url
from labkit.probes import GATEWAY_UPSTREAM

from tests.lab.conftest import sh

BASE = ["gateway", "master", "node1", "node2"]
WEB_SITE = "/etc/nginx/saltcluster.d/web.conf"  # the compute node's site file (web:site_file)
WATCHED = {  # files the states write, by host
    "gateway": ["/etc/hosts", "/etc/ssh/ssh_known_hosts", "/etc/nginx/nginx.conf", GATEWAY_UPSTREAM],
    "master": ["/etc/hosts", "/etc/ssh/ssh_known_hosts", "/home/jobhandler/hosts", "/etc/exports"],
    "node1": ["/etc/hosts", "/etc/ssh/ssh_known_hosts", "/etc/nginx/nginx.conf", WEB_SITE, "/etc/fstab"],
    "node2": ["/etc/hosts", "/etc/ssh/ssh_known_hosts", "/etc/nginx/nginx.conf", WEB_SITE, "/etc/fstab"],
}


def checksums():
    sums = {}
    for node, files in WATCHED.items():
        rc, out, err = sh(node, "sha256sum " + " ".join(files))
        assert rc == 0, err
        sums[node] = out
    return sums


@pytest.fixture(scope="module", autouse=True)
def settled(lab, highstated):
    """Start from a quiet cluster: no Salt job running and the watched files
    unchanged over 15 s.  (test_cluster reboots node1, and the leave and
    join orchestrations that follow rewrite these files for a while.)"""
    deadline = time.monotonic() + 600
    last = None
    while time.monotonic() < deadline:
        rc, out, _ = sh("master", "salt-run --out=json jobs.active")
        now = checksums()
        if out.strip() in ("{}", "") and now == last:
            return
        last = now
        time.sleep(15)
    pytest.fail("the cluster did not settle in 600 s")


def salt_json(*args, timeout=600):
    return remote.salt_json(list(args), timeout=timeout, check=False)


def pillar_arg(settings):
    return "pillar=" + json.dumps({"saltcluster": settings})


def test_bad_pillar_value_is_named_and_changes_nothing(lab, highstated):
    before = checksums()
    ret = salt_json("-L", ",".join(BASE), "state.apply", pillar_arg({"user": {"uid": "abc"}}))
    for node in BASE:
        text = json.dumps(ret.get(node))
        assert "saltcluster:user:uid: 'abc' is invalid" in text, (node, text[:500])
    assert checksums() == before


def test_invalid_lb_template_keeps_serving_last_good_config(lab, highstated):
    rc, good, _ = sh("gateway", f"sha256sum {GATEWAY_UPSTREAM}")
    # a site template that renders something nginx refuses (an upstream
    # without servers)
    sh("gateway", "printf 'upstream saltcluster_web {\\n}\\n' > /tmp/broken-lb.conf.jinja")
    ret = salt_json(
        "gateway", "state.apply", "cluster.lb.config", pillar_arg({"lb": {"template": "file:///tmp/broken-lb.conf.jinja"}})
    )["gateway"]
    assert isinstance(ret, dict), ret
    (state,) = [s for k, s in ret.items() if k.split("_|-")[1] == "cluster-lb-config-file-managed-site"]
    assert state["result"] is False and "check_cmd" in state["comment"], state
    rc, now, _ = sh("gateway", f"sha256sum {GATEWAY_UPSTREAM}; systemctl is-active nginx")
    assert now.splitlines() == [good.strip(), "active"]
    rc, out, _ = sh("client", f"for i in 1 2 3 4; do curl -s --max-time 5 {lb_url()}; done")
    # still serving with the old upstream (a backend may sit out its fail_timeout
    # after an earlier test, so the order is not checked here)
    answers = [line.split()[0] for line in out.splitlines()]
    assert len(answers) == 4 and set(answers) <= {"node1", "node2"}, out


def test_nfs_server_restart_mount_recovers(lab, highstated):
    stamp = f"before-restart-{time.time()}"
    rc, _, err = sh("node1", f"su jobhandler -c 'echo {stamp} > /home/jobhandler/restart-probe && sync'")
    assert rc == 0, err
    rc, _, err = sh("master", "systemctl restart nfs-server && systemctl is-active nfs-server")
    assert rc == 0, err
    rc, out, err = sh(
        "node1",
        "timeout 120 su jobhandler -c 'cat /home/jobhandler/restart-probe && echo after > /home/jobhandler/restart-probe2 "
        "&& cat /home/jobhandler/restart-probe2'",
        timeout=180,
    )  # fmt: skip
    assert rc == 0 and out.split() == [stamp, "after"], (out, err)
    rc, out, _ = sh("master", "cat /home/jobhandler/restart-probe2")
    assert out.strip() == "after"


HANG_C = r"""
#include <mpi.h>
#include <unistd.h>
int main(int argc, char **argv) { MPI_Init(&argc, &argv); for (;;) pause(); }
"""


def test_hanging_program_is_killed_on_every_node(lab, highstated):
    rc, _, err = sh(
        "master",
        f"su jobhandler -c 'cd && cat > hangs.c <<\"EOF\"\n{HANG_C}\nEOF\nmpicc -o bin/hangs hangs.c'",
    )  # fmt: skip
    assert rc == 0, err
    try:
        ret = salt_json("master", "mpi.run", "hangs", "np=4", "timeout=15")["master"]
        assert isinstance(ret, dict) and ret["timed_out"] is True and ret["retcode"] != 0, ret
        for node in ("master", "node1", "node2"):
            rc, out, _ = sh(node, "pgrep -u jobhandler -a -f 'bin/hangs|hydra_pmi_proxy|mpiexec' || true")
            assert out.strip() == "", (node, out)
    finally:
        sh("master", "rm -f /home/jobhandler/bin/hangs /home/jobhandler/hangs.c")


@pytest.mark.parametrize(
    "args, named",
    [
        (["../../../bin/sh"], "'../../../bin/sh'"),
        (["/bin/sh"], "'/bin/sh'"),
        (["cpi;id"], "'cpi;id'"),
        (["cpi", "np=0"], "np=0"),
        (["cpi", "np=99"], "np=99"),
        (["cpi", "hosts=evil"], "'evil'"),
        (["cpi", "args=['$(id)']"], "'$(id)'"),
    ],
)
def test_mpi_run_refuses_bad_input(lab, highstated, args, named):
    ret = remote.salt_json(["master", "mpi.run", *args], check=False)["master"]
    assert isinstance(ret, str) and ret.startswith("ERROR executing 'mpi.run'") and named in ret, ret


def test_nfs_export_reaches_only_the_compute_members_with_root_squash(lab, highstated):
    rc, out, _ = sh("master", "exportfs -v")
    assert "/home/jobhandler" in out and "root_squash" in out and "no_root_squash" not in out, out
    clients = set(re.findall(r"(\d+\.\d+\.\d+\.\d+(?:/\d+)?)\(", out))
    assert clients == {address("node1"), address("node2")}, out  # no cidr, not the gateway
    # the outside client (routed through the gateway) cannot mount it
    rc, out, err = sh(
        "client",
        f"mkdir -p /mnt/probe; timeout 60 mount -t nfs4 -o ro,soft,timeo=30,retrans=1 {address('master')}:/home/jobhandler /mnt/probe; "
        "echo rc=$?; ls /mnt/probe 2>&1 | head -3; umount /mnt/probe 2>/dev/null; true",
        timeout=120,
    )  # fmt: skip
    assert "rc=0" not in out, out
    # root on a member is squashed: as uid 0 it can neither write the home nor
    # read the key (it can still become uid 100: sec=sys trusts root on members)
    rc, out, _ = sh("node1", "touch /home/jobhandler/root-probe; echo rc=$?; cat /home/jobhandler/.ssh/id_ed25519 >/dev/null; echo rc=$?")
    assert out.split() == ["rc=1", "rc=1"], out


def test_private_key_0600_and_no_password_login(lab, highstated):
    rc, out, _ = sh("master", "stat -c '%a %U %G' /home/jobhandler/.ssh/id_ed25519")
    assert out.split() == ["600", "jobhandler", "jobhandler"], out
    for node in BASE:
        rc, out, _ = sh(node, f"sshd -T -C user=jobhandler,host=x,addr={address('master')} | grep -E '^(passwordauthentication|kbdinteractiveauthentication) '")
        assert sorted(out.split()) == sorted(["passwordauthentication", "no", "kbdinteractiveauthentication", "no"]), (node, out)
    rc, out, err = sh("master", "ssh -o BatchMode=yes -o PubkeyAuthentication=no -o StrictHostKeyChecking=no "
                                "-o UserKnownHostsFile=/dev/null jobhandler@node1 true; echo rc=$?")  # fmt: skip
    assert "rc=255" in out and "Permission denied" in err, (out, err)


def test_salt_master_accepts_only_token_or_preseeded_keys(lab, highstated):
    """The master's effective settings (the rogue-minion test shows it live)."""
    rc, out, err = sh("master", "/opt/salt/bin/python -c \"import json, salt.config; "
                                "o = salt.config.master_config('/etc/salt/master'); "
                                "print(json.dumps([o['auto_accept'], o['open_mode'], o.get('autosign_grains_dir')]))\"")  # fmt: skip
    assert rc == 0, err
    auto_accept, open_mode, autosign_dir = json.loads(out.strip().splitlines()[-1])
    assert auto_accept is False and open_mode is False and autosign_dir
