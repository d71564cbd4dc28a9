"""End to end through a real master: targeting by grain, mine membership,
states applied for real on scratch paths, and mpi.run running MPICH."""

import glob
import hashlib
import pathlib
import pwd
import socket
import subprocess

import pytest

from tests.integration.conftest import HOSTS, published_mine
from tests.integration.conftest import by_id as _states
from tests.integration.conftest import ok as _ok


def test_roles_target_by_grain(synced, salt_cli):
    ret = salt_cli.run("-G", "test.ping", minion_tgt="roles:compute")
    assert ret.returncode == 0
    assert sorted(ret.data) == ["node1", "node2"]


def test_membership_published_at_start_by_core_functions(synced, salt_run_cli, salt_cli):
    """What each minion's start-up mine run sent (the `synced` fixture ran
    no mine.update, and the mine held this before any module was synced):
    pillar/mine.sls's core functions' returns, public host keys only; and
    cluster.host_info shows it as the others assemble it."""
    mine = published_mine(salt_run_cli, list(HOSTS))
    for minion, roles in HOSTS.items():
        grains = mine[minion]["saltcluster_grains"]
        assert grains["id"] == minion and grains["roles"] == roles and isinstance(grains["num_cpus"], int), grains
        assert "127.0.0.1" in mine[minion]["saltcluster_addrs"]
        keys = mine[minion]["saltcluster_host_keys"]
        assert all(name.endswith(".pub") and not name.endswith("-cert.pub") for name in keys), sorted(keys)
        assert "PRIVATE KEY" not in str(keys)
    ret = salt_cli.run("cluster.host_info", minion_tgt="node1")
    _ok(ret)
    assert ret.data["host"] == "node1" and ret.data["roles"] == ["compute"]
    files = mine["node1"]["saltcluster_host_keys"]
    assert ret.data["host_keys"] == [" ".join(files[name].split(" ", 2)[:2]) for name in sorted(files)]


def test_membership_from_mine(synced, salt_cli):
    ret = salt_cli.run("cluster.members", minion_tgt="gateway")
    _ok(ret)
    assert [(m["name"], m["addr"], m["roles"]) for m in ret.data] == [
        ("gateway", "127.0.0.1", ["gateway"]),
        ("master", "127.0.0.1", ["master"]),
        ("node1", "127.0.0.1", ["compute"]),
        ("node2", "127.0.0.1", ["compute"]),
    ]


def test_members_carry_this_machines_host_keys(synced, salt_cli):
    """Every minion runs here: each publishes this machine's own ssh host
    keys (as sshd presents them), and the checks on the receiving side
    keep every one of them."""
    expected = []
    for path in sorted(glob.glob("/etc/ssh/ssh_host_*_key.pub")):
        kind, blob = pathlib.Path(path).read_text().split()[:2]
        expected.append(f"{kind} {blob}")
    if not expected:
        pytest.skip("this machine has no ssh host keys (scripts/bootstrap installs openssh-server)")
    ret = salt_cli.run("cluster.members", minion_tgt="gateway")
    _ok(ret)
    assert {m["name"]: m["host_keys"] for m in ret.data} == {
        name: expected for name in ("gateway", "master", "node1", "node2")
    }
    ret = salt_cli.run("cluster.known_hosts", minion_tgt="gateway")
    _ok(ret)
    names = ("gateway", "master", "node1", "node2")
    assert ret.data.splitlines() == [f"{n},127.0.0.1 {k}" for n in names for k in expected]


def test_hosts_state_on_every_host(synced, salt_cli, scratch):
    ret = salt_cli.run("state.apply", "cluster.hosts", minion_tgt="*")
    _ok(ret)
    for minion in ("gateway", "master", "node1", "node2"):
        text = (scratch / minion / "hosts").read_text()
        assert "127.0.0.1 node1\n127.0.0.1 node2\n" in text
    ret = salt_cli.run("state.apply", "cluster.hosts", minion_tgt="*")
    assert all(not s["changes"] for m in ret.data for s in _states(ret, m).values())


