"""The shared home is exported to the compute members' addresses, read from
the (fake) mine the way the master's own highstate and the join/leave
orchestrations read it, and follows joins and leaves; an explicit
``nfs:clients`` pillar wins; a failed export never goes live."""

import json
import os

import pytest

from tests.support.mine import MINE, _entry, published

MINION_ID = "master"
ROLES = ["master"]
EXPORT_ID = "cluster-nfs-server-nfs-export-present"
OPTIONS = "rw,sync,no_subtree_check,root_squash"


@pytest.fixture(scope="module")
def fake_mine_file(tmp_path_factory):
    """This module's own mine file (it is rewritten for joins and leaves)."""
    return tmp_path_factory.mktemp("nfs-mine") / "mine.json"


@pytest.fixture
def mine(fake_mine_file):
    def write(entries):
        fake_mine_file.write_text(json.dumps(published(entries)))

    write(MINE)
    yield write
    write(MINE)


def _arg(state, name):
    return next(arg[name] for arg in state if isinstance(arg, dict) and name in arg)


def rendered_clients(modules, **kwargs):
    high = modules.state.show_sls("cluster.nfs.server", **kwargs)
    assert isinstance(high, dict), high
    return _arg(high[EXPORT_ID]["nfs_export"], "clients")


def member_clients(modules):
    """The rendered clients as a sorted list (members() orders them by name;
    the export only has to list each member once)."""
    clients = rendered_clients(modules)
    assert len(clients) == len(set(clients)), clients
    return sorted(clients, key=lambda a: tuple(int(p) for p in a.split(".")))


def test_export_lists_exactly_the_compute_members(modules, mine):
    """node1, node2, node10: not the cidr, not the gateway (it faces the
    outside and mounts nothing), not the outsider (no address in the cidr)."""
    assert member_clients(modules) == ["10.5.5.9", "10.5.5.18", "10.5.5.30"]


def test_export_follows_a_join_and_a_leave(modules, mine):
    joined = dict(MINE, node3=_entry("node3", {"addrs": ["10.5.5.40"], "roles": ["compute"], "num_cpus": 1}))
    mine(joined)
    assert member_clients(modules) == ["10.5.5.9", "10.5.5.18", "10.5.5.30", "10.5.5.40"]
    left = {m: e for m, e in joined.items() if m != "node2"}
    mine(left)
    assert member_clients(modules) == ["10.5.5.9", "10.5.5.30", "10.5.5.40"]


def test_explicit_pillar_clients_win(modules, mine):
    pillar = {"saltcluster": {"nfs": {"clients": ["10.5.5.0/28", "node2"]}}}
    assert rendered_clients(modules, pillar=pillar) == ["10.5.5.0/28", "node2"]


def test_settings_leave_clients_empty_for_the_members(modules):
    assert modules.cluster.settings()["nfs"]["clients"] == []


def test_no_compute_member_keeps_the_running_export(modules, mine, workdir):
    """No compute node in the mine: nfs_export refuses the empty client list
    and the exports file keeps its last good line."""
    exports = workdir / "exports"
    exports.write_text(f"{workdir / 'home'} 10.5.5.9({OPTIONS})\n")
    mine({m: e for m, e in MINE.items() if "compute" not in e["roles"]})
    assert rendered_clients(modules) == []
    ret = modules.state.single("nfs_export.present", name=str(workdir / "home"), clients=[], exports=str(exports))
    (result,) = ret.raw.values()
    assert result["result"] is False and "no clients" in result["comment"]
    assert exports.read_text() == f"{workdir / 'home'} 10.5.5.9({OPTIONS})\n"


@pytest.fixture
def fake_exportfs(tmp_path, monkeypatch):
    """An exportfs on PATH that refuses the exports file ($EXPORTS) while it
    names `bad-host`, and logs its arguments."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "exportfs.log"
    script = bindir / "exportfs"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {log}\n'
        'if grep -q bad-host "$EXPORTS"; then\n'
        '  echo "exportfs: Failed to resolve bad-host" >&2; exit 1\nfi\n'
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    return log


def test_members_export_applied_then_a_bad_one_rolled_back(modules, mine, workdir, fake_exportfs, monkeypatch):
    exports = workdir / "exports"
    exports.write_text("/srv/other 10.0.0.0/8(ro)\n")
    monkeypatch.setenv("EXPORTS", str(exports))
    clients = rendered_clients(modules)
    ret = modules.state.single("nfs_export.present", name=str(workdir / "home"), clients=clients, exports=str(exports))
    (result,) = ret.raw.values()
    assert result["result"] is True, result
    good = f"/srv/other 10.0.0.0/8(ro)\n{workdir / 'home'} " + " ".join(f"{c}({OPTIONS})" for c in clients) + "\n"
    assert exports.read_text() == good
    ret = modules.state.single(
        "nfs_export.present", name=str(workdir / "home"), clients=[*clients, "bad-host"], exports=str(exports)
    )
    (result,) = ret.raw.values()
    assert result["result"] is False and "previous export kept" in result["comment"]
    assert exports.read_text() == good
    assert fake_exportfs.read_text().splitlines() == ["-ra", "-ra", "-ra"]
