"""cluster_health execution module: the role -> checks table, each check's
pass and its reason when it fails, and the read-only hostfile/upstream
readers."""

import copy
import http.server
import os
import pwd
import subprocess
import threading
import time

import cluster
import cluster_health
import pytest
import salt.utils.yaml
from salt.exceptions import CommandExecutionError
from tests.support.mine import host_key

ED25519 = host_key("ssh-ed25519", "node1")
ECDSA = host_key("ecdsa-sha2-nistp256", "node1")
OTHER = host_key("ssh-ed25519", "somebody-else")


@pytest.fixture
def home(tmp_path):
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def lb_conf(tmp_path):
    """The live nginx.conf."""
    return tmp_path / "nginx.conf"


@pytest.fixture
def cfg(defaults_text, home, lb_conf):
    cfg = salt.utils.yaml.safe_load(defaults_text)["saltcluster"]
    cfg["user"]["home"] = str(home)
    cfg["nginx"]["config_file"] = str(lb_conf)
    return cluster.validate(cfg, grains={})


@pytest.fixture
def lb_site(cfg):
    """The file with the gateway's upstream (nginx:site_dir/lb:site_file)."""
    path = cluster_health._lb_file(cfg)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return path


@pytest.fixture
def roles():
    return ["compute"]


@pytest.fixture
def info(roles):
    """What cluster.host_info publishes for this host."""
    return {"host": "node1", "roles": roles, "addrs": ["10.5.5.9"], "num_cpus": 2, "host_keys": [ED25519, ECDSA]}


@pytest.fixture
def commands():
    """What the fake cmd.run_all answers, by program; and what it was asked."""
    return {
        "answers": {
            "setpriv": {"retcode": 0, "stdout": "100:1100\n", "stderr": ""},
            "ssh-keyscan": {"retcode": 0, "stdout": f"127.0.0.1 {ED25519}\n127.0.0.1 {ECDSA}\n", "stderr": ""},
            "nginx": {"retcode": 0, "stdout": "", "stderr": ""},
        },
        "calls": [],
    }


@pytest.fixture
def members():
    return [{"name": "master", "addr": "10.5.5.10", "roles": ["master"]}]


@pytest.fixture
def configure_loader_modules(cfg, info, commands, members):
    def settings(cached=False):
        assert cached is True, "health read settings with a fileserver fetch"
        return copy.deepcopy(cfg)

    def run_all(cmd, **kwargs):
        commands["calls"].append((cmd, kwargs))
        return dict(commands["answers"][cmd[0]])

    def members_fn(role=None):
        if isinstance(members, Exception):
            raise members
        return copy.deepcopy(members)

    return {
        cluster_health: {
            "__salt__": {
                "cluster.settings": settings,
                "cluster.host_info": lambda: copy.deepcopy(info),
                "cluster.members": members_fn,
                "cluster.hostfile": lambda: "node1:2\nnode2:2",
                "cluster.parse_hostfile": cluster.parse_hostfile,
                "cmd.run_all": run_all,
            },
            "__opts__": {"id": "node1"},
            "__grains__": {"id": "node1", "host": "node1", "nodename": "node1"},
            "__context__": {},
        }
    }


@pytest.fixture(autouse=True)
def mpi_user(monkeypatch):
    """jobhandler as the host's passwd gives it (it need not exist here)."""
    accounts = {"jobhandler": pwd.struct_passwd(("jobhandler", "x", 100, 1100, "", "/home/jobhandler", "/bin/bash"))}

    def getpwnam(name):
        return accounts[name]

    monkeypatch.setattr(cluster_health.pwd, "getpwnam", getpwnam)
    return accounts


def one_check(name, cfg, info):
    return cluster_health.CHECKS[name](cfg, info)


def failed(result, *words):
    assert result["ok"] is False, result
    assert "\n" not in result["reason"]
    for word in words:
        assert word in result["reason"], result["reason"]
    return result["reason"]


# -- the table ------------------------------------------------------------------


