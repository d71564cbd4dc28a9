"""cluster execution module: settings, validation, membership."""

import copy

import cluster
import pytest
import salt.utils.yaml
from salt.exceptions import CommandExecutionError
from tests.support.mine import MINE, mine_for


@pytest.fixture
def pillar():
    return {}


@pytest.fixture
def configure_loader_modules(defaults_text, pillar):
    return {
        cluster: {
            "__salt__": {
                "cp.get_file_str": lambda url: defaults_text,
                "cp.is_cached": lambda url: "",
                "pillar.get": lambda key, default=None, unmask=False: pillar or default,
                "mine.get": lambda tgt, fun: copy.deepcopy(MINE),
                "network.ip_addrs": lambda include_loopback=False: ["10.5.5.10", "127.0.0.1"],
            },
            "__grains__": {"id": "master", "host": "master", "roles": ["master"], "num_cpus": 2},
            "__opts__": {"id": "master", "file_client": "remote"},
            "__context__": {},
        }
    }


def test_settings_derives_paths_from_home(defaults):
    cfg = cluster.settings()
    assert cfg["mpi"]["hostfile"] == "/home/jobhandler/hosts"
    assert cfg["mpi"]["bin_dir"] == "/home/jobhandler/bin"
    assert cfg["nfs"]["export_path"] == "/home/jobhandler"
    assert cfg["nfs"]["clients"] == ["10.5.5.0/24"]
    assert cfg["user"]["uid"] == 100 and cfg["user"]["gid"] == 1100


@pytest.mark.parametrize("pillar", [{"user": {"home": "/srv/mpi"}}])
def test_settings_merges_pillar(pillar):
    cfg = cluster.settings()
    assert cfg["user"]["home"] == "/srv/mpi"
    assert cfg["mpi"]["hostfile"] == "/srv/mpi/hosts"
    assert cfg["user"]["name"] == "jobhandler"


def test_settings_overrides_are_validated():
    with pytest.raises(CommandExecutionError, match=r"saltcluster:lb:method: 'fastest'"):
        cluster.settings(overrides={"lb": {"method": "fastest"}})


