"""Real state runs on scratch paths: test=True reports, then applies."""

import pathlib
import subprocess
import tempfile

import pytest

from tests.functional.conftest import by_id, scratch_nginx, snapshot, staging_dirs
from tests.support.mine import host_key

MINION_ID = "master"
ROLES = ["master"]


def test_hosts_test_mode_then_apply_keeps_other_lines(modules, workdir):
    hosts = workdir / "hosts"
    hosts.write_text("127.0.0.1 localhost\n::1 localhost ip6-localhost\n")
    ret = by_id(modules.state.sls("cluster.hosts", test=True))
    assert ret["cluster-hosts-file-blockreplace-members"]["result"] is None
    assert "10.5.5.9 node1" in ret["cluster-hosts-file-blockreplace-members"]["changes"]["diff"]
    assert hosts.read_text().count("\n") == 2
    ret = by_id(modules.state.sls("cluster.hosts"))
    assert ret["cluster-hosts-file-blockreplace-members"]["result"] is True
    text = hosts.read_text()
    assert text.startswith("127.0.0.1 localhost\n::1 localhost ip6-localhost\n")
    assert "10.5.5.18 node2\n" in text and "192.168.9.9" not in text
    # second run: nothing to do
    ret = by_id(modules.state.sls("cluster.hosts"))
    assert ret["cluster-hosts-file-blockreplace-members"]["changes"] == {}


def test_known_hosts_from_mine(modules, workdir):
    ret = by_id(modules.state.sls("cluster.ssh.known_hosts"))
    assert ret["cluster-ssh-known-hosts-file-managed"]["result"] is True
    lines = (workdir / "ssh_known_hosts").read_text().splitlines()
    assert f"node2,10.5.5.18 {host_key('ssh-ed25519', 'node2')}" in lines
    assert not any("outsider" in line for line in lines)


def test_nfs_export_test_mode(modules, workdir):
    ret = modules.state.single(
        "nfs_export.present", name=str(workdir / "home"), clients=["10.5.5.0/24"],
        exports=str(workdir / "exports"), test=True,
    )  # fmt: skip
    (result,) = by_id(ret).values()
    assert result["result"] is None
    assert result["changes"]["new"] == f"{workdir / 'home'} 10.5.5.0/24(rw,sync,no_subtree_check,root_squash)"
    assert not (workdir / "exports").exists()


def test_uid_clash_reported_in_test_mode(modules):
    import pwd

    holder = pwd.getpwuid(0).pw_name
    ret = modules.state.single("cluster_user.uid_free", name="scfunc", uid=0, test=True)
    (result,) = by_id(ret).values()
    assert result["result"] is False and f"held by {holder!r}" in result["comment"]


@pytest.mark.parametrize("sls", ["cluster.mpi.hostfile", "cluster.mpi.programs", "cluster.nfs.server"])
def test_master_states_report_changes_in_test_mode(modules, sls, workdir):
    ret = by_id(modules.state.sls(sls, test=True))
    failed = {k: v["comment"] for k, v in ret.items() if v["result"] is False}
    assert not failed
    assert any(v["result"] is None for v in ret.values())
    assert not (workdir / "home").exists()


# -- nginx: one base config, one site file per role, each checked before it lands


@pytest.fixture
def nginx(modules, workdir):
    """The base config and the checker in place (cluster.nginx.config), no
    site file yet; the paths."""
    paths = scratch_nginx(workdir)
    conf = pathlib.Path(paths["config_file"])
    sites = conf.parent / "saltcluster.d"
    for site in sites.glob("*"):
        site.unlink()
    ret = by_id(modules.state.sls("cluster.nginx.config"))
    assert {k: v["comment"] for k, v in ret.items() if v["result"] is not True} == {}
    return {"conf": conf, "sites": sites, "check": pathlib.Path(paths["check_command"])}


