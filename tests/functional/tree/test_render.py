"""Render the real tree with real loaders: membership-driven files, and the
nginx sites of a host that is compute node and gateway at once."""

import copy
import json
import pathlib
import subprocess

import pytest

from tests.functional.conftest import DEFAULT_NGINX, by_id, scratch_nginx, staging_dirs
from tests.support.mine import MINE, host_key, published

MINION_ID = "node1"  # with every role (conftest's default)

# One nginx serves both sites on this host, each the default server of its
# own port: the page moves off the balancer's port.
BOTH_ROLES = {"web": {"port": 8080}, "lb": {"backend_port": 8080}}


@pytest.fixture(scope="module")
def pillar_root(pillar_root):
    """conftest's pillar, plus the ports of BOTH_ROLES."""
    (pillar_root / "functional_ports.sls").write_text(json.dumps({"saltcluster": BOTH_ROLES}))
    top = pillar_root / "top.sls"
    top.write_text(top.read_text() + "    - functional_ports\n")
    return pillar_root


def nginx_files(workdir):
    conf = pathlib.Path(scratch_nginx(workdir)["config_file"])
    return conf, conf.parent / "saltcluster.d/web.conf", conf.parent / "saltcluster.d/lb.conf"


def nginx_t(conf):
    """`nginx -T` over a live set: rc, and the dump with each file's name."""
    run = subprocess.run(["nginx", "-T", "-c", str(conf)], capture_output=True, text=True, check=False)
    return run.returncode, run.stdout + run.stderr


def test_fake_mine_overrides_core_mine(modules):
    """cluster.members reads the fake mine through the loader: with Salt's own
    mine.get this masterless minion would be a cluster of itself alone."""
    members = modules.cluster.members()
    assert [(m["id"], m["addr"], m["roles"]) for m in members] == [
        ("gateway", "10.5.5.1", ["gateway"]),
        ("master", "10.5.5.10", ["master"]),
        ("node1", "10.5.5.9", ["compute"]),
        ("node2", "10.5.5.18", ["compute"]),
        ("node10", "10.5.5.30", ["compute"]),
    ]
    assert members[3]["host_keys"] == MINE["node2"]["host_keys"]


def test_settings_from_tree_and_pillar(modules, workdir):
    cfg = modules.cluster.settings()
    assert cfg["user"]["name"] == "scfunc"
    assert cfg["mpi"]["hostfile"] == str(workdir / "home" / "hosts")
    assert cfg["network"]["cidr"] == "10.5.5.0/24"


def test_hostfile_lists_compute_members(modules):
    # mpi:slots unset (the product's pillar): each member's num_cpus from the mine
    assert modules.cluster.hostfile() == "node1:2\nnode2:2\nnode10:4"


def test_show_highstate_all_roles(modules):
    high = modules.state.show_highstate()
    assert isinstance(high, dict), high
    sls = {v["__sls__"] for v in high.values()}
    assert {
        "cluster.users", "cluster.hosts", "cluster.ssh.known_hosts", "cluster.mpi.package", "cluster.mpi.config",
        "cluster.nfs.server.config", "cluster.mpi.hostfile", "cluster.mpi.programs",
        "cluster.web.config", "cluster.lb.config", "cluster.ssh.keys",
        "cluster.nginx.package", "cluster.nginx.config", "cluster.nginx.service",
    } <= sls  # fmt: skip
    # the master's own home is the export: it does not mount it
    assert "cluster.nfs.client" not in sls
    # it holds both web roles: neither site file is removed
    assert not {"cluster.web.clean", "cluster.lb.clean"} & sls
    # a compute node's own health checks close its highstate (they admit it
    # to the hostfile and the upstream)
    gate = high["cluster-health-cluster-health-serving"]
    assert gate["__sls__"] == "cluster.health" and "serving" in gate["cluster_health"]
    assert {"order": "last"} in gate["cluster_health"]