BAD = [
    ({"user": {"uid": "abc"}}, "user:uid", "'abc'"),
    ({"user": {"uid": 70000}}, "user:uid", "70000"),
    ({"user": {"uid": -1}}, "user:uid", "-1"),
    ({"user": {"uid": True}}, "user:uid", "True"),
    ({"user": {"gid": 1.5}}, "user:gid", "1.5"),
    ({"user": {"name": "Job Handler"}}, "user:name", "'Job Handler'"),
    ({"user": {"name": "root"}}, "user:name", "'root'"),
    ({"user": {"home": "home/x"}}, "user:home", "'home/x'"),
    ({"network": {"cidr": "10.5.5.0/33"}}, "network:cidr", "'10.5.5.0/33'"),
    ({"network": {"cidr": "not-a-net"}}, "network:cidr", "'not-a-net'"),
    ({"network": {"master_host": "bad_host!"}}, "network:master_host", "'bad_host!'"),
    ({"nfs": {"clients": ["10.5.5.0/25", "bad client"]}}, "nfs:clients", "'bad client'"),
    ({"nfs": {"options": ["rw", "exec"]}}, "nfs:options", "'exec'"),
    ({"nfs": {"options": ["rw", "no_root_squash"]}}, "nfs:options", "'no_root_squash'"),
    ({"nfs": {"options": ["rw", "insecure"]}}, "nfs:options", "'insecure'"),
    ({"nfs": {"clients": ["10.0.0.0/8"]}}, "nfs:clients", "'10.0.0.0/8'"),
    ({"nfs": {"clients": ["0.0.0.0/0"]}}, "nfs:clients", "'0.0.0.0/0'"),
    ({"nfs": {"clients": ["fd00::/64"]}}, "nfs:clients", "'fd00::/64'"),
    ({"lb": {"template": "http://example.com/x.jinja"}}, "lb:template", "'http://example.com/x.jinja'"),
    ({"lb": {"template": "salt://../etc/shadow"}}, "lb:template", "'salt://../etc/shadow'"),
    ({"lb": {"method": "roundrobin"}}, "lb:method", "'roundrobin'"),
    ({"lb": {"listen_port": 0}}, "lb:listen_port", "0"),
    ({"lb": {"keepalive": -1}}, "lb:keepalive", "-1"),
    ({"lb": {"read_timeout": "soon"}}, "lb:read_timeout", "'soon'"),
    ({"lb": {"fail_timeout": "ten"}}, "lb:fail_timeout", "'ten'"),
    ({"lb": {"weights": {"node1": 0}}}, "lb:weights:node1", "0"),
    ({"lb": {"weights": {"no de": 1}}}, "lb:weights", "'no de'"),
    ({"lb": {"worker_processes": 0}}, "lb:worker_processes", "0"),
    ({"mpi": {"slots": 0}}, "mpi:slots", "0"),
    ({"mpi": {"ucx_net_device": "eth0; rm"}}, "mpi:ucx_net_device", "'eth0; rm'"),
    ({"mpi": {"allowed_dirs": ["/opt/../etc"]}}, "mpi:allowed_dirs", "'/opt/../etc'"),
    ({"mpi": {"programs": ["../evil"]}}, "mpi:programs", "'../evil'"),
    ({"mpi": {"timeout": 0}}, "mpi:timeout", "0"),
    ({"ssh": {"key_type": "dsa"}}, "ssh:key_type", "'dsa'"),
    ({"web": {"port": "80x"}}, "web:port", "'80x'"),
    ({"lb": "round_robin"}, "lb", "'round_robin'"),
    ({"mpi": {"provider": "conda"}}, "mpi:provider", "'conda'"),
    ({"mpi": {"provider": "Debian"}}, "mpi:provider", "'Debian'"),
    ({"mpi": {"release_providers": {"trixie": "spack"}}}, "mpi:release_providers:trixie", "'spack'"),
    ({"mpi": {"release_providers": ["bookworm"]}}, "mpi:release_providers", "['bookworm']"),
    ({"mpi": {"pypi": "mpich"}}, "mpi:pypi", "'mpich'"),
    ({"mpi": {"pypi": {"prefix": "opt/mpich"}}}, "mpi:pypi:prefix", "'opt/mpich'"),
    ({"mpi": {"pypi": {"prefix": "/opt/my mpich"}}}, "mpi:pypi:prefix", "'/opt/my mpich'"),
    ({"mpi": {"pypi": {"prefix": "/usr"}}}, "mpi:pypi:prefix", "'/usr'"),
    ({"mpi": {"pypi": {"requirement": "--index-url=http://x/"}}}, "mpi:pypi:requirement", "'--index-url=http://x/'"),
    ({"mpi": {"pypi": {"requirement": "mpich numpy"}}}, "mpi:pypi:requirement", "'mpich numpy'"),
    ({"mpi": {"pypi": {"requirement": ""}}}, "mpi:pypi:requirement", "''"),
    ({"mpi": {"pypi": {"python": "python3"}}}, "mpi:pypi:python", "'python3'"),
    ({"mpi": {"pypi": {"packages": "gcc"}}}, "mpi:pypi:packages", "'gcc'"),
    ({"mpi": {"debian": {"mpiexec": "mpiexec"}}}, "mpi:debian:mpiexec", "'mpiexec'"),
    ({"mpi": {"mpiexec": "mpiexec"}}, "mpi:mpiexec", "'mpiexec'"),
    ({"mpi": {"mpicc": "../mpicc"}}, "mpi:mpicc", "'../mpicc'"),
    ({"mpi": {"packages": "mpich"}}, "mpi:packages", "'mpich'"),
    ({"mpi": {"profile_file": "profile.d/x.sh"}}, "mpi:profile_file", "'profile.d/x.sh'"),
]


@pytest.mark.parametrize("override,key,value", BAD, ids=[b[1] for b in BAD])
def test_validate_names_bad_key_and_value(defaults, override, key, value):
    import salt.utils.dictupdate

    cfg = salt.utils.dictupdate.merge(copy.deepcopy(defaults), override, strategy="recurse")
    with pytest.raises(CommandExecutionError) as exc:
        cluster.validate(cfg)
    msg = str(exc.value)
    assert f"saltcluster:{key}:" in msg
    assert value in msg


def test_validate_accepts_defaults_and_every_method(defaults):
    for method in cluster.LB_METHODS:
        cfg = copy.deepcopy(defaults)
        cfg["lb"]["method"] = method
        assert cluster.validate(cfg)["lb"]["method"] == method


def test_defaults_read_once_per_context():
    calls = []
    cluster.__salt__["cp.get_file_str"] = lambda url, _orig=cluster.__salt__["cp.get_file_str"]: (
        calls.append(url) or _orig(url)
    )
    cluster.settings()
    cluster.settings()
    assert calls == [cluster.DEFAULTS_URL]


