"""Render the real tree with real loaders: membership-driven files."""

import pytest

MINION_ID = "node1"


def test_fake_mine_overrides_core_mine(modules):
    assert "node2" in modules.mine.get("*", "saltcluster_host")


def test_settings_from_tree_and_pillar(modules, workdir):
    cfg = modules.cluster.settings()
    assert cfg["user"]["name"] == "scfunc"
    assert cfg["mpi"]["hostfile"] == str(workdir / "home" / "hosts")
    assert cfg["network"]["cidr"] == "10.5.5.0/24"


def test_hostfile_lists_compute_members(modules):
    # the repo pillar sets mpi:slots: 2 (the lab guests have one vCPU)
    assert modules.cluster.hostfile() == "node1:2\nnode2:2\nnode10:2"


def test_show_highstate_all_roles(modules):
    high = modules.state.show_highstate()
    assert isinstance(high, dict), high
    sls = {v["__sls__"] for v in high.values()}
    assert {
        "cluster.users", "cluster.hosts", "cluster.ssh.known_hosts", "cluster.mpi.package", "cluster.mpi.config",
        "cluster.nfs.server.config", "cluster.mpi.hostfile", "cluster.mpi.programs",
        "cluster.web.config", "cluster.lb.config", "cluster.ssh.keys",
    } <= sls  # fmt: skip
    # the master's own home is the export: it does not mount it
    assert "cluster.nfs.client" not in sls


def test_hosts_block_rendered(modules):
    low = modules.state.show_sls("cluster.hosts")
    content = low["cluster-hosts-file-blockreplace-members"]["file"]
    content = next(arg["content"] for arg in content if isinstance(arg, dict) and "content" in arg)
    assert content.splitlines() == [
        "10.5.5.1 gateway",
        "10.5.5.10 master",
        "10.5.5.9 node1",
        "10.5.5.18 node2",
        "10.5.5.30 node10",
    ]


def _arg(state, name):
    return next(arg[name] for arg in state if isinstance(arg, dict) and name in arg)


def test_exports_line_rendered(modules, workdir):
    high = modules.state.show_sls("cluster.nfs.server")
    export = high["cluster-nfs-server-nfs-export-present"]["nfs_export"]
    assert _arg(export, "name") == str(workdir / "home")
    assert _arg(export, "clients") == ["10.5.5.0/24"]
    assert _arg(export, "options") == ["rw", "sync", "no_subtree_check", "root_squash"]


def test_upstream_backends_rendered(modules):
    high = modules.state.show_sls("cluster.lb")
    ctx = _arg(high["cluster-lb-config-file-managed-nginx-conf"]["file"], "context")
    assert [(b["name"], b["addr"]) for b in ctx["backends"]] == [
        ("node1", "10.5.5.9"),
        ("node2", "10.5.5.18"),
        ("node10", "10.5.5.30"),
    ]


def test_bad_pillar_stops_rendering_naming_key(modules):
    ret = modules.state.show_sls("cluster.hosts", pillar={"saltcluster": {"network": {"cidr": "10.5.5/99"}}})
    text = str(ret)
    assert "saltcluster:network:cidr" in text and "10.5.5/99" in text


@pytest.mark.parametrize(
    "method,directive", [("round_robin", None), ("least_conn", "least_conn;"), ("ip_hash", "ip_hash;")]
)
def test_lb_config_applied_after_nginx_check(modules, workdir, method, directive):
    conf = workdir / "nginx-lb.conf"
    conf.unlink(missing_ok=True)
    pillar = {"saltcluster": {"lb": {"method": method, "weights": {"node2": 3}}}}
    ret = modules.state.sls("cluster.lb.config", test=True, pillar=pillar)
    result = next(r for k, r in ret.raw.items() if "nginx-conf" in k)
    assert result["result"] is None and not conf.exists()
    # for real: file.managed runs `nginx -t` on the candidate before it lands
    ret = modules.state.sls("cluster.lb.config", pillar=pillar)
    result = next(r for k, r in ret.raw.items() if "nginx-conf" in k)
    assert result["result"] is True, result["comment"]
    text = conf.read_text()
    assert "zone saltcluster_web 64k;" in text
    assert "server 10.5.5.18:80 weight=3 max_fails=1 fail_timeout=10s;  # node2" in text
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in text
    assert "192.168.9.9" not in text
    for other in ("least_conn;", "ip_hash;"):
        assert (other in text) == (other == directive)


def test_membership_sls_follows_roles(modules):
    high = modules.state.show_sls("cluster.membership")
    assert isinstance(high, dict), high
    assert {
        "cluster-hosts-file-blockreplace-members",
        "cluster-ssh-known-hosts-file-managed",
        "cluster-mpi-hostfile-file-managed",
        "cluster-lb-config-file-managed-nginx-conf",
        "cluster-lb-service-running",
    } <= set(high)