def test_one_state_owns_each_file_with_both_roles(modules, workdir):
    """Compute node and gateway on one host: every file is written by one
    state only, nginx.conf by cluster.nginx, each site file by its role;
    one nginx package and one nginx service."""
    low = modules.state.show_lowstate()
    assert isinstance(low, list), low
    files = [chunk["name"] for chunk in low if chunk["state"] == "file"]
    assert sorted({name for name in files if files.count(name) > 1}) == []
    owner = {chunk["name"]: (chunk["__sls__"], chunk["__id__"]) for chunk in low if chunk["state"] == "file"}
    conf, web, lb = nginx_files(workdir)
    assert owner[str(conf)] == ("cluster.nginx.config", "cluster-nginx-config-file-managed-nginx-conf")
    assert owner[str(web)] == ("cluster.web.config", "cluster-web-config-file-managed-site")
    assert owner[str(lb)] == ("cluster.lb.config", "cluster-lb-config-file-managed-site")
    # nothing else under nginx's directory but its site directory
    assert sorted(n for n in owner if n.startswith(str(conf.parent))) == sorted(
        [str(conf), str(conf.parent / "saltcluster.d"), str(web), str(lb)]
    )
    assert [c["__id__"] for c in low if c["state"] == "pkg" and "nginx-light" in c.get("pkgs", [])] == [
        "cluster-nginx-package-pkg-installed"
    ]
    (service,) = [c for c in low if c["state"] == "service" and c["name"] == "nginx"]
    assert (service["__id__"], service["fun"]) == ("cluster-nginx-service-running", "running")
    # reloaded, not restarted, when nginx.conf or a site file changes
    assert service["reload"] is True
    assert service["watch"] == [{"file": f"{conf.parent}/*"}]


def test_one_state_owns_each_file_at_the_default_paths(modules):
    """The same with nginx's own paths (rendered only): the two roles'
    states never name /etc/nginx/nginx.conf twice."""
    paths = {key: DEFAULT_NGINX[key] for key in ("config_file", "check_command")}
    high = modules.state.show_highstate(pillar={"saltcluster": {"nginx": paths}})
    assert isinstance(high, dict), high
    files = [
        (_arg(args, "name") if any(isinstance(a, dict) and "name" in a for a in args) else state_id, state_id)
        for state_id, body in high.items()
        for module, args in body.items()
        if module == "file"
    ]
    names = [name for name, _ in files]
    assert sorted({name for name in names if names.count(name) > 1}) == []
    assert [i for name, i in files if name == DEFAULT_NGINX["config_file"]] == [
        "cluster-nginx-config-file-managed-nginx-conf"
    ]


@pytest.mark.parametrize("sls", ["cluster.lb", "cluster.web", "cluster.hosts"])
def test_same_port_for_both_sites_stops_rendering(modules, sls):
    """On a host with both roles the page and the balancer cannot share a
    port: cluster.validate (every SLS's settings) stops rendering naming
    the keys, before anything is applied."""
    same = {"saltcluster": {"web": {"port": 80}, "lb": {"listen_port": 80}}}
    text = str(modules.state.show_sls(sls, pillar=same))
    assert "saltcluster:lb:listen_port: 80 is invalid: this host is compute and gateway" in text
    assert "web:port is 80" in text
    # different ports: renders
    assert isinstance(modules.state.show_sls(sls), dict)


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
    # the compute members of the fake mine, not the cidr: a non-member cannot mount
    assert sorted(_arg(export, "clients")) == sorted(["10.5.5.9", "10.5.5.18", "10.5.5.30"])
    assert _arg(export, "options") == ["rw", "sync", "no_subtree_check", "root_squash"]


def test_upstream_backends_rendered(modules):
    high = modules.state.show_sls("cluster.lb")
    ctx = _arg(high["cluster-lb-config-file-managed-site"]["file"], "context")
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
    _, _, conf = nginx_files(workdir)
    conf.unlink(missing_ok=True)
    pillar = {"saltcluster": {"lb": {"method": method, "weights": {"node2": 3}}}}
    ret = by_id(modules.state.sls("cluster.lb.config", test=True, pillar=pillar))
    result = ret["cluster-lb-config-file-managed-site"]
    assert result["result"] is None and not conf.exists()
    # for real: the candidate is checked with `nginx -t` before it lands
    ret = by_id(modules.state.sls("cluster.lb.config", pillar=pillar))
    result = ret["cluster-lb-config-file-managed-site"]
    assert result["result"] is True, result["comment"]
    text = conf.read_text()
    assert "zone saltcluster_web 64k;" in text
    assert "server 10.5.5.18:8080 weight=3 max_fails=1 fail_timeout=10s;  # node2" in text
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in text
    assert "192.168.9.9" not in text
    for other in ("least_conn;", "ip_hash;"):
        assert (other in text) == (other == directive)


NGINX_STATES = (
    "cluster-nginx-config-file-managed-check-command",
    "cluster-nginx-config-file-directory-site-dir",
    "cluster-nginx-config-file-managed-nginx-conf",
    "cluster-web-config-file-managed-site",
    "cluster-lb-config-file-managed-site",
)