def _count_fetches():
    calls = []
    orig = cluster.__salt__["cp.get_file_str"]
    cluster.__salt__["cp.get_file_str"] = lambda url: calls.append(url) or orig(url)
    return calls


def test_cached_defaults_read_from_the_file_cache_without_a_fetch(tmp_path, defaults_text):
    copy_path = tmp_path / "defaults.yaml"
    copy_path.write_text(defaults_text.replace("timeout: 300", "timeout: 77"))
    cluster.__salt__["cp.is_cached"] = lambda url: str(copy_path) if url == cluster.DEFAULTS_URL else ""
    fetches = _count_fetches()
    assert cluster.settings(cached=True)["mpi"]["timeout"] == 77
    assert fetches == []


def test_cached_defaults_fetch_when_nothing_is_cached():
    fetches = _count_fetches()
    assert cluster.settings(cached=True)["mpi"]["timeout"] == 300
    assert fetches == [cluster.DEFAULTS_URL]


@pytest.mark.parametrize("content", ["saltcluster: [unclosed", "just a string", "other: {}\n"])
def test_cached_defaults_unusable_copy_falls_back_to_a_fetch(tmp_path, content):
    copy_path = tmp_path / "defaults.yaml"
    copy_path.write_text(content)
    cluster.__salt__["cp.is_cached"] = lambda url: str(copy_path)
    fetches = _count_fetches()
    assert cluster.settings(cached=True)["mpi"]["timeout"] == 300
    assert fetches == [cluster.DEFAULTS_URL]


def test_states_fetch_even_with_a_cached_copy(tmp_path, defaults_text):
    copy_path = tmp_path / "defaults.yaml"
    copy_path.write_text(defaults_text.replace("timeout: 300", "timeout: 77"))
    cluster.__salt__["cp.is_cached"] = lambda url: str(copy_path)
    fetches = _count_fetches()
    assert cluster.settings()["mpi"]["timeout"] == 300
    assert fetches == [cluster.DEFAULTS_URL]


def test_defaults_missing_tree_is_a_clear_error():
    cluster.__salt__["cp.get_file_str"] = lambda url: False
    with pytest.raises(CommandExecutionError, match="salt://cluster/parameters/defaults.yaml"):
        cluster.defaults()


def test_members_filters_by_cidr_and_sorts_naturally():
    names = [m["name"] for m in cluster.members()]
    # 'outsider' has no address in 10.5.5.0/24; node10 sorts after node2
    assert names == ["gateway", "master", "node1", "node2", "node10"]
    gateway = cluster.members()[0]
    assert gateway["addr"] == "10.5.5.1"  # not its external 10.0.2.5


def test_members_by_role():
    assert [m["name"] for m in cluster.members("compute")] == ["node1", "node2", "node10"]
    assert [m["name"] for m in cluster.members("gateway")] == ["gateway"]


def test_members_ignores_garbage_mine_entries():
    mine = mine_for(["node1"])
    mine["broken"] = "not a dict"
    mine["bad name"] = {"addrs": ["10.5.5.99"], "roles": ["compute"]}
    assert [m["name"] for m in cluster.members(mine=mine)] == ["node1"]


def test_members_masterless_uses_this_host():
    cluster.__opts__["file_client"] = "local"
    cluster.__salt__["mine.get"] = lambda tgt, fun: {}
    members = cluster.members()
    assert [(m["name"], m["addr"]) for m in members] == [("master", "10.5.5.10")]


def test_members_refuses_an_empty_mine_on_a_minion():
    """A master that cannot answer must not empty hosts, hostfile or upstream."""
    cluster.__salt__["mine.get"] = lambda tgt, fun: {}
    with pytest.raises(CommandExecutionError, match="no saltcluster_host data at all"):
        cluster.members()
    with pytest.raises(CommandExecutionError, match="keeping the running membership files"):
        cluster.hosts_block()


def test_hosts_block():
    assert cluster.hosts_block(mine=mine_for(["master", "node1"])) == "10.5.5.10 master\n10.5.5.9 node1"


def test_known_hosts_lists_real_keys_with_name_and_addr():
    lines = cluster.known_hosts(mine=mine_for(["node1"])).splitlines()
    assert lines == [
        "node1,10.5.5.9 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAInode1",
        "node1,10.5.5.9 ecdsa-sha2-nistp256 AAAAE2VjZHNhnode1",
    ]