@pytest.mark.parametrize(
    "roles, names",
    [
        ([], []),
        (["compute"], ["nfs_home", "home_writable", "web_whoami", "ssh_host_key"]),
        (["master"], ["nfs_export", "hostfile"]),
        (["gateway"], ["nginx_running", "nginx_config"]),
        # the master serves the home: it mounts nothing
        (["master", "compute"], ["home_writable", "web_whoami", "ssh_host_key", "nfs_export", "hostfile"]),
        (["gateway", "compute"], ["nfs_home", "home_writable", "web_whoami", "ssh_host_key", "nginx_running",
                                  "nginx_config"]),
    ],
)  # fmt: skip
def test_role_table(roles, names):
    assert cluster_health._checks_for(roles) == names


def test_every_named_check_exists():
    for names in cluster_health.ROLE_CHECKS.values():
        assert set(names) <= set(cluster_health.CHECKS)
    assert set(cluster_health.CHECKS) == {n for names in cluster_health.ROLE_CHECKS.values() for n in names}


@pytest.fixture
def fake_checks(monkeypatch):
    """Every check replaced by one that records its call and passes, unless
    its name is in the returned dict's ``fail``."""
    state = {"ran": [], "fail": {}}
    for name in cluster_health.CHECKS:

        def fake(cfg, info, name=name):
            state["ran"].append(name)
            if name in state["fail"]:
                return cluster_health._fail(state["fail"][name])
            return cluster_health._ok()

        monkeypatch.setitem(cluster_health.CHECKS, name, fake)
    return state


@pytest.mark.parametrize("roles", [["compute", "master"]])
def test_check_runs_the_roles_checks(fake_checks, roles):
    ret = cluster_health.check()
    assert ret == {
        "host": "node1",
        "roles": ["compute", "master"],
        "healthy": True,
        "checks": {n: {"ok": True, "reason": ""} for n in fake_checks["ran"]},
    }
    assert fake_checks["ran"] == ["home_writable", "web_whoami", "ssh_host_key", "nfs_export", "hostfile"]


def test_one_failed_check_makes_the_host_unhealthy(fake_checks):
    fake_checks["fail"]["web_whoami"] = "GET http://127.0.0.1:80/whoami: Connection refused"
    ret = cluster_health.check()
    assert ret["healthy"] is False
    assert ret["checks"]["web_whoami"] == {"ok": False, "reason": "GET http://127.0.0.1:80/whoami: Connection refused"}
    assert ret["checks"]["nfs_home"]["ok"] is True


@pytest.mark.parametrize("roles", [[]])
def test_no_roles_no_checks_healthy(fake_checks, roles):
    assert cluster_health.check() == {"host": "node1", "roles": [], "healthy": True, "checks": {}}
    assert fake_checks["ran"] == []


@pytest.mark.parametrize("only", ["nfs_home,web_whoami", ["web_whoami", "nfs_home"]])
def test_only_runs_the_named_checks(fake_checks, only):
    ret = cluster_health.check(only=only)
    assert list(ret["checks"]) == ["nfs_home", "web_whoami"]


def test_only_refuses_unknown_names(fake_checks):
    with pytest.raises(CommandExecutionError, match=r"unknown check 'nfs'.*known: nfs_home"):
        cluster_health.check(only="nfs,web_whoami")
    with pytest.raises(CommandExecutionError, match="none named"):
        cluster_health.check(only="")
    assert fake_checks["ran"] == []


def test_a_check_that_raises_is_a_failed_check(fake_checks, monkeypatch):
    def broken(cfg, info):
        raise RuntimeError("boom")

    monkeypatch.setitem(cluster_health.CHECKS, "ssh_host_key", broken)
    ret = cluster_health.check()
    failed(ret["checks"]["ssh_host_key"], "the check itself failed", "boom")
    assert ret["checks"]["web_whoami"]["ok"] is True and ret["healthy"] is False


def test_unreadable_settings_are_a_failed_check(configure_loader_modules):
    def settings(cached=False):
        raise CommandExecutionError("saltcluster:user:uid: 'x' is invalid: must be an integer")

    cluster_health.__salt__["cluster.settings"] = settings
    ret = cluster_health.check()
    assert ret["healthy"] is False and ret["checks"].keys() == {"settings"}
    assert ret["roles"] == ["compute"]  # still known: the runner finds the master by them
    failed(ret["checks"]["settings"], "cannot read this host's settings", "saltcluster:user:uid")