def test_both_sites_go_live_under_one_nginx(modules, workdir):
    """Compute node and gateway: the base config and both site files are
    written, each checked, and nginx accepts the live set."""
    conf, web, lb = nginx_files(workdir)
    ret = by_id(modules.state.sls("cluster.web.config,cluster.lb.config"))
    assert {k: v["comment"] for k, v in ret.items() if v["result"] is not True} == {}
    assert set(NGINX_STATES) <= set(ret)
    assert "include saltcluster.d/*.conf;" in conf.read_text()
    assert "listen 8080 default_server;" in web.read_text() and "location = /whoami" in web.read_text()
    assert "listen 80 default_server;" in lb.read_text() and "server 10.5.5.9:8080 " in lb.read_text()
    rc, dump = nginx_t(conf)
    assert rc == 0, dump
    for path in (conf, web, lb):
        assert f"# configuration file {path}:" in dump
    # nothing to do the second time
    ret = by_id(modules.state.sls("cluster.web.config,cluster.lb.config"))
    assert {k: v["changes"] for k, v in ret.items() if v["changes"]} == {}


@pytest.fixture
def broken_template(workdir):
    """An lb template whose output nginx refuses (an upstream without servers)."""
    path = workdir / "broken-lb.conf.jinja"
    path.write_text("upstream saltcluster_web {\n}\n")
    return {"saltcluster": {"lb": {"template": f"file://{path}"}}}


def test_refused_lb_candidate_leaves_the_live_site(modules, workdir, broken_template):
    conf, web, lb = nginx_files(workdir)
    _ok = by_id(modules.state.sls("cluster.web.config,cluster.lb.config"))
    assert all(v["result"] is True for v in _ok.values())
    before = {path: path.read_bytes() for path in (conf, web, lb)}
    staged = staging_dirs()
    ret = by_id(modules.state.sls("cluster.lb.config", pillar=broken_template))
    result = ret["cluster-lb-config-file-managed-site"]
    assert result["result"] is False and result["changes"] == {}
    assert "check_cmd execution failed" in result["comment"]
    assert "no servers are inside upstream" in result["comment"]
    assert {path: path.read_bytes() for path in (conf, web, lb)} == before
    assert staging_dirs() == staged  # the checker cleans up after itself
    assert nginx_t(conf)[0] == 0


def test_nginx_reloads_on_a_site_change_never_on_a_refused_one(modules, workdir, broken_template):
    """The service's own watch list, on a stand-in for the service (this
    host's nginx is not touched): it fires when a site file changes, and a
    refused candidate fails it, so nginx is not reloaded."""
    service = modules.state.show_sls("cluster.nginx.service")["cluster-nginx-service-running"]["service"]
    watch = _arg(service, "watch")

    def run(pillar):
        high = modules.state.show_sls("cluster.lb.config", pillar=pillar)
        assert isinstance(high, dict), high
        high["nginx-reload-stand-in"] = {
            "test": ["succeed_without_changes", {"watch": watch}],
            "__sls__": "stand_in",
            "__env__": "base",
        }
        return by_id(modules.state.high(high))

    _, _, lb = nginx_files(workdir)
    lb.unlink(missing_ok=True)
    ret = run({})
    assert ret["cluster-lb-config-file-managed-site"]["changes"]
    stand_in = ret["nginx-reload-stand-in"]
    assert stand_in["result"] is True and stand_in["comment"] == "Watch statement fired."
    assert "file: cluster-lb-config-file-managed-site" in stand_in["changes"]["Requisites with changes"]
    # unchanged: no reload
    stand_in = run({})["nginx-reload-stand-in"]
    assert stand_in["result"] is True and stand_in["changes"] == {}
    # refused: the watch fails, nothing reloads
    before = lb.read_bytes()
    ret = run(broken_template)
    assert ret["cluster-lb-config-file-managed-site"]["result"] is False
    stand_in = ret["nginx-reload-stand-in"]
    assert stand_in["result"] is False and "requisite failed" in stand_in["comment"]
    assert stand_in["changes"] == {} and lb.read_bytes() == before


def test_membership_sls_follows_roles(modules):
    high = modules.state.show_sls("cluster.membership")
    assert isinstance(high, dict), high
    assert {
        "cluster-hosts-file-blockreplace-members",
        "cluster-ssh-known-hosts-file-managed",
        "cluster-mpi-hostfile-file-managed",
        "cluster-lb-config-file-managed-site",
        "cluster-nginx-service-running",
    } <= set(high)


# -- a compromised member's forged mine entry, rendered for real


@pytest.fixture
def publish(fake_mine_file):
    """Replace the mine the fake answers from; the seed mine comes back after."""
    original = fake_mine_file.read_text()

    def write(mine):
        fake_mine_file.write_text(json.dumps(published(mine)))

    yield write
    fake_mine_file.write_text(original)


