"""Real state runs on scratch paths: test=True reports, then applies."""

import pytest

from tests.support.mine import host_key

MINION_ID = "master"
ROLES = ["master"]


def _by_id(ret):
    raw = getattr(ret, "raw", ret)
    assert isinstance(raw, dict), raw
    return {key.split("_|-")[1]: value for key, value in raw.items()}


def test_hosts_test_mode_then_apply_keeps_other_lines(modules, workdir):
    hosts = workdir / "hosts"
    hosts.write_text("127.0.0.1 localhost\n::1 localhost ip6-localhost\n")
    ret = _by_id(modules.state.sls("cluster.hosts", test=True))
    assert ret["cluster-hosts-file-blockreplace-members"]["result"] is None
    assert "10.5.5.9 node1" in ret["cluster-hosts-file-blockreplace-members"]["changes"]["diff"]
    assert hosts.read_text().count("\n") == 2
    ret = _by_id(modules.state.sls("cluster.hosts"))
    assert ret["cluster-hosts-file-blockreplace-members"]["result"] is True
    text = hosts.read_text()
    assert text.startswith("127.0.0.1 localhost\n::1 localhost ip6-localhost\n")
    assert "10.5.5.18 node2\n" in text and "192.168.9.9" not in text
    # second run: nothing to do
    ret = _by_id(modules.state.sls("cluster.hosts"))
    assert ret["cluster-hosts-file-blockreplace-members"]["changes"] == {}


def test_known_hosts_from_mine(modules, workdir):
    ret = _by_id(modules.state.sls("cluster.ssh.known_hosts"))
    assert ret["cluster-ssh-known-hosts-file-managed"]["result"] is True
    lines = (workdir / "ssh_known_hosts").read_text().splitlines()
    assert f"node2,10.5.5.18 {host_key('ssh-ed25519', 'node2')}" in lines
    assert not any("outsider" in line for line in lines)


def test_nfs_export_test_mode(modules, workdir):
    ret = modules.state.single(
        "nfs_export.present", name=str(workdir / "home"), clients=["10.5.5.0/24"],
        exports=str(workdir / "exports"), test=True,
    )  # fmt: skip
    (result,) = _by_id(ret).values()
    assert result["result"] is None
    assert result["changes"]["new"] == f"{workdir / 'home'} 10.5.5.0/24(rw,sync,no_subtree_check,root_squash)"
    assert not (workdir / "exports").exists()


def test_uid_clash_reported_in_test_mode(modules):
    import pwd

    holder = pwd.getpwuid(0).pw_name
    ret = modules.state.single("cluster_user.uid_free", name="scfunc", uid=0, test=True)
    (result,) = _by_id(ret).values()
    assert result["result"] is False and f"held by {holder!r}" in result["comment"]


@pytest.mark.parametrize("sls", ["cluster.mpi.hostfile", "cluster.mpi.programs", "cluster.nfs.server"])
def test_master_states_report_changes_in_test_mode(modules, sls, workdir):
    ret = _by_id(modules.state.sls(sls, test=True))
    failed = {k: v["comment"] for k, v in ret.items() if v["result"] is False}
    assert not failed
    assert any(v["result"] is None for v in ret.values())
    assert not (workdir / "home").exists()