def test_hostfile_slots_from_num_cpus():
    assert cluster.hostfile() == "node1:2\nnode2:2\nnode10:4"


@pytest.mark.parametrize("pillar", [{"mpi": {"slots": 3}}])
def test_hostfile_slots_from_pillar(pillar):
    assert cluster.hostfile() == "node1:3\nnode2:3\nnode10:3"


@pytest.mark.parametrize("pillar", [{"lb": {"weights": {"node2": 5}, "backend_port": 8080}}])
def test_upstream_weights_and_port(pillar):
    backends = cluster.upstream()
    assert [(b["name"], b["addr"], b["port"], b["weight"]) for b in backends] == [
        ("node1", "10.5.5.9", 8080, 1),
        ("node2", "10.5.5.18", 8080, 5),
        ("node10", "10.5.5.30", 8080, 1),
    ]


def test_upstream_empty_refuses():
    with pytest.raises(CommandExecutionError, match="compute backend list is empty"):
        cluster.upstream(mine=mine_for(["master", "gateway"]))


def test_host_info_publishes_roles_addrs_and_keys(tmp_path, monkeypatch):
    monkeypatch.setattr(cluster.glob, "glob", lambda pattern: [str(tmp_path / "k.pub")])
    (tmp_path / "k.pub").write_text("ssh-ed25519 AAAAkey root@x\n")
    info = cluster.host_info()
    assert info == {
        "host": "master",
        "roles": ["master"],
        "addrs": ["10.5.5.10", "127.0.0.1"],
        "num_cpus": 2,
        "host_keys": ["ssh-ed25519 AAAAkey"],
    }


def test_uid_holder(monkeypatch):
    class Pw:
        pw_name = "messagebus"

    monkeypatch.setattr(cluster.pwd, "getpwuid", lambda uid: Pw)
    assert cluster.uid_holder(100, "jobhandler") == "messagebus"
    assert cluster.uid_holder(100, "messagebus") is None

    def missing(uid):
        raise KeyError(uid)

    monkeypatch.setattr(cluster.pwd, "getpwuid", missing)
    assert cluster.uid_holder(100, "jobhandler") is None


def test_mine_snapshot_is_json():
    assert '"node1"' in cluster.mine_snapshot()


def test_pillar_example_documents_every_default(repo, defaults):
    example = salt.utils.yaml.safe_load((repo / "pillar.example").read_text())["saltcluster"]

    def keys(d, prefix=""):
        out = set()
        for k, v in d.items():
            out.add(prefix + k)
            if isinstance(v, dict) and v:
                out |= keys(v, prefix + k + ":")
        return out

    assert keys(example) == keys(defaults)
    # and the example is itself valid
    assert cluster.validate(example)


# -- the MPI provider, by Debian release unless pillar names it

DEBIAN_12 = {"os": "Debian", "os_family": "Debian", "osmajorrelease": 12, "oscodename": "bookworm"}
DEBIAN_13 = {"os": "Debian", "os_family": "Debian", "osmajorrelease": 13, "oscodename": "trixie"}
PREFIX = "/opt/saltcluster/mpich"


@pytest.mark.parametrize(
    "grains,provider",
    [
        (DEBIAN_12, "pypi"),
        ({"osmajorrelease": 12}, "pypi"),  # no codename grain
        ({"oscodename": "bookworm"}, "pypi"),  # no release number
        (DEBIAN_13, "debian"),
        ({"os": "Debian", "osmajorrelease": 14, "oscodename": "forky"}, "debian"),  # newer
        ({"os": "Debian", "osmajorrelease": 11, "oscodename": "bullseye"}, "debian"),  # not named
        ({}, "debian"),  # unknown
    ],
    ids=["12", "12-number-only", "bookworm-name-only", "13", "14", "11", "unknown"],
)
def test_provider_by_release(defaults, grains, provider):
    assert cluster.validate(defaults, grains=grains)["mpi"]["provider"] == provider


def test_pypi_provider_values_on_debian_12(defaults):
    mpi = cluster.validate(defaults, grains=DEBIAN_12)["mpi"]
    assert mpi["packages"] == ["gcc", "libc6-dev", "python3-venv"]
    assert mpi["mpiexec"] == f"{PREFIX}/bin/mpiexec" and mpi["mpicc"] == f"{PREFIX}/bin/mpicc"
    assert mpi["path_dirs"] == [f"{PREFIX}/bin"] and mpi["library_dirs"] == [f"{PREFIX}/lib"]
    assert mpi["pypi"]["requirement"] == "mpich==5.0.2"