def membership_files(modules):
    """hosts block, known_hosts, hostfile and upstream backends as
    cluster.membership renders them on this host (all roles)."""
    high = modules.state.show_sls("cluster.membership")
    assert isinstance(high, dict), high

    def arg(state_id, name):  # whichever state module writes the file
        (args,) = [v for k, v in high[state_id].items() if not k.startswith("__")]
        return _arg(args, name)

    return {
        "hosts": arg("cluster-hosts-file-blockreplace-members", "content"),
        "known_hosts": arg("cluster-ssh-known-hosts-file-managed", "contents"),
        "hostfile": arg("cluster-mpi-hostfile-file-managed", "contents"),
        "upstream": arg("cluster-lb-config-file-managed-site", "context")["backends"],
    }


def _node2(**changes):
    entry = copy.deepcopy(MINE["node2"])
    entry.update(changes)
    return entry


KEY = host_key("ssh-ed25519", "node2")
FORGED = {
    "host-names-master": {"node2": _node2(host="master", addrs=["10.5.5.18"])},
    "host-key-newline": {"node2": _node2(host_keys=[KEY + "\n10.5.5.10 " + KEY])},
    "host-key-bad-type": {"node2": _node2(host_keys=["ssh-dss " + KEY.split()[1]])},
    "num-cpus-string": {"node2": _node2(num_cpus="lots")},
    "num-cpus-million": {"node2": _node2(num_cpus=10**6)},
    "roles-substring": {"node2": _node2(roles="computer")},
    "addr-of-master": {"node2": _node2(addrs=["10.5.5.10"])},  # network:master_host keeps it
    "addr-of-this-host": {"node2": _node2(addrs=["10.5.5.9"])},  # node1, rendering, keeps it
    "newcomer-trailing-newline": {"node3\n": _node2(host="node3\n", addrs=["10.5.5.40"])},
    "newcomer-case-of-master": {"MASTER": _node2(host="MASTER", addrs=["10.5.5.40"])},
}


@pytest.mark.parametrize("forged", FORGED.values(), ids=FORGED)
def test_forged_entry_leaves_every_other_member_unchanged(modules, publish, forged):
    """What every host renders with the forged entry is what it renders with
    that minion absent: the others' lines stay, the forger's go."""
    honest = {k: v for k, v in MINE.items() if k not in forged}
    publish(honest)
    expected = membership_files(modules)
    assert "10.5.5.10 master" in expected["hosts"].splitlines()
    publish(dict(honest, **forged))
    assert membership_files(modules) == expected


# -- health: the renders follow each compute node's own claim (saltcluster_health)


def _claims(**states):
    mine = published(MINE)
    for name, state in states.items():
        mine[name]["saltcluster_health"] = {"state": state, "since": 1795000000, "passes": 0, "fails": 3, "failed": {}}
    return mine


@pytest.fixture
def publish_raw(fake_mine_file):
    """Replace the mine (as published) the fake answers from; the seed comes back after."""
    original = fake_mine_file.read_text()
    yield lambda mine: fake_mine_file.write_text(json.dumps(mine))
    fake_mine_file.write_text(original)


def test_a_drained_node_leaves_the_hostfile_and_the_upstream_renders(modules, publish_raw):
    publish_raw(_claims(node1="serving", node2="drained", node10="serving"))
    files = membership_files(modules)
    assert files["hostfile"].splitlines()[1:] == ["node1:2", "node10:4"]
    assert [b["name"] for b in files["upstream"]] == ["node1", "node10"]
    # still a member: it can come back
    assert "10.5.5.18 node2" in files["hosts"].splitlines()
    assert any(line.startswith("node2,10.5.5.18 ") for line in files["known_hosts"].splitlines())
    high = modules.state.show_sls("cluster.nfs.server")
    clients = next(a["clients"] for a in high["cluster-nfs-server-nfs-export-present"]["nfs_export"] if "clients" in a)
    assert "10.5.5.18" in clients
    assert not any(k.endswith("-all-kept") for k in modules.state.show_sls("cluster.membership"))


def test_every_node_drained_keeps_them_all_and_the_state_says_why(modules, publish_raw):
    publish_raw(_claims(node1="drained", node2="drained", node10="drained"))
    files = membership_files(modules)
    assert files["hostfile"].splitlines()[1:] == ["node1:2", "node2:2", "node10:4"]
    assert [b["name"] for b in files["upstream"]] == ["node1", "node2", "node10"]
    high = modules.state.show_sls("cluster.membership")
    for sid, what in (("cluster-mpi-hostfile-test-show-notification-all-kept", "hostfile"),
                      ("cluster-lb-config-test-show-notification-all-kept", "upstream")):  # fmt: skip
        (args,) = [v for k, v in high[sid].items() if not k.startswith("__")]
        assert _arg(args, "text").startswith(f"{what}: no compute member serves (node1 drained, node2 drained")
