"""The pillar each kind of host compiles from pillar/: the lab's hosts get the
lab's tuning (lab/pillar/lab.sls, the lab's master's second pillar root), an
operator's hosts get the product's pillar alone, and the single-host profile gets loopback.  Profiles are chosen by the
configuration that compiles the pillar, never by grains (a minion sets its
own)."""

import base64
import copy
import os

import pytest
import salt.pillar
import salt.utils.yaml

from tests.conftest import REPO

# pillar/mine.sls: membership published by core functions only (and
# pillar/health.sls, which every host gets too)
MINE = {
    "mine_functions": {
        "saltcluster_grains": [{"mine_function": "grains.item"}, "id", "roles", "num_cpus", {"default": []}],
        "saltcluster_addrs": [{"mine_function": "network.ip_addrs"}, {"include_loopback": True}],
        "saltcluster_host_keys": [
            {"mine_function": "ssh.host_keys"}, {"keydir": "/etc/ssh"}, {"private": False}, {"certs": False},
        ],
    },
    "mine_interval": 5,
    # pillar/health.sls: every host checks and publishes its health
    "schedule": {
        "saltcluster-health": {
            "function": "cluster_health.publish", "seconds": 10, "maxrunning": 1, "jid_include": True,
            "return_job": False,
        },
    },  # fmt: skip
}

# pillar/keys.sls on a master whose key store holds no accepted key yet
# (the test masters'): when the master accepted each minion's key, none.
NO_KEYS = {"saltcluster_key_seniority": {}}

# What an operator's host gets: pillar/saltcluster.sls and pillar/mine.sls.
PRODUCT = {
    "network": {"cidr": "10.5.5.0/24", "master_host": "master"},
    "user": {"name": "jobhandler", "uid": 100, "gid": 1100},
    "lb": {"method": "round_robin"},
}

# The MPI user on a host where nfs-common made rpcbind's _rpc the holder
# of uid 100 (the lab's image, and the single-host profile's host): moved
# with rpcbind stopped.
RELOCATING_USER = {
    **PRODUCT["user"],
    "relocate_uid_holder": True,
    "relocate_restart_services": ["rpcbind.socket", "rpcbind.service"],
}

# What every lab host compiles: one vCPU guests (two slots per node), the
# guests' NIC vec0, the image's uid-100 holder moved, and Slurm on (issue
# 15).  No munge key: the test master's key store holds no accepted key.
LAB = {
    **MINE,
    **NO_KEYS,
    "saltcluster": {
        "network": PRODUCT["network"],
        "user": RELOCATING_USER,
        "mpi": {"slots": 2, "ucx_net_device": "vec0"},
        "lb": PRODUCT["lb"],
        "scheduler": "slurm",
    },
}

# `salt-call --local` from the repository root (etc/salt/minion).
LOCAL = {
    **MINE,
    "saltcluster": {
        "network": {"cidr": "127.0.0.0/8", "master_host": "localhost"},
        "user": RELOCATING_USER,
        "mpi": {"slots": 2, "ucx_net_device": None},
        # every role on one host: the page has a port of its own
        "web": {"port": 8080},
        "lb": {"method": "round_robin", "backend_port": 8080},
    },
}

LAB_TUNING = {("user", "relocate_uid_holder"), ("user", "relocate_restart_services"), ("mpi", "slots"),
              ("mpi", "ucx_net_device")}  # fmt: skip
# pillar/munge.sls: mungekey's default length, the key the master makes once
MUNGE_KEY_BYTES = 128


def _topology():
    return salt.utils.yaml.safe_load(next(REPO.glob("lab/**/topology.yaml")).read_text())


def _lab_minions():
    """The lab's minions (hosts with roles; the outside client has none),
    and a host `saltlab join` adds, with the join token among its grains."""
    hosts = {name: {"roles": spec["roles"]} for name, spec in _topology()["hosts"].items() if spec["roles"]}
    hosts["node3"] = {"roles": ["compute"], "saltcluster_token": "not-checked-by-pillar"}
    return hosts


def _master_conf():
    return salt.utils.yaml.safe_load((REPO / "etc/master.d/saltcluster.conf").read_text())


def _compile(opts, minion_id, grains):
    grains = dict(grains, id=minion_id)
    return salt.pillar.get_pillar(opts, grains, minion_id, saltenv="base").compile_pillar()


def _master_opts(salt_factories, name, **overrides):
    factory = salt_factories.salt_master_daemon(
        name,
        overrides={
            **_master_conf(),
            "file_roots": {"base": [str(REPO / "salt")]},
            "pillar_roots": {"base": [str(REPO / "pillar")]},
            "enable_fqdns_grains": False,
            **overrides,
        },
    )
    return factory.config.copy()