def test_unreadable_host_info_is_a_failed_check(configure_loader_modules):
    def host_info():
        raise OSError(13, "Permission denied", "/etc/ssh/ssh_host_ed25519_key.pub")

    cluster_health.__salt__["cluster.host_info"] = host_info
    ret = cluster_health.check()
    assert ret == {"host": "node1", "roles": [], "healthy": False, "checks": {"settings": ret["checks"]["settings"]}}
    failed(ret["checks"]["settings"], "cluster.host_info", "Permission denied")


def test_reasons_are_one_short_line():
    reason = cluster_health._fail("a\nb\tc " + "x" * 1000)["reason"]
    assert reason.startswith("a b c x") and len(reason) == cluster_health.REASON_MAX and reason.endswith("...")


# -- compute: nfs_home ------------------------------------------------------------


@pytest.fixture
def mountinfo(tmp_path, monkeypatch):
    path = tmp_path / "mountinfo"
    path.write_text("22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n")
    monkeypatch.setattr(cluster_health, "MOUNTINFO", str(path))
    return path


def mount_line(mountpoint, fstype="nfs4", source="master:/home/jobhandler", addr="10.5.5.10"):
    mountpoint = mountpoint.replace(" ", "\\040")
    return f"40 22 0:45 / {mountpoint} rw,relatime shared:9 - {fstype} {source} rw,vers=4.2,addr={addr}\n"


def add_mount(mountinfo, *args, **kwargs):
    with open(mountinfo, "a") as fh:
        fh.write(mount_line(*args, **kwargs))


def test_nfs_home_passes(cfg, info, mountinfo):
    add_mount(mountinfo, cfg["user"]["home"], source=f"master:{cfg['nfs']['export_path']}")
    assert one_check("nfs_home", cfg, info) == {"ok": True, "reason": ""}


def test_nfs_home_not_mounted(cfg, info, mountinfo):
    failed(one_check("nfs_home", cfg, info), f"{cfg['user']['home']} is not a mount point")


def test_nfs_home_not_nfs(cfg, info, mountinfo):
    add_mount(mountinfo, cfg["user"]["home"], fstype="tmpfs", source="tmpfs")
    failed(one_check("nfs_home", cfg, info), "is a tmpfs mount of tmpfs, not NFS")


def test_nfs_home_the_mount_on_top_counts(cfg, info, mountinfo):
    add_mount(mountinfo, cfg["user"]["home"], source=f"master:{cfg['nfs']['export_path']}")
    add_mount(mountinfo, cfg["user"]["home"], fstype="tmpfs", source="tmpfs")
    failed(one_check("nfs_home", cfg, info), "tmpfs")


def test_nfs_home_of_another_export(cfg, info, mountinfo):
    add_mount(mountinfo, cfg["user"]["home"], source="master:/srv/other")
    failed(one_check("nfs_home", cfg, info), "mounts master:/srv/other, not the export")


def test_nfs_home_from_another_server(cfg, info, mountinfo):
    add_mount(mountinfo, cfg["user"]["home"], source=f"rogue:{cfg['nfs']['export_path']}", addr="10.5.5.66")
    failed(one_check("nfs_home", cfg, info), "server 10.5.5.66, rogue", "not master")


def test_nfs_home_by_the_masters_address(cfg, info, mountinfo):
    add_mount(mountinfo, cfg["user"]["home"], source=f"10.5.5.10:{cfg['nfs']['export_path']}")
    assert one_check("nfs_home", cfg, info)["ok"] is True


@pytest.mark.parametrize("members", [CommandExecutionError("the mine returned no membership data")])
def test_nfs_home_by_address_without_membership(cfg, info, mountinfo, members):
    add_mount(mountinfo, cfg["user"]["home"], source=f"10.5.5.10:{cfg['nfs']['export_path']}")
    failed(one_check("nfs_home", cfg, info), "could not be read", "no membership data")


def test_nfs_home_with_a_space_in_the_path(cfg, info, mountinfo, tmp_path):
    cfg["user"]["home"] = cfg["nfs"]["export_path"] = str(tmp_path / "my home")
    add_mount(mountinfo, cfg["user"]["home"], source=f"master:{cfg['nfs']['export_path']}".replace(" ", "\\040"))
    assert one_check("nfs_home", cfg, info)["ok"] is True