def _check(nginx, target, text, tmp_path):
    """The checker as file.managed's check_cmd runs it: on a candidate for TARGET."""
    candidate = tmp_path / "candidate"
    candidate.write_text(text)
    run = subprocess.run(
        [str(nginx["check"]), str(nginx["conf"]), "saltcluster.d", target, str(candidate)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return run.returncode, run.stderr


PAGE = "server {\n    listen 80 default_server;\n    return 200 ok;\n}\n"


def test_checker_stages_the_candidate_with_the_live_sites(nginx, tmp_path):
    (nginx["sites"] / "web.conf").write_text(PAGE)
    live = snapshot([nginx["conf"], nginx["sites"], nginx["sites"] / "web.conf"])
    staged = staging_dirs()
    # a site that fits beside the live one
    assert _check(nginx, "saltcluster.d/lb.conf", PAGE.replace("80", "81"), tmp_path) == (0, "")
    # one that clashes with the live site: only the staged set shows it
    rc, err = _check(nginx, "saltcluster.d/lb.conf", PAGE, tmp_path)
    assert rc != 0 and "duplicate default server" in err
    assert f"{tempfile.gettempdir()}/saltcluster-nginx." in err and str(nginx["conf"].parent) not in err
    # a candidate for a live site replaces it in the staged set
    assert _check(nginx, "saltcluster.d/web.conf", PAGE.replace("200", "204"), tmp_path)[0] == 0
    # a base config: checked with the live sites it includes
    base = nginx["conf"].read_text()
    assert _check(nginx, "nginx.conf", base, tmp_path)[0] == 0
    rc, err = _check(nginx, "nginx.conf", base.replace("events {", "events {{"), tmp_path)
    assert rc != 0 and "nginx.conf" in err
    # outside the staging directory: refused before anything is copied
    rc, err = _check(nginx, "../nginx.conf", base, tmp_path)
    assert rc == 2 and "'..'" in err
    assert snapshot([nginx["conf"], nginx["sites"], nginx["sites"] / "web.conf"]) == live
    assert staging_dirs() == staged


def test_lb_site_clashing_with_the_live_web_site_is_refused(modules, nginx):
    """web and lb on one port of one nginx (this host's roles do not stop
    rendering here): the lb candidate is checked beside the live web site,
    refused, and never written."""
    ret = by_id(modules.state.sls("cluster.web.config"))
    assert ret["cluster-web-config-file-managed-site"]["result"] is True
    web = nginx["sites"] / "web.conf"
    before = web.read_bytes()
    ret = by_id(modules.state.sls("cluster.lb.config"))
    result = ret["cluster-lb-config-file-managed-site"]
    assert result["result"] is False and "duplicate default server" in result["comment"]
    assert not (nginx["sites"] / "lb.conf").exists() and web.read_bytes() == before
    # on a port of its own it goes live beside the web site
    ret = by_id(modules.state.sls("cluster.lb.config", pillar={"saltcluster": {"lb": {"listen_port": 8081}}}))
    assert ret["cluster-lb-config-file-managed-site"]["result"] is True
    run = subprocess.run(["nginx", "-t", "-q", "-c", str(nginx["conf"])], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr


def test_site_files_of_roles_a_host_lacks_are_removed(modules, nginx):
    """This host is master only: its highstate removes both site files
    (left from roles it held before), and builds neither."""
    high = modules.state.show_highstate()
    assert isinstance(high, dict), high
    sls = {v["__sls__"] for v in high.values()}
    assert {"cluster.web.clean", "cluster.lb.clean"} <= sls
    assert not {"cluster.web.config", "cluster.lb.config", "cluster.nginx.config"} & sls
    for name in ("web.conf", "lb.conf"):
        (nginx["sites"] / name).write_text(PAGE)
    ret = by_id(modules.state.sls("cluster.web.clean,cluster.lb.clean"))
    assert ret["cluster-web-clean-file-absent-site"]["changes"] == {"removed": str(nginx["sites"] / "web.conf")}
    assert ret["cluster-lb-clean-file-absent-site"]["changes"] == {"removed": str(nginx["sites"] / "lb.conf")}
    assert sorted(nginx["sites"].iterdir()) == []
    ret = by_id(modules.state.sls("cluster.web.clean,cluster.lb.clean"))
    assert all(v["result"] is True and v["changes"] == {} for v in ret.values())