# The lab's master's pillar roots (lab/labkit/hosts.py, under the repository
# its /srv/saltcluster mounts): the product's pillar, then the lab's own.
LAB_PILLAR_ROOTS = ("pillar", "lab/pillar")


@pytest.fixture(scope="module")
def lab_master_opts(salt_factories):
    """The lab's master: the product's master.d config, the repository's
    pillar and the lab's (lab/pillar), and the lab's flag."""
    roots = {"base": [str(REPO / root) for root in LAB_PILLAR_ROOTS]}
    return _master_opts(salt_factories, "pillar-lab-master", pillar_roots=roots, saltcluster_lab=True)


@pytest.fixture(scope="module")
def site_master_opts(salt_factories):
    """An operator's master: the product's master.d config and pillar/."""
    return _master_opts(salt_factories, "pillar-site-master")


@pytest.mark.parametrize("minion_id", sorted(_lab_minions()))
def test_lab_host_gets_the_lab_tuning(lab_master_opts, minion_id):
    pillar = _compile(lab_master_opts, minion_id, _lab_minions()[minion_id])
    assert pillar["saltcluster"]["mpi"]["slots"] == 2
    assert pillar["saltcluster"]["mpi"]["ucx_net_device"] == "vec0"
    assert pillar["saltcluster"]["user"]["relocate_uid_holder"] is True
    assert pillar["saltcluster"]["user"]["relocate_restart_services"] == ["rpcbind.socket", "rpcbind.service"]
    assert pillar["saltcluster"]["scheduler"] == "slurm"
    assert pillar == LAB


def test_lab_master_config_sets_the_flag():
    """The lab's master config (written by the lab's code under lab/) must
    carry the flag pillar/top.sls chooses the lab's tuning by."""
    sources = [p for p in REPO.glob("lab/**/*") if p.is_file() and p.suffix in ("", ".py", ".yaml", ".conf")]
    assert any("saltcluster_lab" in p.read_text(errors="replace") for p in sources), (
        "no file under lab/ sets saltcluster_lab: the lab's master would compile no lab tuning"
    )


def test_lab_master_config_names_the_lab_pillar_roots():
    """The lab's master config names the roots the lab's hosts are compiled
    with here, and the lab's root holds no top file: Salt reads one top
    file per environment, the first root's, so pillar/top.sls stays the
    one that decides (a second would only mislead a reader)."""
    hosts_py = (REPO / "lab/labkit/hosts.py").read_text()
    named = ", ".join(f'"/srv/saltcluster/{root}"' for root in LAB_PILLAR_ROOTS)
    assert f'"pillar_roots": {{"base": [{named}]}}' in hosts_py
    assert (REPO / "lab/pillar/lab.sls").is_file()
    assert not list((REPO / "lab/pillar").rglob("top.sls"))


@pytest.mark.parametrize(
    "grains",
    [
        {"roles": ["compute"]},
        # grains are the minion's own: naming a profile in them changes nothing
        {"roles": ["compute"], "saltcluster_lab": True, "saltcluster_local": True},
    ],
    ids=["plain", "grains-claim-profiles"],
)
@pytest.mark.parametrize("minion_id", ["master", "node1", "gateway", "node3"])
def test_operator_host_gets_no_lab_tuning(site_master_opts, minion_id, grains):
    pillar = _compile(site_master_opts, minion_id, grains)
    assert pillar == {**MINE, **NO_KEYS, "saltcluster": PRODUCT}
    for section, key in LAB_TUNING:
        assert key not in pillar["saltcluster"].get(section, {})


def test_single_host_profile(salt_factories, tmp_path):
    """`salt-call --local` from the repository root: etc/salt/minion's
    settings, with the paths made absolute.  The minion compiles its own
    pillar: its pki_dir is no key store, so there is no key seniority."""
    conf = salt.utils.yaml.safe_load((REPO / "etc/salt/minion").read_text())
    conf.update(file_roots={"base": [str(REPO / "salt")]}, pillar_roots={"base": [str(REPO / "pillar")]})
    del conf["root_dir"]
    opts = salt_factories.salt_minion_daemon("pillar-local", overrides=conf).config.copy()
    assert _compile(opts, "pillar-local", conf["grains"]) == LOCAL


def _key_store(root, accepted, pending=()):
    """A master's pki_dir under ``root``: ``accepted`` ({id: mtime}) in
    minions/, ``pending`` ids in minions_pre/, and what else the directory
    may hold that is no accepted key."""
    for sub in ("minions", "minions_pre", "minions_rejected", "minions_denied"):
        (root / sub).mkdir(parents=True)
    for minion_id, mtime in accepted.items():
        path = root / "minions" / minion_id
        path.write_text("-----BEGIN PUBLIC KEY-----\nnot checked\n-----END PUBLIC KEY-----\n")
        os.utime(path, (mtime, mtime))
    for minion_id in pending:
        (root / "minions_pre" / minion_id).write_text("pending")
    (root / "minions" / "a-directory").mkdir()
    (root / "minions" / ".hidden").write_text("x")
    return root


