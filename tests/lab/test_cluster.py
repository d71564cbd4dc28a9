"""End to end on the booted lab after a highstate."""

import re
import time

import pytest
from labkit import ops, remote
from labkit.config import address, lb_url

from tests.lab.conftest import sh

COMPUTE = ["node1", "node2"]
CLUSTER = ["gateway", "master", "node1", "node2"]


def test_jobhandler_same_uid_and_gid_everywhere(lab, highstated):
    for node in CLUSTER:
        rc, out, _ = sh(node, "id -u jobhandler; id -g jobhandler")
        assert rc == 0 and out.split() == ["100", "1100"], (node, out)


def test_home_is_nfs_mount_of_master(lab, highstated):
    for node in COMPUTE:
        rc, out, _ = sh(node, "findmnt -n -o SOURCE,FSTYPE /home/jobhandler; grep jobhandler /etc/fstab")
        assert rc == 0, out
        source, fstype = out.splitlines()[0].split()
        assert source == "master:/home/jobhandler" and fstype == "nfs4"
        fstab = out.splitlines()[1].split()
        assert fstab[:3] == ["master:/home/jobhandler", "/home/jobhandler", "nfs4"]
        assert "_netdev" in fstab[3].split(",")


def test_file_written_on_master_seen_on_nodes(lab, highstated):
    stamp = f"written-{time.time()}"
    rc, _, err = sh("master", f"su jobhandler -c 'echo {stamp} > /home/jobhandler/nfs-probe'")
    assert rc == 0, err
    for node in COMPUTE:
        rc, out, _ = sh(node, "cat /home/jobhandler/nfs-probe; stat -c '%u:%g' /home/jobhandler/nfs-probe")
        assert out.split() == [stamp, "100:1100"], (node, out)


def test_ssh_between_hosts_strict_and_passwordless(lab, highstated):
    for node in COMPUTE:
        rc, out, err = sh(
            "master",
            f"su jobhandler -c 'ssh -o BatchMode=yes -o StrictHostKeyChecking=yes {node} hostname'",
        )  # fmt: skip
        assert rc == 0 and out.strip() == node, err


def test_private_key_mode_and_password_login_off(lab, highstated):
    rc, out, _ = sh("master", f"stat -c '%a %U' /home/jobhandler/.ssh/id_ed25519; sshd -T -C user=jobhandler,host=x,addr={address('node1')} | grep -i '^passwordauthentication'")
    assert out.split() == ["600", "jobhandler", "passwordauthentication", "no"], out


def test_hostfile_lists_compute_nodes_with_slots(lab, highstated):
    rc, out, _ = sh("master", "grep -v '^#' /home/jobhandler/hosts")
    assert out.split() == ["node1:2", "node2:2"]


def test_hosts_file_everywhere(lab, highstated):
    for node in CLUSTER:
        rc, out, _ = sh(node, "sed -n '/BEGIN saltcluster/,/END saltcluster/p' /etc/hosts")
        assert all(f"{address(name)} {name}" in out for name in ("node1", "node2", "gateway")), node


def test_mpi_run_cpi(lab, highstated):
    ret = ops.mpi_run("cpi", "np=4")
    assert ret["retcode"] == 0, ret
    assert re.search(r"pi is approximately 3\.14159", ret["stdout"])
    assert ret["hosts"] == COMPUTE and ret["np"] == 4


def test_mpi_run_hellow_on_both_nodes(lab, highstated):
    ret = ops.mpi_run("hellow", "np=4")
    assert ret["retcode"] == 0, ret
    hosts = set(re.findall(r"on (\S+)$", ret["stdout"], re.M))
    assert hosts == set(COMPUTE), ret["stdout"]


def test_mandel_writes_image_to_shared_home(lab, highstated):
    ret = ops.mpi_run("mandel", "np=4", "args=[320, 240, 100]")
    assert ret["retcode"] == 0, ret
    rc, out, _ = sh("node2", "head -c 2 /home/jobhandler/mandel.pgm; echo; stat -c %U /home/jobhandler/mandel.pgm")
    assert out.split() == ["P5", "jobhandler"]


def _whoami(origin, url, n):
    answers = []
    for _ in range(n):
        rc, out, _ = sh(origin, f"curl -s --max-time 5 {url}")
        answers.append(out.split())
    return answers


@pytest.mark.parametrize(
    "origin,url,client_addr",
    [("master", "http://gateway/whoami", address("master")), ("client", lb_url(), address("client", "external"))],
)
def test_gateway_round_robin_strict_with_forwarded_for(lab, highstated, origin, url, client_addr):
    answers = _whoami(origin, url, 6)
    names = [a[0] for a in answers if a]
    assert len(names) == 6, answers
    assert set(names) == set(COMPUTE)
    assert all(names[i] != names[i + 1] for i in range(5)), names
    assert all(a[1] == client_addr for a in answers), answers


def test_second_highstate_changes_nothing(lab, highstated):
    secs, changed, failed = ops.highstate()
    assert not failed
    assert changed == 0


def test_reboot_node_brings_mount_and_web_back(lab, highstated):
    remote.ssh("node1", "systemctl reboot", timeout=15)
    time.sleep(5)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        res = remote.ssh("node1", "findmnt -n -o FSTYPE /home/jobhandler && systemctl is-active nginx", timeout=15)
        if res.returncode == 0 and res.stdout.split() == ["nfs4", "active"]:
            break
        time.sleep(3)
    else:
        pytest.fail("node1 did not come back with its mount and nginx")