def test_gateway_upstream_checked_by_nginx(synced, salt_cli, scratch):
    # nginx's files are in the minion's scratch directory (conftest's pillar)
    ret = salt_cli.run("-G", "state.apply", "cluster.lb.config", minion_tgt="roles:gateway")
    _ok(ret)
    nginx_conf = scratch / "gateway" / "nginx" / "nginx.conf"
    conf = (nginx_conf.parent / "saltcluster.d" / "lb.conf").read_text()
    assert "server 127.0.0.1:80 weight=1 max_fails=1 fail_timeout=10s;  # node1" in conf
    assert "# node2" in conf and "# master" not in conf and "zone saltcluster_web" in conf
    assert "keepalive 16;" in conf and "proxy_http_version 1.1;" in conf and "proxy_read_timeout 5s;" in conf
    # the base config includes the site, and nginx accepts the live set
    assert "include saltcluster.d/*.conf;" in nginx_conf.read_text()
    run = subprocess.run(["nginx", "-t", "-q", "-c", str(nginx_conf)], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize(
    "override,named",
    [
        ({"lb": {"method": "fastest"}}, "saltcluster:lb:method: 'fastest'"),
        ({"network": {"cidr": "300.1.1.0/24"}}, "saltcluster:network:cidr: '300.1.1.0/24'"),
        ({"user": {"uid": "hundred"}}, "saltcluster:user:uid: 'hundred'"),
    ],
)
def test_bad_pillar_refused_before_any_change(synced, salt_cli, scratch, override, named):
    conf = scratch / "gateway" / "nginx" / "saltcluster.d" / "lb.conf"
    before = hashlib.sha256(conf.read_bytes()).hexdigest() if conf.exists() else None
    ret = salt_cli.run("state.apply", "cluster.lb", pillar={"saltcluster": override}, minion_tgt="gateway")
    assert ret.returncode != 0
    assert named in str(ret.data)
    after = hashlib.sha256(conf.read_bytes()).hexdigest() if conf.exists() else None
    assert before == after


def test_uid_held_by_system_account_is_named(synced, salt_cli):
    try:
        holder = pwd.getpwuid(100).pw_name
    except KeyError:
        pytest.skip("uid 100 is free on this machine")
    ret = salt_cli.run(
        "state.apply", "cluster.users", pillar={"saltcluster": {"user": {"uid": 100}}}, minion_tgt="master"
    )
    assert ret.returncode != 0
    states = _states(ret)
    check = states["cluster-users-cluster-user-uid-free-scint"]
    assert check["result"] is False and f"held by {holder!r}" in check["comment"]
    assert "uid 100" not in str(states["cluster-users-user-present-scint"].get("changes", {}))
    assert pwd.getpwuid(100).pw_name == holder


def test_mpi_user_same_uid_and_gid(mpi_user):
    entry = pwd.getpwnam(mpi_user)
    assert (entry.pw_uid, entry.pw_gid) == (64200, 64200)


def test_master_hostfile_and_programs(mpi_user, salt_cli, scratch):
    ret = salt_cli.run("state.apply", "cluster.mpi.hostfile,cluster.mpi.programs", minion_tgt="master")
    _ok(ret)
    home = scratch / "home" / mpi_user
    lines = [ln for ln in (home / "hosts").read_text().splitlines() if not ln.startswith("#")]
    assert [ln.split(":")[0] for ln in lines] == ["node1", "node2"]
    for prog in ("cpi", "hellow", "mandel"):
        assert (home / "bin" / prog).stat().st_uid == pwd.getpwnam(mpi_user).pw_uid
    ret = salt_cli.run("mpi.programs", minion_tgt="master")
    assert ret.data == ["cpi", "hellow", "mandel"]
    # idempotent: nothing rebuilt, nothing rewritten
    ret = salt_cli.run("state.apply", "cluster.mpi.hostfile,cluster.mpi.programs", minion_tgt="master")
    changed = {k: v["changes"] for k, v in _states(ret).items() if v["changes"]}
    assert changed == {}


def test_mpi_run_cpi(local_hostfile, salt_cli):
    ret = salt_cli.run("mpi.run", "cpi", "np=4", minion_tgt="master")
    _ok(ret)
    assert ret.data["retcode"] == 0 and ret.data["np"] == 4
    assert "pi is approximately 3.14159265" in ret.data["stdout"]
    assert ret.data["hosts"] == ["localhost"]


def test_mpi_run_hellow_and_mandel(local_hostfile, salt_cli, mpi_user):
    ret = salt_cli.run("mpi.run", "hellow", "np=3", minion_tgt="master")
    assert sorted(ret.data["stdout"].splitlines()) == [
        f"Hello world from rank {r} of 3 on {socket.gethostname()}" for r in range(3)
    ]
    ret = salt_cli.run("mpi.run", "mandel", "np=2", "args=[64, 48, 50]", minion_tgt="master")
    assert ret.data["retcode"] == 0, ret.data
    image = local_hostfile.parent / "mandel.pgm"
    assert image.read_bytes().startswith(b"P5\n64 48\n255\n")
    assert image.stat().st_uid == pwd.getpwnam(mpi_user).pw_uid  # never root


def test_mpi_check(local_hostfile, salt_cli):
    ret = salt_cli.run("mpi.check", minion_tgt="master")
    assert ret.data["answered"] == [socket.gethostname()] and ret.data["retcode"] == 0


@pytest.mark.parametrize(
    "args,named",
    [
        (["../../../bin/sh"], "'../../../bin/sh'"),
        (["/bin/sh"], "'/bin/sh'"),
        (["cpi", "np=0"], "np=0"),
        (["cpi", "np=99"], "np=99"),
        (["cpi", "hosts=node9"], "'node9'"),
        (["cpi", "args=['1;reboot']"], "'1;reboot'"),
    ],
)
def test_mpi_run_refuses(local_hostfile, salt_cli, args, named):
    ret = salt_cli.run("mpi.run", *args, minion_tgt="master")
    assert ret.returncode != 0
    assert named in str(ret.data)


def test_mpi_run_async(local_hostfile, salt_cli, salt_run_cli):
    ret = salt_cli.run("--async", "mpi.run", "cpi", "np=2", minion_tgt="master")
    assert ret.returncode == 0
    jid = str(ret.data if isinstance(ret.data, (str, int)) else ret.stdout).split()[-1]
    for _ in range(60):
        res = salt_run_cli.run("jobs.lookup_jid", jid)
        if res.data and "master" in res.data:
            break
        import time

        time.sleep(1)
    assert res.data["master"]["retcode"] == 0
    assert "pi is approximately" in res.data["master"]["stdout"]