def _with(opts, **changes):
    return {**copy.deepcopy(opts), **changes}


@pytest.mark.parametrize("clustered", [False, True], ids=["master", "master-cluster"])
@pytest.mark.parametrize("minion_id", ["master", "node3"])
def test_key_seniority_from_the_masters_key_store(site_master_opts, tmp_path, minion_id, clustered):
    """Every host gets, from the master's own key store, when the master
    accepted each minion's key (the accepted key file's mtime): the pending
    ones, and what is no key file, are not listed.  cluster.members takes
    the claimant accepted first (_modules/cluster.py, _settle_claims).  A
    master in a Salt master cluster keeps its keys in cluster_pki_dir.

    A compute member whose key is accepted (``master`` here) also gets the
    munge key (pillar/munge.sls), made once in that same key store: 128
    bytes, base64 in the pillar; one whose key is not (``node3``) gets
    none, and no key is made for it."""
    accepted = {"master": 1795000000.5, "node1": 1795000060.25, "node2": 1795000600.0, "Node1": 1795100000.75}
    pki = _key_store(tmp_path / "pki", accepted, pending=["node9"])
    where = {"pki_dir": str(pki)}
    if clustered:
        where = {"pki_dir": str(tmp_path / "own"), "cluster_id": "saltcluster", "cluster_pki_dir": str(pki)}
    pillar = _compile(_with(site_master_opts, **where), minion_id, {"roles": ["compute"]})
    key_file = pki / "saltcluster" / "munge.key"
    munge = pillar.pop("saltcluster_munge", None)
    if minion_id in accepted:
        assert munge is not None and set(munge) == {"key"}, munge
        # hashutil.base64_encodefile writes MIME base64 (lines of 76), which
        # file.decode reads back: only the line breaks are not the alphabet's
        key = base64.b64decode("".join(munge["key"].split("\n")), validate=True)
        assert len(key) == MUNGE_KEY_BYTES
        # the master's own copy, root's only, in the key store the pillar named
        assert key_file.read_bytes() == key
        assert key_file.stat().st_mode & 0o077 == 0, oct(key_file.stat().st_mode)
    else:
        assert munge is None, "a minion without an accepted key got the munge key"
        assert not key_file.exists(), "a key was made for a minion without an accepted key"
    assert pillar == {**MINE, "saltcluster": PRODUCT, "saltcluster_key_seniority": accepted}
    seniority = pillar["saltcluster_key_seniority"]
    assert isinstance(seniority, dict) and all(isinstance(v, float) for v in seniority.values())
    assert min(seniority, key=seniority.get) == "master"


@pytest.mark.parametrize(
    "changes",
    [
        {"pki_dir": "/nonexistent/saltcluster-test/pki"},
        # the keys live elsewhere: another key cache driver
        {"keys.cache_driver": "mmap_key"},
        # the grains are the minion's own: naming a key store there changes nothing
        {"grains_pki_dir": True},
    ],
    ids=["no-key-store", "other-key-cache-driver", "grains-name-a-key-store"],
)
def test_no_key_store_no_key_seniority(site_master_opts, tmp_path, changes):
    """Where the compiling configuration has no key store of the default
    driver, nothing is published (cluster.members then decides a contested
    value without it)."""
    pki = _key_store(tmp_path / "pki", {"node1": 1795000060.0})
    grains = {"roles": ["compute"]}
    if changes.pop("grains_pki_dir", False):
        grains.update(pki_dir=str(pki), cluster_pki_dir=str(pki), cluster_id="forged")
        changes = {"pki_dir": str(tmp_path / "empty")}
    opts = _with(site_master_opts, **{"pki_dir": str(pki), **changes})
    pillar = _compile(opts, "node1", grains)
    assert pillar == {**MINE, "saltcluster": PRODUCT}


def test_membership_is_published_by_core_functions_only():
    """A minion publishes its mine entries from its first start, before any
    module of this tree is synced to it: each entry is Salt's own function,
    found in Salt's own modules, and the host keys entry is asked for the
    public keys alone (ssh.host_keys returns the private ones by default,
    and the mine serves every entry to every minion)."""
    import importlib

    import salt.utils.mine

    for name, definition in MINE["mine_functions"].items():
        fun, args, kwargs, acl = salt.utils.mine.parse_function_definition(list(definition))
        module, _, function = fun.partition(".")
        assert hasattr(importlib.import_module(f"salt.modules.{module}"), function), (name, fun)
        assert acl == {}, name
    host_keys = list(MINE["mine_functions"]["saltcluster_host_keys"])
    fun, args, kwargs, _ = salt.utils.mine.parse_function_definition(host_keys)
    assert kwargs["private"] is False and kwargs["certs"] is False