def test_split_source_ipv6():
    assert cluster_health._split_source("[fd00::a]:/home/jobhandler") == ("fd00::a", "/home/jobhandler")
    assert cluster_health._split_source("master:/home/jobhandler") == ("master", "/home/jobhandler")


# -- compute: home_writable -------------------------------------------------------


def test_home_writable_passes_as_the_user(cfg, info, commands):
    assert one_check("home_writable", cfg, info) == {"ok": True, "reason": ""}
    [(cmd, kwargs)] = commands["calls"]
    assert cmd[:5] == ["setpriv", "--reuid=100", "--regid=1100", "--init-groups", "--"]
    assert cmd[-1] == cfg["user"]["home"] and "mktemp" in cmd[-3]
    # bounded, no shell of Salt's, never cwd into the (maybe hung) mount
    assert kwargs["timeout"] and kwargs["python_shell"] is False and kwargs["cwd"] == "/"


def test_home_writable_user_missing(cfg, info, mpi_user):
    del mpi_user["jobhandler"]
    failed(one_check("home_writable", cfg, info), "user jobhandler does not exist")


def test_home_writable_uid_drift(cfg, info, mpi_user, commands):
    mpi_user["jobhandler"] = pwd.struct_passwd(("jobhandler", "x", 1001, 1001, "", "/home/jobhandler", "/bin/bash"))
    failed(one_check("home_writable", cfg, info), "has uid 1001 gid 1001, the cluster's are 100 1100")
    assert commands["calls"] == []


def test_home_writable_wrong_owner(cfg, info, commands):
    commands["answers"]["setpriv"] = {"retcode": 0, "stdout": "0:0\n", "stderr": ""}
    failed(one_check("home_writable", cfg, info), "is owned by 0:0, not 100:1100")


def test_home_writable_cannot_write(cfg, info, commands):
    commands["answers"]["setpriv"] = {
        "retcode": 1, "stdout": "100:1100\n",
        "stderr": f"mktemp: failed to create file via template '{cfg['user']['home']}/x': Read-only file system",
    }  # fmt: skip
    failed(one_check("home_writable", cfg, info), "jobhandler cannot create a file", "Read-only file system")


def test_home_writable_timed_out(cfg, info, commands):
    commands["answers"]["setpriv"] = {"retcode": 1, "stdout": "Timed out after 5 seconds", "stderr": ""}
    failed(one_check("home_writable", cfg, info), "cannot create a file", "Timed out after 5 seconds")


# -- compute: web_whoami ----------------------------------------------------------