def test_debian_provider_values_on_debian_13(defaults):
    mpi = cluster.validate(defaults, grains=DEBIAN_13)["mpi"]
    assert mpi["packages"] == ["mpich", "libmpich-dev", "gcc", "libc6-dev"]
    assert mpi["mpiexec"] == "/usr/bin/mpiexec" and mpi["mpicc"] == "/usr/bin/mpicc"
    assert mpi["path_dirs"] == [] and mpi["library_dirs"] == []


def test_settings_derive_the_provider_from_this_minions_grains():
    cluster.__grains__.update(DEBIAN_12)
    assert cluster.settings()["mpi"]["provider"] == "pypi"
    cluster.__grains__.update(DEBIAN_13)
    assert cluster.settings()["mpi"]["provider"] == "debian"


@pytest.mark.parametrize("pillar", [{"mpi": {"provider": "debian"}}])
def test_pillar_provider_wins_over_the_release(pillar):
    cluster.__grains__.update(DEBIAN_12)
    mpi = cluster.settings()["mpi"]
    assert mpi["provider"] == "debian" and mpi["mpiexec"] == "/usr/bin/mpiexec"
    assert "mpich" in mpi["packages"] and mpi["library_dirs"] == []


@pytest.mark.parametrize("pillar", [{"mpi": {"provider": "pypi", "pypi": {"prefix": "/srv/mpich"}}}])
def test_pillar_pypi_on_debian_13_with_its_own_prefix(pillar):
    cluster.__grains__.update(DEBIAN_13)
    mpi = cluster.settings()["mpi"]
    assert mpi["provider"] == "pypi"
    assert (mpi["mpiexec"], mpi["mpicc"]) == ("/srv/mpich/bin/mpiexec", "/srv/mpich/bin/mpicc")
    assert mpi["library_dirs"] == ["/srv/mpich/lib"]


@pytest.mark.parametrize("pillar", [{"mpi": {"release_providers": {"bookworm": "debian", "12": "debian"}}}])
def test_pillar_release_table_wins(pillar):
    cluster.__grains__.update(DEBIAN_12)
    assert cluster.settings()["mpi"]["provider"] == "debian"


@pytest.mark.parametrize("pillar", [{"mpi": {"mpiexec": "/usr/local/bin/mpiexec", "packages": ["mpich"]}}])
def test_explicit_mpiexec_and_packages_win_over_the_providers(pillar):
    cluster.__grains__.update(DEBIAN_12)
    mpi = cluster.settings()["mpi"]
    assert mpi["provider"] == "pypi"
    assert mpi["mpiexec"] == "/usr/local/bin/mpiexec" and mpi["packages"] == ["mpich"]
    assert mpi["mpicc"] == f"{PREFIX}/bin/mpicc"  # not set: still the provider's


@pytest.mark.parametrize("pillar", [{"mpi": {"provider": "conda"}}])
def test_unknown_provider_refused_naming_key_value_and_choices(pillar):
    with pytest.raises(CommandExecutionError) as exc:
        cluster.settings()
    assert str(exc.value) == (
        "saltcluster:mpi:provider: 'conda' is invalid: must be one of debian, pypi, or null (by Debian release)"
    )


def test_cached_defaults_older_than_the_modules_are_fetched_again(tmp_path, defaults_text):
    """Modules synced, no state run since: the cached copy has no provider keys."""
    old = salt.utils.yaml.safe_load(defaults_text)
    for key in ("provider", "release_providers", "debian", "pypi", "profile_file"):
        del old["saltcluster"]["mpi"][key]
    cached = tmp_path / "defaults.yaml"
    cached.write_text(salt.utils.yaml.safe_dump(old))
    cluster.__salt__["cp.is_cached"] = lambda url: str(cached)
    cluster.__grains__.update(DEBIAN_12)
    assert cluster.settings(cached=True)["mpi"]["provider"] == "pypi"


@pytest.mark.parametrize("pillar", [{"mpi": {"release_providers": None}}])
def test_no_release_table_means_debian_everywhere(pillar):
    cluster.__grains__.update(DEBIAN_12)
    assert cluster.settings()["mpi"]["provider"] == "debian"
