"""Render the real tree with real loaders: membership-driven files."""

import copy
import json

import pytest

from tests.support.mine import MINE, host_key

MINION_ID = "node1"


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
    # the compute members of the fake mine, not the cidr: a non-member cannot mount
    assert sorted(_arg(export, "clients")) == sorted(["10.5.5.9", "10.5.5.18", "10.5.5.30"])
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


# -- a compromised member's forged mine entry, rendered for real


@pytest.fixture
def publish(fake_mine_file):
    """Replace the mine the fake answers from; the seed mine comes back after."""
    original = fake_mine_file.read_text()

    def write(mine):
        fake_mine_file.write_text(json.dumps({m: {"saltcluster_host": e} for m, e in mine.items()}))

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
        "upstream": arg("cluster-lb-config-file-managed-nginx-conf", "context")["backends"],
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