@pytest.fixture
def web(cfg):
    """A web server on a free loopback port answering /whoami with
    ``answer["body"]`` (``answer["status"]``)."""
    answer = {"status": 200, "body": "node1 \n"}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = answer["body"].encode() if self.path == "/whoami" else b"no"
            self.send_response(answer["status"] if self.path == "/whoami" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    cfg["web"]["port"] = server.server_address[1]
    yield answer
    server.shutdown()
    server.server_close()


def test_web_whoami_passes(cfg, info, web):
    assert one_check("web_whoami", cfg, info) == {"ok": True, "reason": ""}


def test_web_whoami_other_name(cfg, info, web):
    web["body"] = "node2 10.0.2.5\n"
    failed(one_check("web_whoami", cfg, info), "answered 'node2 10.0.2.5', not node1")


def test_web_whoami_http_error(cfg, info, web):
    web["status"] = 502
    failed(one_check("web_whoami", cfg, info), "/whoami: HTTP 502")


def test_web_whoami_nothing_listening(cfg, info, web):
    port = cfg["web"]["port"]
    cfg["web"]["port"] = free_port()
    failed(one_check("web_whoami", cfg, info), f"GET http://127.0.0.1:{cfg['web']['port']}/whoami:", "refused")
    assert cfg["web"]["port"] != port


def free_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- compute: ssh_host_key --------------------------------------------------------


def test_ssh_host_key_passes(cfg, info, commands):
    assert one_check("ssh_host_key", cfg, info) == {"ok": True, "reason": ""}
    [(cmd, kwargs)] = commands["calls"]
    assert cmd[0] == "ssh-keyscan" and cmd[-1] == "127.0.0.1" and "-T" in cmd and kwargs["timeout"]


def test_ssh_host_key_served_key_not_published(cfg, info, commands):
    commands["answers"]["ssh-keyscan"]["stdout"] = f"127.0.0.1 {OTHER}\n"
    reason = failed(one_check("ssh_host_key", cfg, info), "serves ssh-ed25519 SHA256:", "does not publish")
    assert cluster_health._fingerprint(OTHER) in reason


def test_ssh_host_key_no_answer(cfg, info, commands):
    commands["answers"]["ssh-keyscan"] = {"retcode": 1, "stdout": "", "stderr": "write (127.0.0.1): Connection refused"}
    failed(one_check("ssh_host_key", cfg, info), "sshd on 127.0.0.1:22 gave no host key", "Connection refused")


def test_ssh_host_key_nothing_published(cfg, info):
    info["host_keys"] = []
    failed(one_check("ssh_host_key", cfg, info), "publishes no ssh host key")


# -- master: nfs_export -----------------------------------------------------------


@pytest.fixture
def nfsd(tmp_path, monkeypatch, cfg):
    threads, etab = tmp_path / "threads", tmp_path / "etab"
    threads.write_text("8\n")
    etab.write_text(f"{cfg['nfs']['export_path']}\t10.5.5.9(rw,sync,wdelay,hide,no_subtree_check,root_squash)\n")
    monkeypatch.setattr(cluster_health, "NFSD_THREADS", str(threads))
    monkeypatch.setattr(cluster_health, "ETAB", str(etab))
    return threads, etab


def test_nfs_export_passes(cfg, info, nfsd):
    assert one_check("nfs_export", cfg, info) == {"ok": True, "reason": ""}


def test_nfs_export_server_down(cfg, info, nfsd):
    nfsd[0].unlink()
    failed(one_check("nfs_export", cfg, info), f"the NFS server is not running ({nfsd[0]}: No such file")


def test_nfs_export_no_threads(cfg, info, nfsd):
    nfsd[0].write_text("0\n")
    failed(one_check("nfs_export", cfg, info), "runs 0 threads")


def test_nfs_export_not_listed(cfg, info, nfsd):
    nfsd[1].write_text("/srv/other\t*(ro)\n")
    failed(one_check("nfs_export", cfg, info), f"{cfg['nfs']['export_path']} is not exported", "lists /srv/other")


# -- master: hostfile -------------------------------------------------------------


def test_hostfile_passes(cfg, info):
    with open(cfg["mpi"]["hostfile"], "w") as fh:
        fh.write("# Managed by Salt (saltcluster): compute members as host:slots\nnode1:2\nnode2:2\n")
    assert one_check("hostfile", cfg, info) == {"ok": True, "reason": ""}


def test_hostfile_lacks_a_member(cfg, info):
    with open(cfg["mpi"]["hostfile"], "w") as fh:
        fh.write("node1:2\nnode3:4\n")
    failed(one_check("hostfile", cfg, info), "lacks node2:2", "has node3:4 too", "(membership: node1:2 node2:2)")


def test_hostfile_order(cfg, info):
    with open(cfg["mpi"]["hostfile"], "w") as fh:
        fh.write("node2:2\nnode1:2\n")
    failed(one_check("hostfile", cfg, info), "another order")


def test_hostfile_missing(cfg, info):
    failed(one_check("hostfile", cfg, info), "cannot read the hostfile", "No such file")


def test_hostfile_symlink_is_not_followed(cfg, info, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("node1:2\nnode2:2\n")
    os.symlink(secret, cfg["mpi"]["hostfile"])
    failed(one_check("hostfile", cfg, info), "cannot read the hostfile", "symbolic links")


def test_hostfile_hard_link_is_not_read(cfg, info, tmp_path):
    other = tmp_path / "other"
    other.write_text("node1:2\nnode2:2\n")
    os.link(other, cfg["mpi"]["hostfile"])
    failed(one_check("hostfile", cfg, info), "it has 2 names (a hard link)")


def test_hostfile_entries_as_hydra_reads_them(cfg, info):
    with open(cfg["mpi"]["hostfile"], "w") as fh:
        fh.write("# Managed by Salt\n  node1:2   # two cpus\n\nnode2:2\n")
    assert one_check("hostfile", cfg, info)["ok"] is True


def test_hostfile_fifo_does_not_block(cfg, info):
    os.mkfifo(cfg["mpi"]["hostfile"])
    failed(one_check("hostfile", cfg, info), f"cannot read the hostfile {cfg['mpi']['hostfile']}: not a regular file")


def test_hostfile_membership_unreadable(cfg, info, configure_loader_modules):
    def hostfile():
        raise CommandExecutionError("saltcluster: the mine returned no membership data at all")

    cluster_health.__salt__["cluster.hostfile"] = hostfile
    failed(one_check("hostfile", cfg, info), "membership could not be read", "no membership data")


# -- gateway ----------------------------------------------------------------------


@pytest.fixture
def fake_nginx(tmp_path, lb_conf):
    """A process whose command line reads as an nginx master, its pid in
    the pid file the config names."""
    pidfile = tmp_path / "nginx.pid"
    lb_conf.write_text(f"user www-data;\npid {pidfile};\nevents {{}}\n")
    proc = subprocess.Popen(["bash", "-c", 'exec -a "nginx: master process /usr/sbin/nginx" sleep 60'])
    deadline = time.monotonic() + 10
    while not open(f"/proc/{proc.pid}/cmdline", "rb").read().startswith(b"nginx:"):  # bash has not exec'd yet
        assert time.monotonic() < deadline, "the stand-in nginx did not start"
        time.sleep(0.01)
    pidfile.write_text(f"{proc.pid}\n")
    yield proc, pidfile
    proc.kill()
    proc.wait()


def test_nginx_running_passes(cfg, info, fake_nginx):
    assert one_check("nginx_running", cfg, info) == {"ok": True, "reason": ""}


def test_nginx_running_dead_pid(cfg, info, fake_nginx):
    proc, pidfile = fake_nginx
    proc.kill()
    proc.wait()
    failed(one_check("nginx_running", cfg, info), f"nginx is not running (pid {proc.pid} from {pidfile} is gone)")


def test_nginx_running_pid_of_another_program(cfg, info, fake_nginx):
    proc, pidfile = fake_nginx
    pidfile.write_text(f"{os.getpid()}\n")
    failed(one_check("nginx_running", cfg, info), f"pid {os.getpid()} from {pidfile} is", "not an nginx master")


def test_nginx_running_no_pidfile(cfg, info, fake_nginx):
    fake_nginx[1].unlink()
    failed(one_check("nginx_running", cfg, info), f"nginx is not running ({fake_nginx[1]}: No such file")


@pytest.mark.parametrize("text", ["x", "\u00b2", "12\u00b3"])
def test_nginx_running_garbage_pidfile(cfg, info, fake_nginx, text):
    fake_nginx[1].write_text(text + "\n")
    failed(one_check("nginx_running", cfg, info), f"holds {text!r}, not a pid")


def test_nginx_config_emerg_with_time_stamp(cfg, info, commands):
    commands["answers"]["nginx"] = {
        "retcode": 1, "stdout": "",
        "stderr": '2026/11/27 02:52:09 [emerg] 984#984: open() "/etc/nginx/nginx.conf" failed (2: No such file)',
    }  # fmt: skip
    reason = failed(one_check("nginx_config", cfg, info), 'fails: open() "/etc/nginx/nginx.conf" failed')
    assert "2026" not in reason and "984#984" not in reason


def test_nginx_running_default_pidfile(lb_conf):
    assert cluster_health._nginx_pidfile("events {}\n") == "/run/nginx.pid"
    assert cluster_health._nginx_pidfile("# pid /x;\n  pid /run/other.pid ;\n") == "/run/other.pid"


def test_nginx_config_passes(cfg, info, commands):
    assert one_check("nginx_config", cfg, info) == {"ok": True, "reason": ""}
    [(cmd, kwargs)] = commands["calls"]
    assert cmd == ["nginx", "-t", "-q", "-c", cfg["nginx"]["config_file"]] and kwargs["timeout"]


def test_nginx_config_fails(cfg, info, commands):
    commands["answers"]["nginx"] = {
        "retcode": 1, "stdout": "",
        "stderr": 'nginx: [emerg] unknown directive "upstreem" in /etc/nginx/nginx.conf:20\n'
                  "nginx: configuration file /etc/nginx/nginx.conf test failed",
    }  # fmt: skip
    reason = failed(one_check("nginx_config", cfg, info), f"nginx -t -c {cfg['nginx']['config_file']} fails: ")
    assert reason.endswith(': unknown directive "upstreem" in /etc/nginx/nginx.conf:20'), reason


def test_nginx_config_fails_without_emerg(cfg, info, commands):
    commands["answers"]["nginx"] = {"retcode": 1, "stdout": "", "stderr": "nginx: some other trouble\n"}
    failed(one_check("nginx_config", cfg, info), "fails: nginx: some other trouble")


# -- the readers for cluster.status -------------------------------------------------


def test_hostfile_slots(cfg):
    with open(cfg["mpi"]["hostfile"], "w") as fh:
        fh.write("# Managed by Salt\nnode1:2\nnode2\nnode10:4  # big\n")
    ret = cluster_health.hostfile_slots()
    assert ret["slots"] == {"node1": 2, "node2": 1, "node10": 4}
    assert ret["error"] is None and ret["path"] == cfg["mpi"]["hostfile"] and ret["mtime"] > 0


def test_hostfile_slots_missing(cfg):
    ret = cluster_health.hostfile_slots()
    assert ret["slots"] == {} and ret["mtime"] is None and "No such file" in ret["error"]


LB_CONF = """\
http {
    upstream saltcluster_web {
        # shared zone: one round-robin counter for all workers
        zone saltcluster_web 64k;
        server 10.5.5.9:80 weight=1 max_fails=1 fail_timeout=10s;  # node1
        server 10.5.5.18:8080 weight=3 max_fails=1 fail_timeout=10s down;  # node2
        server 10.5.5.30:80;
        keepalive 16;
    }
    server {
        listen 80 default_server;
        server_name example;
        location / { proxy_pass http://saltcluster_web; }
    }
}
"""


def test_upstream_reads_the_server_lines(cfg, lb_site):
    with open(lb_site, "w") as fh:
        fh.write(LB_CONF)
    ret = cluster_health.upstream()
    assert ret["error"] is None and ret["path"] == lb_site
    assert ret["servers"] == [
        {"name": "node1", "addr": "10.5.5.9", "port": 80, "weight": 1, "down": False},
        {"name": "node2", "addr": "10.5.5.18", "port": 8080, "weight": 3, "down": True},
        {"name": None, "addr": "10.5.5.30", "port": 80, "weight": 1, "down": False},
    ]


def test_upstream_missing(cfg):
    ret = cluster_health.upstream()
    assert ret["servers"] == [] and "No such file" in ret["error"]


def test_lb_file_by_layout(cfg):
    sites = {
        "nginx": {"config_file": "/etc/nginx/nginx.conf", "site_dir": "saltcluster.d"},
        "lb": {"site_file": "lb.conf"},
    }
    assert cluster_health._lb_file(sites) == "/etc/nginx/saltcluster.d/lb.conf"
    assert cluster_health._nginx_conf(sites) == "/etc/nginx/nginx.conf"


def test_upstream_numbers_are_ascii_digits(cfg, lb_site):
    """'²' is a digit to str.isdigit but not a number to int(): a port or
    weight written so is no number (the defaults: port 80, weight 1)."""
    with open(lb_site, "w") as fh:
        fh.write("upstream u {\n    server 10.5.5.9:8² weight=²;  # node1\n}\n")
    assert cluster_health.upstream()["servers"] == [
        {"name": "node1", "addr": "10.5.5.9:8²", "port": 80, "weight": 1, "down": False}
    ]


def test_upstream_of_the_rendered_template(cfg, lb_site, repo):
    """The server lines saltcluster's own template writes."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(repo / "salt")))
    text = env.get_template("cluster/files/nginx/lb.conf.jinja").render(
        lb=cfg["lb"], worker_processes=1, site_dir="saltcluster.d",
        backends=[{"name": "node1", "addr": "10.5.5.9", "port": 80, "weight": 2}],
    )  # fmt: skip
    with open(lb_site, "w") as fh:
        fh.write(text)
    assert cluster_health.upstream()["servers"] == [
        {"name": "node1", "addr": "10.5.5.9", "port": 80, "weight": 2, "down": False}
    ]
