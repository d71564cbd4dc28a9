"""cluster_health.check through Salt's real loader on this very machine: a
host with no role (no checks, healthy), a gateway and a compute node
against a real nginx started on a free port from a temporary config."""

import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import time

import pytest
from saltfactories.utils.functional import Loaders

from tests.functional.conftest import make_minion_opts, scratch_nginx

NGINX = shutil.which("nginx") or (os.path.exists("/usr/sbin/nginx") and "/usr/sbin/nginx")


@pytest.fixture(scope="module")
def nginx_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def nginx_conf(workdir):
    """The test nginx's nginx.conf: the pillar's nginx:config_file."""
    return pathlib.Path(scratch_nginx(workdir)["config_file"])


@pytest.fixture(scope="module")
def pillar_root(pillar_root, nginx_port, nginx_conf):
    """The functional pillar (its nginx:config_file is the test nginx's
    nginx.conf), with the compute nodes' web port on the test nginx."""
    path = pillar_root / "functional.sls"
    data = json.loads(path.read_text())
    assert data["saltcluster"]["nginx"]["config_file"] == str(nginx_conf)
    data["saltcluster"]["web"]["port"] = nginx_port
    path.write_text(json.dumps(data))
    return pillar_root


def loaders_for(salt_factories, fake_mine_file, pillar_root, minion_id, roles):
    opts = make_minion_opts(salt_factories, fake_mine_file, pillar_root, minion_id, roles)
    return Loaders(opts, loaded_base_name=f"{__name__}.{minion_id}")


@pytest.fixture(scope="module")
def bare(salt_factories, fake_mine_file, pillar_root):
    loaders = loaders_for(salt_factories, fake_mine_file, pillar_root, "health-none", [])
    yield loaders.modules
    loaders.reset_state()


@pytest.fixture(scope="module")
def gateway(salt_factories, fake_mine_file, pillar_root):
    loaders = loaders_for(salt_factories, fake_mine_file, pillar_root, "health-gw", ["gateway"])
    yield loaders.modules
    loaders.reset_state()


@pytest.fixture(scope="module")
def compute(salt_factories, fake_mine_file, pillar_root):
    loaders = loaders_for(salt_factories, fake_mine_file, pillar_root, "health-node", ["compute"])
    yield loaders.modules
    loaders.reset_state()


def nginx_config(workdir, port, upstream):
    tmp = workdir / "nginx-tmp"
    tmp.mkdir(exist_ok=True)
    temp_paths = "\n".join(
        f"    {kind}_temp_path {tmp / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""\
pid {workdir / "nginx.pid"};
error_log {workdir / "nginx-error.log"};
events {{
    worker_connections 64;
}}
http {{
    access_log off;
{temp_paths}
{upstream}
    server {{
        listen 127.0.0.1:{port};
        location = /whoami {{
            default_type text/plain;
            return 200 "$hostname $http_x_forwarded_for\\n";
        }}
    }}
}}
"""


@pytest.fixture
def nginx(workdir, nginx_port, nginx_conf, gateway):
    """A real nginx on the free port, its nginx.conf the pillar's; an
    upstream of one server in the gateway's site file (nginx:site_dir),
    which nginx.conf includes relative to its own directory.  Stopped
    afterwards."""
    if not NGINX:
        pytest.skip("nginx is not installed here (apt-get install nginx-light); the gateway checks need a real one")
    conf = nginx_conf
    upstream = f"upstream saltcluster_web {{\n    server 127.0.0.1:{nginx_port} weight=2 max_fails=1;  # health-node\n}}"
    site = pathlib.Path(gateway.cluster_health.upstream()["path"])
    assert site.parent.parent == conf.parent, site
    site.parent.mkdir(parents=True, exist_ok=True)
    site.write_text(upstream + "\n")
    conf.write_text(nginx_config(workdir, nginx_port, f"    include {site.parent.name}/*.conf;"))
    pidfile = workdir / "nginx.pid"
    ret = subprocess.run(
        [NGINX, "-c", str(conf), "-e", str(workdir / "nginx-error.log")], capture_output=True, text=True, timeout=30
    )
    assert ret.returncode == 0, ret.stderr
    deadline = time.monotonic() + 10
    while not (pidfile.exists() and pidfile.read_text().strip()):
        assert time.monotonic() < deadline, "nginx wrote no pid file"
        time.sleep(0.05)
    pid = int(pidfile.read_text())
    yield {"conf": conf, "pid": pid, "pidfile": pidfile, "site": site}
    stop(pid)


def stop(pid):
    try:
        os.kill(pid, signal.SIGQUIT)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


def test_no_roles_no_checks_healthy(bare):
    assert bare.cluster_health.check() == {"host": "health-none", "roles": [], "healthy": True, "checks": {}}


def test_gateway_with_a_running_nginx(gateway, nginx):
    ret = gateway.cluster_health.check()
    assert ret["roles"] == ["gateway"]
    assert ret["checks"] == {"nginx_running": {"ok": True, "reason": ""}, "nginx_config": {"ok": True, "reason": ""}}
    assert ret["healthy"] is True


def test_gateway_with_a_broken_config(gateway, nginx):
    good = nginx["conf"].read_text()
    nginx["conf"].write_text(good.replace("access_log off;", "access_lgo off;"))
    try:
        ret = gateway.cluster_health.check()
    finally:
        nginx["conf"].write_text(good)
    assert ret["healthy"] is False
    reason = ret["checks"]["nginx_config"]["reason"]
    assert f"nginx -t -c {nginx['conf']} fails" in reason and "access_lgo" in reason, reason
    assert ret["checks"]["nginx_running"]["ok"] is True


def test_gateway_with_nginx_stopped(gateway, nginx):
    stop(nginx["pid"])
    ret = gateway.cluster_health.check()
    assert ret["healthy"] is False
    reason = ret["checks"]["nginx_running"]["reason"]
    assert reason.startswith("nginx is not running") and str(nginx["pidfile"].parent) in reason, reason


def test_compute_on_this_machine(compute, nginx, workdir):
    ret = compute.cluster_health.check()
    checks = ret["checks"]
    assert list(checks) == ["nfs_home", "home_writable", "web_whoami", "ssh_host_key"]
    # nginx answers /whoami with this machine's name
    assert checks["web_whoami"] == {"ok": True, "reason": ""}
    # the scratch home is no mount, and the test's MPI user does not exist here
    assert checks["nfs_home"] == {"ok": False, "reason": f"{workdir / 'home'} is not a mount point"}
    assert checks["home_writable"] == {"ok": False, "reason": "user scfunc does not exist"}
    # sshd may or may not run here: either way one line, never an exception
    assert checks["ssh_host_key"]["ok"] or "sshd on 127.0.0.1:22" in checks["ssh_host_key"]["reason"]
    assert ret["healthy"] is False


def test_readers_on_this_machine(gateway, nginx, nginx_port):
    ret = gateway.cluster_health.upstream()
    assert ret["error"] is None and ret["mtime"] > 0
    assert ret["servers"] == [{"name": "health-node", "addr": "127.0.0.1", "port": nginx_port, "weight": 2, "down": False}]
    assert "No such file" in gateway.cluster_health.hostfile_slots()["error"]
