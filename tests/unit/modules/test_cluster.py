"""cluster execution module: settings, validation, membership."""

import copy
import json
import logging
import re

import cluster
import pytest
import salt.utils.dictupdate
import salt.utils.yaml
from salt.exceptions import CommandExecutionError
from tests.conftest import REPO
from tests.support.mine import MINE, host_key, key_blob, mine_for, mine_get, published, ssh_string


MINE_FUNCTIONS = salt.utils.yaml.safe_load((REPO / "pillar/mine.sls").read_text())["mine_functions"]
# this host's ssh host keys as ssh.host_keys reads /etc/ssh (keyed by file)
HOST_KEY_FILES = {}


def grains_item(*names, **kwargs):
    """Salt's grains.item over this host's grains."""
    return {name: cluster.__grains__.get(name, kwargs.get("default", "")) for name in names}


def ssh_host_keys(keydir=None, private=True, certs=True):
    """Salt's ssh.host_keys over HOST_KEY_FILES: ``<type>.pub``,
    ``<type>-cert.pub`` and the private ``<type>``."""
    return {
        name: text
        for name, text in HOST_KEY_FILES.items()
        if (private or name.endswith(".pub")) and (certs or not name.endswith("-cert.pub"))
    }


@pytest.fixture(autouse=True)
def host_key_files():
    HOST_KEY_FILES.clear()
    HOST_KEY_FILES.update({"ed25519.pub": host_key("ssh-ed25519", "me") + " root@master", "ed25519": PRIVATE_KEY})
    return HOST_KEY_FILES


PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nsecret\n-----END OPENSSH PRIVATE KEY-----"


@pytest.fixture
def pillar():
    return {}


@pytest.fixture
def hosts_file(tmp_path):
    """network:hosts_file, where cluster.hosts writes the members block:
    none on this host unless a test writes one (membership never reads it)."""
    return tmp_path / "hosts"


# When the master accepted each seed host's key, as pillar/keys.sls
# publishes it (saltcluster_key_seniority): in the seed's order, a minute
# apart; a host that joins afterwards is later still (JOINED).
ACCEPTED = 1795000000.25
SENIORITY = {name: ACCEPTED + 60 * i for i, name in enumerate(MINE)}
JOINED = ACCEPTED + 86400


@pytest.fixture
def seniority():
    """This host's saltcluster_key_seniority pillar (a test may add to it)."""
    return dict(SENIORITY)


@pytest.fixture
def configure_loader_modules(defaults_text, pillar, hosts_file, seniority):
    base = {"network": {"hosts_file": str(hosts_file)}}
    merged = salt.utils.dictupdate.merge(base, copy.deepcopy(pillar), strategy="recurse")
    pillar_keys = {"saltcluster": merged, cluster.KEY_SENIORITY_PILLAR: seniority}
    return {
        cluster: {
            "__salt__": {
                "cp.get_file_str": lambda url: defaults_text,
                "cp.is_cached": lambda url: "",
                "pillar.get": lambda key, default=None, unmask=False: pillar_keys.get(key, default),
                "mine.get": lambda tgt, fun: mine_get(published(MINE), fun),
                "network.ip_addrs": lambda include_loopback=False: ["10.5.5.10", "127.0.0.1"],
                # what cluster.host_info runs: the mine_functions of pillar/mine.sls
                "config.merge": lambda key, default=None: copy.deepcopy(MINE_FUNCTIONS),
                "grains.item": grains_item,
                "ssh.host_keys": ssh_host_keys,
            },
            "__grains__": {"id": "master", "host": "master", "roles": ["master"], "num_cpus": 2},
            "__opts__": {"id": "master", "file_client": "remote"},
            "__context__": {},
        }
    }


def with_mine(mine):
    """From here on the mine answers from ``mine`` (``{minion: {entry:
    data}}``, as ``published`` makes it and the master's mine cache holds
    it): cluster's functions read it through ``mine.get``, as on a host.
    Returns ``mine``; a change to it shows in the next read."""
    cluster.__salt__["mine.get"] = lambda tgt, fun: mine_get(mine, fun)
    return mine


def test_settings_derives_paths_from_home(defaults):
    cfg = cluster.settings()
    assert cfg["mpi"]["hostfile"] == "/home/jobhandler/hosts"
    assert cfg["mpi"]["bin_dir"] == "/home/jobhandler/bin"
    assert cfg["nfs"]["export_path"] == "/home/jobhandler"
    assert cfg["nfs"]["clients"] == []  # empty: the compute members, from the mine
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
    ({"nginx": {"worker_processes": 0}}, "nginx:worker_processes", "0"),
    ({"nginx": {"site_dir": "../etc"}}, "nginx:site_dir", "'../etc'"),
    ({"lb": {"site_file": "lb.conf\n"}}, "lb:site_file", "'lb.conf\\n'"),
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
    # a trailing newline passes a pattern that ends in $: every one ends in \Z
    ({"user": {"name": "jobhandler\n"}}, "user:name", "'jobhandler\\n'"),
    ({"user": {"group": "jobhandler\n"}}, "user:group", "'jobhandler\\n'"),
    ({"network": {"master_host": "master\n"}}, "network:master_host", "'master\\n'"),
    ({"mpi": {"ucx_net_device": "vec0\n"}}, "mpi:ucx_net_device", "'vec0\\n'"),
    ({"lb": {"read_timeout": "5s\n"}}, "lb:read_timeout", "'5s\\n'"),
    ({"lb": {"zone_size": "64k\n"}}, "lb:zone_size", "'64k\\n'"),
    ({"lb": {"template": "salt://cluster/files/nginx/lb.conf.jinja\n"}}, "lb:template", "jinja\\n'"),
    ({"nfs": {"options": ["rw", "anonuid=5\n"]}}, "nfs:options", "'anonuid=5\\n'"),
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


# Every rule of validate with one bad value, and the whole message it gives:
# the last four hold two bad values each, and the one checked first is named.
EXACT = [
    ({"network": None}, "network: None is invalid: must be a mapping"),
    ({"user": []}, "user: [] is invalid: must be a mapping"),
    ({"nfs": "x"}, "nfs: 'x' is invalid: must be a mapping"),
    ({"ssh": 1}, "ssh: 1 is invalid: must be a mapping"),
    ({"mpi": None}, "mpi: None is invalid: must be a mapping"),
    ({"nginx": []}, "nginx: [] is invalid: must be a mapping"),
    ({"web": "x"}, "web: 'x' is invalid: must be a mapping"),
    (
        {"network": {"cidr": "10.5.5.0/33"}},
        "network:cidr: '10.5.5.0/33' is invalid: "
        "is not a network in cidr form ('10.5.5.0/33' does not appear to be an IPv4 or IPv6 network)",
    ),
    (
        {"network": {"cidr": None}},
        "network:cidr: None is invalid: "
        "is not a network in cidr form ('None' does not appear to be an IPv4 or IPv6 network)",
    ),
    ({"network": {"master_host": 5}}, "network:master_host: 5 is invalid: is not a valid host name"),
    (
        {"network": {"hosts_file": "etc/hosts"}},
        "network:hosts_file: 'etc/hosts' is invalid: must be an absolute path without '..'",
    ),
    (
        {"network": {"join_marker": "/etc/../x"}},
        "network:join_marker: '/etc/../x' is invalid: must be an absolute path without '..'",
    ),
    ({"user": {"name": 7}}, "user:name: 7 is invalid: is not a valid user name"),
    ({"user": {"name": "root"}}, "user:name: 'root' is invalid: MPI jobs never run as root"),
    ({"user": {"group": "Bad Group"}}, "user:group: 'Bad Group' is invalid: is not a valid group name"),
    ({"user": {"group": None}}, "user:group: None is invalid: is not a valid group name"),
    ({"user": {"uid": "abc"}}, "user:uid: 'abc' is invalid: must be an integer"),
    ({"user": {"uid": 0}}, "user:uid: 0 is invalid: must be between 1 and 65534"),
    ({"user": {"gid": 70000}}, "user:gid: 70000 is invalid: must be between 1 and 65534"),
    ({"user": {"gid": False}}, "user:gid: False is invalid: must be an integer"),
    ({"user": {"home": 3}}, "user:home: 3 is invalid: must be an absolute path without '..'"),
    ({"user": {"shell": "bash"}}, "user:shell: 'bash' is invalid: must be an absolute path without '..'"),
    ({"user": {"relocate_uid_holder": "yes"}}, "user:relocate_uid_holder: 'yes' is invalid: must be true or false"),
    (
        {"user": {"relocate_restart_services": "rpcbind"}},
        "user:relocate_restart_services: 'rpcbind' is invalid: must be a list of non-empty strings",
    ),
    (
        {"user": {"relocate_restart_services": ["rpcbind", ""]}},
        "user:relocate_restart_services: ['rpcbind', ''] is invalid: must be a list of non-empty strings",
    ),
    (
        {"mpi": {"provider": "conda"}},
        "mpi:provider: 'conda' is invalid: must be one of debian, pypi, or null (by Debian release)",
    ),
    (
        {"mpi": {"release_providers": ["bookworm"]}},
        "mpi:release_providers: ['bookworm'] is invalid: must map Debian codenames or major releases to providers",
    ),
    (
        {"mpi": {"release_providers": {"trixie": "spack"}}},
        "mpi:release_providers:trixie: 'spack' is invalid: must be one of debian, pypi",
    ),
    (
        {"mpi": {"release_providers": {12: None}}},
        "mpi:release_providers:12: None is invalid: must be one of debian, pypi",
    ),
    ({"mpi": {"debian": None}}, "mpi:debian: None is invalid: must be a mapping"),
    (
        {"mpi": {"debian": {"packages": None}}},
        "mpi:debian:packages: None is invalid: must be a list of non-empty strings",
    ),
    ({"mpi": {"pypi": "mpich"}}, "mpi:pypi: 'mpich' is invalid: must be a mapping"),
    ({"mpi": {"pypi": {"packages": [1]}}}, "mpi:pypi:packages: [1] is invalid: must be a list of non-empty strings"),
    (
        {"mpi": {"debian": {"mpiexec": "mpiexec"}}},
        "mpi:debian:mpiexec: 'mpiexec' is invalid: must be an absolute path without '..'",
    ),
    (
        {"mpi": {"debian": {"mpicc": "/usr/../bin/mpicc"}}},
        "mpi:debian:mpicc: '/usr/../bin/mpicc' is invalid: must be an absolute path without '..'",
    ),
    (
        {"mpi": {"pypi": {"python": "python3"}}},
        "mpi:pypi:python: 'python3' is invalid: must be an absolute path without '..'",
    ),
    (
        {"mpi": {"pypi": {"prefix": "opt/mpich"}}},
        "mpi:pypi:prefix: 'opt/mpich' is invalid: must be an absolute path without '..'",
    ),
    (
        {"mpi": {"pypi": {"prefix": "/opt/my mpich"}}},
        "mpi:pypi:prefix: '/opt/my mpich' is invalid: "
        "must be a directory of its own, named with letters, digits and ._+-/ only",
    ),
    (
        {"mpi": {"pypi": {"prefix": "/usr/local/"}}},
        "mpi:pypi:prefix: '/usr/local/' is invalid: "
        "must be a directory of its own, named with letters, digits and ._+-/ only",
    ),
    (
        {"mpi": {"pypi": {"prefix": "/"}}},
        "mpi:pypi:prefix: '/' is invalid: must be a directory of its own, named with letters, digits and ._+-/ only",
    ),
    (
        {"mpi": {"pypi": {"requirement": "-e ."}}},
        "mpi:pypi:requirement: '-e .' is invalid: "
        "must be one pip requirement: mpich==VERSION, a wheel URL or a local wheel path",
    ),
    (
        {"mpi": {"pypi": {"requirement": "mpich numpy"}}},
        "mpi:pypi:requirement: 'mpich numpy' is invalid: "
        "must be one pip requirement: mpich==VERSION, a wheel URL or a local wheel path",
    ),
    (
        {"mpi": {"pypi": {"requirement": None}}},
        "mpi:pypi:requirement: None is invalid: "
        "must be one pip requirement: mpich==VERSION, a wheel URL or a local wheel path",
    ),
    ({"mpi": {"packages": "mpich"}}, "mpi:packages: 'mpich' is invalid: must be a list of non-empty strings"),
    ({"mpi": {"mpiexec": "mpiexec"}}, "mpi:mpiexec: 'mpiexec' is invalid: must be an absolute path without '..'"),
    ({"mpi": {"mpicc": 5}}, "mpi:mpicc: 5 is invalid: must be an absolute path without '..'"),
    ({"nfs": {"export_path": "srv"}}, "nfs:export_path: 'srv' is invalid: must be an absolute path without '..'"),
    ({"nfs": {"exports_file": None}}, "nfs:exports_file: None is invalid: must be an absolute path without '..'"),
    ({"nfs": {"clients": "10.5.5.0/24"}}, "nfs:clients: '10.5.5.0/24' is invalid: must be a list of non-empty strings"),
    ({"nfs": {"clients": ["bad client"]}}, "nfs:clients: 'bad client' is invalid: is neither a cidr nor a host name"),
    (
        {"nfs": {"clients": ["10.0.0.0/8"]}},
        "nfs:clients: '10.0.0.0/8' is invalid: reaches outside the cluster network 10.5.5.0/24",
    ),
    (
        {"nfs": {"clients": ["fd00::/64"]}},
        "nfs:clients: 'fd00::/64' is invalid: reaches outside the cluster network 10.5.5.0/24",
    ),
    ({"nfs": {"options": "rw"}}, "nfs:options: 'rw' is invalid: must be a list of non-empty strings"),
    ({"nfs": {"options": ["rw", "exec"]}}, "nfs:options: 'exec' is invalid: is not an exports(5) option"),
    (
        {"nfs": {"options": ["rw", "no_root_squash"]}},
        "nfs:options: 'no_root_squash' is invalid: "
        "saltcluster exports the shared home with root_squash and secure only",
    ),
    (
        {"nfs": {"options": ["insecure"]}},
        "nfs:options: 'insecure' is invalid: saltcluster exports the shared home with root_squash and secure only",
    ),
    ({"nfs": {"options": ["anonuid=5\n"]}}, "nfs:options: 'anonuid=5\\n' is invalid: is not an exports(5) option"),
    ({"nfs": {"mount_options": [None]}}, "nfs:mount_options: [None] is invalid: must be a list of non-empty strings"),
    ({"nfs": {"server_wait_seconds": 3601}}, "nfs:server_wait_seconds: 3601 is invalid: must be between 0 and 3600"),
    ({"nfs": {"server_wait_seconds": "60"}}, "nfs:server_wait_seconds: '60' is invalid: must be an integer"),
    ({"ssh": {"key_type": "dsa"}}, "ssh:key_type: 'dsa' is invalid: must be ed25519, rsa or ecdsa"),
    (
        {"ssh": {"known_hosts_file": "known"}},
        "ssh:known_hosts_file: 'known' is invalid: must be an absolute path without '..'",
    ),
    ({"ssh": {"sshd_dropin": None}}, "ssh:sshd_dropin: None is invalid: must be an absolute path without '..'"),
    ({"mpi": {"hostfile": "hosts"}}, "mpi:hostfile: 'hosts' is invalid: must be an absolute path without '..'"),
    ({"mpi": {"bin_dir": "bin"}}, "mpi:bin_dir: 'bin' is invalid: must be an absolute path without '..'"),
    ({"mpi": {"src_dir": "/a/../src"}}, "mpi:src_dir: '/a/../src' is invalid: must be an absolute path without '..'"),
    ({"mpi": {"profile_file": "x.sh"}}, "mpi:profile_file: 'x.sh' is invalid: must be an absolute path without '..'"),
    ({"mpi": {"allowed_dirs": "/opt"}}, "mpi:allowed_dirs: '/opt' is invalid: must be a list of non-empty strings"),
    ({"mpi": {"allowed_dirs": ["opt"]}}, "mpi:allowed_dirs: 'opt' is invalid: must be an absolute path without '..'"),
    (
        {"mpi": {"allowed_dirs": ["/opt/../etc"]}},
        "mpi:allowed_dirs: '/opt/../etc' is invalid: must be an absolute path without '..'",
    ),
    ({"mpi": {"programs": "cpi"}}, "mpi:programs: 'cpi' is invalid: must be a list of non-empty strings"),
    ({"mpi": {"programs": ["../evil"]}}, "mpi:programs: '../evil' is invalid: is not a plain program name"),
    ({"mpi": {"programs": ["cpi\n"]}}, "mpi:programs: 'cpi\\n' is invalid: is not a plain program name"),
    ({"mpi": {"slots": 0}}, "mpi:slots: 0 is invalid: must be between 1 and 4096"),
    ({"mpi": {"slots": "2"}}, "mpi:slots: '2' is invalid: must be an integer"),
    ({"mpi": {"max_timeout": 0}}, "mpi:max_timeout: 0 is invalid: must be between 1 and 604800"),
    ({"mpi": {"timeout": 604801}}, "mpi:timeout: 604801 is invalid: must be between 1 and 604800"),
    (
        {"mpi": {"timeout": 600, "max_timeout": 300}},
        "mpi:timeout: 600 is invalid: must not exceed mpi:max_timeout (300)",
    ),
    ({"mpi": {"max_np": 0}}, "mpi:max_np: 0 is invalid: must be between 1 and 65536"),
    ({"mpi": {"max_np": "16"}}, "mpi:max_np: '16' is invalid: must be an integer"),
    ({"mpi": {"max_output": 10}}, "mpi:max_output: 10 is invalid: must be between 1024 and 1073741824"),
    ({"mpi": {"ucx_tls": "tcp\n"}}, "mpi:ucx_tls: 'tcp\\n' is invalid: must be a comma list of UCX transports"),
    ({"mpi": {"ucx_tls": None}}, "mpi:ucx_tls: None is invalid: must be a comma list of UCX transports"),
    (
        {"mpi": {"ucx_net_device": "eth0; rm"}},
        "mpi:ucx_net_device: 'eth0; rm' is invalid: is not a network device name",
    ),
    ({"mpi": {"ucx_net_device": 5}}, "mpi:ucx_net_device: 5 is invalid: is not a network device name"),
    (
        {"nginx": {"packages": "nginx-light"}},
        "nginx:packages: 'nginx-light' is invalid: must be a list of non-empty strings",
    ),
    (
        {"nginx": {"packages": ["nginx", ""]}},
        "nginx:packages: ['nginx', ''] is invalid: must be a list of non-empty strings",
    ),
    ({"nginx": {"service": "nginx; reboot"}}, "nginx:service: 'nginx; reboot' is invalid: is not a service name"),
    ({"nginx": {"service": None}}, "nginx:service: None is invalid: is not a service name"),
    (
        {"nginx": {"config_file": "nginx.conf"}},
        "nginx:config_file: 'nginx.conf' is invalid: must be an absolute path without '..'",
    ),
    (
        {"nginx": {"config_file": "/etc/nginx/../nginx.conf"}},
        "nginx:config_file: '/etc/nginx/../nginx.conf' is invalid: must be an absolute path without '..'",
    ),
    (
        {"nginx": {"site_dir": "/etc/nginx/saltcluster.d"}},
        "nginx:site_dir: '/etc/nginx/saltcluster.d' is invalid: must be a plain directory name, without '/' or '..'",
    ),
    (
        {"nginx": {"site_dir": ".."}},
        "nginx:site_dir: '..' is invalid: must be a plain directory name, without '/' or '..'",
    ),
    (
        {"nginx": {"site_dir": "sites/saltcluster"}},
        "nginx:site_dir: 'sites/saltcluster' is invalid: must be a plain directory name, without '/' or '..'",
    ),
    ({"nginx": {"worker_processes": 0}}, "nginx:worker_processes: 0 is invalid: must be auto or a positive integer"),
    (
        {"nginx": {"worker_processes": "many"}},
        "nginx:worker_processes: 'many' is invalid: must be auto or a positive integer",
    ),
    (
        {"nginx": {"worker_processes": True}},
        "nginx:worker_processes: True is invalid: must be auto or a positive integer",
    ),
    (
        {"nginx": {"check_command": "saltcluster-nginx-check"}},
        "nginx:check_command: 'saltcluster-nginx-check' is invalid: must be an absolute path without '..'",
    ),
    ({"web": {"port": "80x"}}, "web:port: '80x' is invalid: must be an integer"),
    ({"web": {"port": 65536}}, "web:port: 65536 is invalid: must be between 1 and 65535"),
    (
        {"web": {"index_file": "index.html"}},
        "web:index_file: 'index.html' is invalid: must be an absolute path without '..'",
    ),
    (
        {"web": {"site_file": "web"}},
        "web:site_file: 'web' is invalid: must be a plain file name ending in .conf",
    ),
    (
        {"web": {"site_file": "../web.conf"}},
        "web:site_file: '../web.conf' is invalid: must be a plain file name ending in .conf",
    ),
    (
        {"lb": {"site_file": "sites/lb.conf"}},
        "lb:site_file: 'sites/lb.conf' is invalid: must be a plain file name ending in .conf",
    ),
    ({"lb": {"site_file": None}}, "lb:site_file: None is invalid: must be a plain file name ending in .conf"),
    (
        {"lb": {"site_file": "site.conf"}, "web": {"site_file": "site.conf"}},
        "lb:site_file: 'site.conf' is invalid: is web:site_file too: each role has a site file of its own",
    ),
    ({"lb": {"listen_port": 0}}, "lb:listen_port: 0 is invalid: must be between 1 and 65535"),
    ({"lb": {"backend_port": True}}, "lb:backend_port: True is invalid: must be an integer"),
    ({"lb": {"max_fails": 1001}}, "lb:max_fails: 1001 is invalid: must be between 0 and 1000"),
    ({"lb": {"keepalive": -1}}, "lb:keepalive: -1 is invalid: must be between 0 and 10000"),
    (
        {"lb": {"method": "roundrobin"}},
        "lb:method: 'roundrobin' is invalid: nginx knows round_robin, least_conn, ip_hash, random",
    ),
    (
        {"lb": {"template": "http://example.com/x.jinja"}},
        "lb:template: 'http://example.com/x.jinja' is invalid: must be a salt:// or file:/// path without '..'",
    ),
    (
        {"lb": {"template": "salt://../etc/shadow"}},
        "lb:template: 'salt://../etc/shadow' is invalid: must be a salt:// or file:/// path without '..'",
    ),
    ({"lb": {"template": None}}, "lb:template: None is invalid: must be a salt:// or file:/// path without '..'"),
    ({"lb": {"read_timeout": "soon"}}, "lb:read_timeout: 'soon' is invalid: must be an nginx time like 5s"),
    ({"lb": {"fail_timeout": "ten"}}, "lb:fail_timeout: 'ten' is invalid: must be an nginx time like 10s"),
    ({"lb": {"zone_size": "64g"}}, "lb:zone_size: '64g' is invalid: must be an nginx size like 64k"),
    ({"lb": {"forwarded_for": "yes"}}, "lb:forwarded_for: 'yes' is invalid: must be true or false"),
    ({"lb": {"weights": ["node1"]}}, "lb:weights: ['node1'] is invalid: must map host names to weights"),
    ({"lb": {"weights": {"no de": 1}}}, "lb:weights: 'no de' is invalid: is not a valid host name"),
    ({"lb": {"weights": {"node1": 0}}}, "lb:weights:node1: 0 is invalid: must be an integer between 1 and 1000"),
    ({"lb": {"weights": {"node1": 1001}}}, "lb:weights:node1: 1001 is invalid: must be an integer between 1 and 1000"),
    ({"lb": {"weights": {"node1": "2"}}}, "lb:weights:node1: '2' is invalid: must be an integer between 1 and 1000"),
    ({"health": {"fail_after": 0}}, "health:fail_after: 0 is invalid: must be between 1 and 1000"),
    ({"health": {"pass_after": "2"}}, "health:pass_after: '2' is invalid: must be an integer"),
    ({"health": None}, "health: None is invalid: must be a mapping"),
    (
        {"user": {"uid": "x"}, "network": {"cidr": "x"}},
        "network:cidr: 'x' is invalid: "
        "is not a network in cidr form ('x' does not appear to be an IPv4 or IPv6 network)",
    ),
    (
        {"mpi": {"provider": "x"}, "user": {"shell": "x"}},
        "user:shell: 'x' is invalid: must be an absolute path without '..'",
    ),
    (
        {"nfs": {"export_path": "x"}, "mpi": {"pypi": {"prefix": "x"}}},
        "mpi:pypi:prefix: 'x' is invalid: must be an absolute path without '..'",
    ),
    ({"lb": {"method": "x"}, "web": {"port": 0}}, "web:port: 0 is invalid: must be between 1 and 65535"),
]


@pytest.mark.parametrize("override,message", EXACT, ids=[m.split(" ", 1)[0].rstrip(":") for _, m in EXACT])
def test_validate_message_for_each_rule(defaults, override, message):
    cfg = salt.utils.dictupdate.merge(copy.deepcopy(defaults), copy.deepcopy(override), strategy="recurse")
    with pytest.raises(CommandExecutionError) as exc:
        cluster.validate(cfg, grains={})
    assert str(exc.value) == "saltcluster:" + message


@pytest.mark.parametrize("missing", ["mpi:provider", "lb:keepalive", "network:cidr", "user:uid"])
def test_validate_missing_key_is_a_key_error(defaults, missing):
    """What settings(cached=True) takes for a cached defaults file older than
    these modules (and then fetches the file)."""
    cfg = copy.deepcopy(defaults)
    *path, leaf = missing.split(":")
    parent = cfg
    for part in path:
        parent = parent[part]
    del parent[leaf]
    with pytest.raises(KeyError):
        cluster.validate(cfg, grains={})


@pytest.mark.parametrize("section,message", [("lb", "lb: None"), ("mpi:pypi", "mpi:pypi: None")])
def test_validate_missing_mapping_is_named(defaults, section, message):
    cfg = copy.deepcopy(defaults)
    *path, leaf = section.split(":")
    parent = cfg
    for part in path:
        parent = parent[part]
    del parent[leaf]
    with pytest.raises(CommandExecutionError) as exc:
        cluster.validate(cfg, grains={})
    assert str(exc.value) == f"saltcluster:{message} is invalid: must be a mapping"


def test_settings_pillar_that_is_no_mapping():
    cluster.__salt__["pillar.get"] = lambda key, default=None, unmask=False: "x"
    with pytest.raises(CommandExecutionError) as exc:
        cluster.settings()
    assert str(exc.value) == "saltcluster:: 'x' is invalid: pillar saltcluster must be a mapping"


def test_validate_accepts_defaults_and_every_method(defaults):
    for method in cluster.LB_METHODS:
        cfg = copy.deepcopy(defaults)
        cfg["lb"]["method"] = method
        assert cluster.validate(cfg)["lb"]["method"] == method


BOTH_ROLES_SAME_PORT = (
    "saltcluster:lb:listen_port: 80 is invalid: this host is compute and gateway, and web:port is 80 too: "
    "give the page a port of its own (web:port, and lb:backend_port the same)"
)


@pytest.mark.parametrize("roles", [["compute", "gateway"], ["master", "gateway", "compute"]])
def test_validate_both_web_roles_on_one_port(defaults, roles):
    """One nginx serves the page and the balancer on a host with both
    roles: on one port they clash, so validation names the keys."""
    with pytest.raises(CommandExecutionError) as exc:
        cluster.validate(defaults, grains={"roles": roles})
    assert str(exc.value) == BOTH_ROLES_SAME_PORT


@pytest.mark.parametrize(
    "roles,override",
    [
        (["compute", "gateway"], {"web": {"port": 8080}, "lb": {"backend_port": 8080}}),
        (["compute", "gateway"], {"lb": {"listen_port": 8000}}),
        (["gateway"], {}),
        (["compute"], {}),
        ("gateway", {}),  # a grain given as one string
        ([], {}),
    ],
    ids=["both-own-ports", "both-lb-moved", "gateway", "compute", "gateway-string", "none"],
)
def test_validate_one_port_is_fine_for_one_role(defaults, roles, override):
    cfg = salt.utils.dictupdate.merge(copy.deepcopy(defaults), override, strategy="recurse")
    assert cluster.validate(cfg, grains={"roles": roles})


def test_settings_follow_the_roles_grain():
    """The settings cached for one render are validated anew when the roles
    grain changes: the same pillar is fine for a gateway, not for a host
    that becomes compute node too."""
    cluster.__grains__["roles"] = ["gateway"]
    assert cluster.settings()["web"]["port"] == 80
    cluster.__grains__["roles"] = ["gateway", "compute"]
    with pytest.raises(CommandExecutionError) as exc:
        cluster.settings()
    assert str(exc.value) == BOTH_ROLES_SAME_PORT


def test_defaults_read_once_per_context():
    calls = []
    cluster.__salt__["cp.get_file_str"] = lambda url, _orig=cluster.__salt__["cp.get_file_str"]: (
        calls.append(url) or _orig(url)
    )
    cluster.settings()
    cluster.settings()
    assert calls == [cluster.DEFAULTS_URL]


def test_settings_validated_once_per_render(monkeypatch):
    """map.jinja and every membership function ask for the settings: one
    render merges and validates them once."""
    validated = []
    real = cluster.validate
    monkeypatch.setattr(cluster, "validate", lambda cfg, grains=None: validated.append(1) or real(cfg, grains))
    mine = mine_for(["master", "node1", "node2"])
    with_mine(published(mine))
    first = cluster.settings()
    for render in (cluster.hosts_block, cluster.known_hosts, cluster.hostfile, cluster.upstream, cluster.members):
        render()
    assert len(validated) == 1
    first["user"]["name"] = "changed"  # the caller's own copy
    assert cluster.settings()["user"]["name"] == "jobhandler"
    assert len(validated) == 1


def test_settings_follow_a_changed_pillar_and_grains():
    assert cluster.settings()["lb"]["method"] == "round_robin"
    cluster.__salt__["pillar.get"] = lambda key, default=None, unmask=False: {"lb": {"method": "least_conn"}}
    assert cluster.settings()["lb"]["method"] == "least_conn"
    cluster.__grains__.update(DEBIAN_12)
    assert cluster.settings()["mpi"]["provider"] == "pypi"
    cluster.__grains__.update(DEBIAN_13)
    assert cluster.settings()["mpi"]["provider"] == "debian"
    assert cluster.settings(overrides={"lb": {"method": "random"}})["lb"]["method"] == "random"
    assert cluster.settings()["lb"]["method"] == "least_conn"


def test_settings_cache_tells_a_number_from_its_text():
    cluster.__salt__["pillar.get"] = lambda key, default=None, unmask=False: {"lb": {"weights": {"node1": 2}}}
    assert cluster.settings()["lb"]["weights"] == {"node1": 2}
    cluster.__salt__["pillar.get"] = lambda key, default=None, unmask=False: {"lb": {"weights": {"node1": "2"}}}
    with pytest.raises(CommandExecutionError, match="saltcluster:lb:weights:node1: '2'"):
        cluster.settings()


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
    with_mine(published(mine))
    assert [m["name"] for m in cluster.members()] == ["node1"]


def test_members_masterless_uses_this_host():
    cluster.__opts__["file_client"] = "local"
    with_mine({})
    members = cluster.members()
    assert [(m["name"], m["addr"]) for m in members] == [("master", "10.5.5.10")]


def test_members_refuses_an_empty_mine_on_a_minion():
    """A master that cannot answer must not empty hosts, hostfile or upstream."""
    with_mine({})
    with pytest.raises(CommandExecutionError, match="no membership data at all"):
        cluster.members()
    with pytest.raises(CommandExecutionError, match="keeping the running membership files"):
        cluster.hosts_block()


def test_hosts_block():
    with_mine(published(mine_for(["master", "node1"])))
    assert cluster.hosts_block() == "10.5.5.10 master\n10.5.5.9 node1"


def test_known_hosts_lists_real_keys_with_name_and_addr():
    with_mine(published(mine_for(["node1"])))
    lines = cluster.known_hosts().splitlines()
    assert lines == [
        f"node1,10.5.5.9 {host_key('ssh-ed25519', 'node1')}",
        f"node1,10.5.5.9 {host_key('ecdsa-sha2-nistp256', 'node1')}",
    ]


def test_hostfile_slots_from_num_cpus():
    assert cluster.hostfile() == "node1:2\nnode2:2\nnode10:4"


@pytest.mark.parametrize("pillar", [{"mpi": {"slots": 3}}])
def test_hostfile_slots_from_pillar(pillar):
    assert cluster.hostfile() == "node1:3\nnode2:3\nnode10:3"


def test_hostfile_format_written_and_read_by_one_pair():
    """cluster.hostfile writes the lines, mpi.hostfile reads them back with
    parse_hostfile: what one writes, the other reads."""
    assert cluster.parse_hostfile(cluster.hostfile()) == [
        {"host": "node1", "slots": 2}, {"host": "node2", "slots": 2}, {"host": "node10", "slots": 4},
    ]  # fmt: skip
    members = [{"name": "node1", "num_cpus": 2}, {"name": "node3", "num_cpus": 4096}]
    assert cluster.hostfile_lines(members) == ["node1:2", "node3:4096"]
    assert cluster.hostfile_lines(members, slots=3) == ["node1:3", "node3:3"]


@pytest.mark.parametrize(
    "text,entries",
    [
        ("# Managed by Salt\nnode1:2\n\nnode2:2\n", [("node1", 2), ("node2", 2)]),
        ("node1:2  # two\r\nnode2\rnode3:x\n", [("node1", 2), ("node2", 1), ("node3", 1)]),
        ("node1:1234567890\nnode2:-1\nnode3:\u0662", [("node1", 1), ("node2", 1), ("node3", 1)]),
        ("node1:2\x0cnode2:2", [("node1", 1)]),  # a line ends at \n, \r\n or \r only
        ("", []),
    ],
)
def test_parse_hostfile(text, entries):
    assert [(e["host"], e["slots"]) for e in cluster.parse_hostfile(text)] == entries


@pytest.mark.parametrize("pillar", [{"lb": {"weights": {"node2": 5}, "backend_port": 8080}}])
def test_upstream_weights_and_port(pillar):
    backends = cluster.upstream()
    assert [(b["name"], b["addr"], b["port"], b["weight"]) for b in backends] == [
        ("node1", "10.5.5.9", 8080, 1),
        ("node2", "10.5.5.18", 8080, 5),
        ("node10", "10.5.5.30", 8080, 1),
    ]


def test_upstream_empty_refuses():
    with_mine(published(mine_for(["master", "gateway"])))
    with pytest.raises(CommandExecutionError, match="compute backend list is empty"):
        cluster.upstream()


def test_host_info_is_what_the_core_functions_publish():
    """grains.item, network.ip_addrs and ssh.host_keys as pillar/mine.sls
    calls them, assembled as every other host assembles them: the public
    key without its comment, never the private one."""
    info = cluster.host_info()
    assert info == {
        "host": "master",
        "roles": ["master"],
        "addrs": ["10.5.5.10", "127.0.0.1"],
        "num_cpus": 2,
        "host_keys": [host_key("ssh-ed25519", "me")],
    }
    # what this host publishes, its own members() takes as it is
    with_mine({"master": cluster._own_entries()})
    (member,) = cluster.members()
    assert member["host_keys"] == info["host_keys"] and member["roles"] == ["master"]
    assert PRIVATE_KEY not in json.dumps(cluster._own_entries())


def test_host_info_of_a_host_without_the_roles_grain():
    del cluster.__grains__["roles"]
    assert cluster.host_info()["roles"] == []  # grains.item's default=[] (pillar/mine.sls)


def test_host_info_names_what_the_others_refuse(caplog):
    """A role outside the known set or an odd .pub file get the whole host
    refused by every other member: host_info shows it and says so."""
    HOST_KEY_FILES["dsa.pub"] = "ssh-dss AAAA root@master"
    info = cluster.host_info()
    assert info["host_keys"] == ["ssh-dss AAAA", host_key("ssh-ed25519", "me")]
    assert any("refuse what this host publishes" in m and "ssh-dss" in m for m in refusals(caplog))
    caplog.clear()
    del HOST_KEY_FILES["dsa.pub"]
    cluster.__grains__["roles"] = ["master", "monitoring"]
    assert cluster.host_info()["roles"] == ["master", "monitoring"]
    assert any("'monitoring'" in m for m in refusals(caplog))


def test_host_info_never_shows_a_private_key():
    """pillar that left ssh.host_keys at its default (private keys too):
    refused loudly, naming the file and not its content."""
    mine_functions = copy.deepcopy(MINE_FUNCTIONS)
    mine_functions["saltcluster_host_keys"] = [{"mine_function": "ssh.host_keys"}, {"keydir": "/etc/ssh"}]
    cluster.__salt__["config.merge"] = lambda key, default=None: mine_functions
    with pytest.raises(CommandExecutionError, match="'ed25519', which is no public host key file") as exc:
        cluster.host_info()
    assert "secret" not in str(exc.value)


def test_host_info_needs_the_mine_functions():
    cluster.__salt__["config.merge"] = lambda key, default=None: {}
    with pytest.raises(CommandExecutionError, match="mine_functions has no saltcluster_grains"):
        cluster.host_info()


def test_core_host_keys_of_a_real_key_directory(tmp_path):
    """Salt's own ssh.host_keys, as pillar/mine.sls calls it, on a directory
    with a key pair and a certificate: only the .pub reaches the mine, and
    members() takes it."""
    import salt.modules.ssh

    pub = host_key("ssh-ed25519", "node1") + " root@node1"
    (tmp_path / "ssh_host_ed25519_key").write_text(PRIVATE_KEY + "\n")
    (tmp_path / "ssh_host_ed25519_key.pub").write_text(pub + "\n")
    (tmp_path / "ssh_host_ed25519_key-cert.pub").write_text("ssh-ed25519-cert-v01@openssh.com AAAA cert\n")
    (tmp_path / "sshd_config").write_text("# not a key\n")
    found = salt.modules.ssh.host_keys(keydir=str(tmp_path), private=False, certs=False)
    assert found == {"ed25519.pub": pub}
    entries = published(mine_for(["node1"]))["node1"]
    entries["saltcluster_host_keys"] = found
    with_mine({"node1": entries})
    (member,) = cluster.members()
    assert member["host_keys"] == [host_key("ssh-ed25519", "node1")]


@pytest.mark.parametrize(
    "entries, bad",
    [
        (None, "publishes no saltcluster_addrs, saltcluster_host_keys"),
        ({"saltcluster_grains": ["node1"]}, "saltcluster_grains ['node1'] is not a mapping"),
        ({"saltcluster_host_keys": ["ssh-ed25519 AAAA"]}, "is not a mapping of .pub files"),
        ({"saltcluster_host_keys": {"ed25519": PRIVATE_KEY}}, "'ed25519', which is no public host key file"),
        ({"saltcluster_host_keys": {"ed25519-cert.pub": "x"}}, "'ed25519-cert.pub', which is no public"),
        ({"saltcluster_host_keys": {"../ed25519.pub": "x"}}, "'../ed25519.pub', which is no public"),
    ],
    ids=["entries-missing", "grains-a-list", "keys-a-list", "private-key", "certificate", "odd-name"],
)
def test_entries_that_are_not_a_core_functions_return_are_refused(caplog, entries, bad):
    """What the core functions of pillar/mine.sls never return drops the
    host alone; a private key's content is never logged."""
    mine = published(MINE)
    if entries is None:  # the grains alone
        mine["node2"] = {"saltcluster_grains": mine["node2"]["saltcluster_grains"]}
    else:
        mine["node2"].update(entries)
    with_mine(mine)
    assert "node2" not in [m["id"] for m in cluster.members()]
    assert "node1" in [m["id"] for m in cluster.members()]
    assert any("node2" in msg and bad in msg for msg in refusals(caplog)), refusals(caplog)
    assert all("secret" not in msg for msg in refusals(caplog))


def test_key_comment_is_not_published():
    """A .pub file's comment (`root@node2`, or anything) never reaches
    known_hosts: only `<type> <base64>`."""
    mine = published(MINE)
    mine["node2"]["saltcluster_host_keys"] = {"ed25519.pub": NODE2_KEY + " node2 and\n10.5.5.10 " + NODE2_KEY}
    with_mine(mine)
    assert cluster.known_hosts().count("\n10.5.5.10") == 0
    assert f"node2,10.5.5.18 {NODE2_KEY}" in cluster.known_hosts().splitlines()


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
    # every host's saltcluster entries, every field, and nothing else
    assert json.loads(cluster.mine_snapshot()) == published(MINE)


# -- membership: what a compromised member can publish, and what comes of it
#
# Root on one member can publish any mine entry under its own minion id, and
# with the join token register new ids.  Each forged entry must drop that
# entry alone (logged with the id and the bad value) and leave every other
# member's lines in hosts, known_hosts, the hostfile and the upstream as they
# are.

HOSTS_SLS = REPO / "salt/cluster/hosts/init.sls"


def renders(mine):
    """What every membership file gets from ``mine`` (mpi:slots unset: the
    hostfile's slots are the members' num_cpus)."""
    with_mine(published(mine))
    return {
        "hosts": cluster.hosts_block(),
        "known_hosts": cluster.known_hosts(),
        "hostfile": cluster.hostfile(),
        "upstream": cluster.upstream(),
    }


def without(*ids):
    return {k: copy.deepcopy(v) for k, v in MINE.items() if k not in ids}


def with_entry(minion_id, entry):
    mine = copy.deepcopy(MINE)
    mine[minion_id] = entry
    return mine


def forged_node2(**changes):
    entry = copy.deepcopy(MINE["node2"])
    entry.update(changes)
    return entry


def refusals(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def write_hosts_block(hosts_file, block):
    """The hosts file as the cluster.hosts state leaves it, with ``block``
    between its own markers (read from the SLS)."""
    sls = HOSTS_SLS.read_text()
    start = re.search(r"marker_start: '([^']*)'", sls).group(1)
    end = re.search(r"marker_end: '([^']*)'", sls).group(1)
    hosts_file.write_text(f"127.0.0.1 localhost\n10.5.5.10 master\n{start}\n{block}\n{end}\n")


def render_on(host):
    """Render as ``host`` does: its minion id, its interfaces' addresses."""
    cluster.__opts__["id"] = host
    cluster.__grains__.update(id=host, host=host)
    addrs = list(MINE[host]["addrs"]) if host in MINE else []
    cluster.__salt__["network.ip_addrs"] = lambda include_loopback=False: addrs


NODE2_KEY = host_key("ssh-ed25519", "node2")
FORGED_NODE2 = {
    # name: published fields, and a part of the logged bad value (None: not
    # a member at all, no refusal to log)
    "host-names-another-member": ({"host": "master", "addrs": ["10.5.5.18"]}, "'master'"),
    "host-trailing-newline": ({"host": "node2\n"}, r"'node2\n'"),
    "host-missing-value": ({"host": None}, "None"),
    "host-key-newline-adds-a-line": ({"host_keys": [NODE2_KEY + "\n10.5.5.10 " + NODE2_KEY]}, r"\n10.5.5.10"),
    "host-key-trailing-newline": ({"host_keys": [NODE2_KEY + "\n"]}, r"\n'"),
    "host-key-marker": ({"host_keys": ["@cert-authority * " + NODE2_KEY]}, "@cert-authority"),
    # a third field is the .pub file's comment (dropped): tab-separated fields are not
    "host-key-tab-separated": ({"host_keys": [NODE2_KEY.replace(" ", "\t")]}, r"\t"),
    "host-key-unknown-type": (
        {"host_keys": [host_key("ssh-dss", "", blob=ssh_string(b"ssh-dss") + b"x" * 40)]}, "ssh-dss",
    ),
    "host-key-bad-base64": ({"host_keys": ["ssh-ed25519 AAAA!!!!"]}, "AAAA!!!!"),
    "host-key-unpadded-base64": ({"host_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAInode2"]}, "AAAAInode2"),
    "host-key-type-mismatch": (
        {"host_keys": [host_key("ssh-ed25519", "", blob=key_blob("ssh-rsa", "node2"))]}, "ssh-ed25519 AAAAB3",
    ),
    "host-key-empty-blob": ({"host_keys": ["ssh-ed25519 AAAA"]}, "ssh-ed25519 AAAA'"),
    "host-keys-a-string": ({"host_keys": NODE2_KEY}, NODE2_KEY[:20]),
    "host-keys-not-strings": ({"host_keys": [{"key": NODE2_KEY}]}, "{'key'"),
    "num-cpus-word": ({"num_cpus": "lots"}, "'lots'"),
    "num-cpus-numeric-string": ({"num_cpus": "2"}, "'2'"),
    "num-cpus-million": ({"num_cpus": 10**6}, "1000000"),
    "num-cpus-bool": ({"num_cpus": True}, "True"),
    "num-cpus-zero": ({"num_cpus": 0}, "0"),
    "num-cpus-negative": ({"num_cpus": -4}, "-4"),
    "num-cpus-float": ({"num_cpus": 2.0}, "2.0"),
    "roles-substring-string": ({"roles": "computer"}, "'computer'"),
    "roles-a-string": ({"roles": "compute"}, "'compute'"),
    "roles-superstring": ({"roles": ["xcompute"]}, "'xcompute'"),
    "roles-unknown-beside-known": ({"roles": ["compute", "admin"]}, "'admin'"),
    "roles-not-strings": ({"roles": [["compute"]]}, "[['compute']]"),
    "addr-trailing-newline": ({"addrs": ["10.5.5.18\n", "10.5.5.18"]}, r"'10.5.5.18\n'"),
    "addr-not-an-address": ({"addrs": ["10.5.5.18", "node2.example"]}, "'node2.example'"),
    "addrs-a-string": ({"addrs": "10.5.5.18"}, "'10.5.5.18'"),
    "addr-outside-cidr": ({"addrs": ["192.168.9.18"]}, None),
    "addr-broadcast": ({"addrs": ["10.5.5.255"]}, None),
    "addr-network": ({"addrs": ["10.5.5.0"]}, None),
    "addr-of-this-host": ({"addrs": ["10.5.5.10"]}, "10.5.5.10"),
    "addr-of-this-host-first": ({"addrs": ["10.5.5.10", "10.5.5.18"]}, "10.5.5.10"),
}


@pytest.mark.parametrize("changes,bad", FORGED_NODE2.values(), ids=FORGED_NODE2)
def test_forged_entry_dropped_alone(caplog, changes, bad):
    """node2 publishes a forged entry: node2 is no member (on this host, the
    master), and every file is what it would be without node2."""
    expected = renders(without("node2"))
    assert "10.5.5.10 master" in expected["hosts"] and "node10:4" in expected["hostfile"]
    caplog.clear()
    forged = with_entry("node2", forged_node2(**changes))
    with_mine(published(forged))
    assert "node2" not in [m["id"] for m in cluster.members()]
    assert renders(forged) == expected
    if bad is not None:
        assert any("node2" in msg and bad in msg for msg in refusals(caplog)), refusals(caplog)


@pytest.mark.parametrize("entry", ["not a dict", None, ["10.5.5.18"]], ids=["str", "none", "list"])
def test_entry_that_is_no_mapping_dropped_alone(caplog, entry):
    assert renders(with_entry("node2", entry)) == renders(without("node2"))
    assert any("node2" in msg and repr(entry) in msg for msg in refusals(caplog))


FORGED_NEWCOMERS = {
    # a new minion id (registered with the join token) and its entry
    "id-trailing-newline": ("node3\n", r"'node3\n'"),
    "id-case-variant-of-this-host": ("MASTER", "'MASTER'"),
    "id-case-variant-of-a-member": ("Node1", "'Node1'"),
    "id-localhost": ("localhost", "'localhost'"),
    "id-ip6-localhost": ("ip6-localhost", "'ip6-localhost'"),
    "id-reads-as-an-address": ("10.5.5.10", "'10.5.5.10'"),
    "id-reads-as-a-hex-address": ("0xa05050a", "'0xa05050a'"),
    "id-all-numeric-last-label": ("node.5", "'node.5'"),
}


@pytest.mark.parametrize("minion_id,bad", FORGED_NEWCOMERS.values(), ids=FORGED_NEWCOMERS)
def test_forged_newcomer_dropped_alone(caplog, seniority, minion_id, bad):
    """A new id with a free address of its own, whose name is no plain
    distinct host name: refused, every existing member unchanged (node1's
    key was accepted before Node1's)."""
    seniority[minion_id] = JOINED
    expected = renders(MINE)
    caplog.clear()
    entry = dict(copy.deepcopy(MINE["node10"]), host=minion_id, addrs=["10.5.5.40"])
    forged = with_entry(minion_id, entry)
    with_mine(published(forged))
    assert minion_id not in [m["id"] for m in cluster.members()]
    assert renders(forged) == expected
    assert any(bad in msg for msg in refusals(caplog)), refusals(caplog)


def test_honest_newcomer_joins():
    """The checks leave a plain join alone: a new id, a free address, real keys of every type."""
    keys = [
        host_key(kind, "node3")
        for kind in ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521")
    ]
    sk_type = "sk-ssh-ed25519@openssh.com"
    keys.append(host_key(sk_type, "", blob=ssh_string(sk_type.encode()) + b"k" * 40))
    entry = {
        "host": "node3", "roles": ["compute", "compute"], "addrs": ["10.5.5.40"], "num_cpus": 4096, "host_keys": keys,
    }  # fmt: skip
    mine = with_entry("node3", entry)
    with_mine(published(mine))
    (node3,) = [m for m in cluster.members() if m["id"] == "node3"]
    assert node3 == {
        "id": "node3", "name": "node3", "addr": "10.5.5.40", "roles": ["compute"], "num_cpus": 4096, "host_keys": keys,
        "health": None,
    }  # fmt: skip
    assert cluster.hostfile() == "node1:2\nnode2:2\nnode3:4096\nnode10:4"


def test_address_of_an_older_member_stays_with_it(caplog, seniority):
    """node2, then a new id, claim node1's address: the master accepted
    node1's key before either of theirs, so node1 keeps 10.5.5.9 and both
    claims go."""
    seniority["node3"] = JOINED
    expected = renders(without("node2"))
    forged = with_entry("node2", forged_node2(addrs=["10.5.5.9"]))
    assert renders(forged) == expected
    assert any("node2" in m and "10.5.5.9" in m and "node1 keeps it" in m for m in refusals(caplog))
    assert any("its minion key was accepted first" in m for m in refusals(caplog))
    forged["node3"] = dict(copy.deepcopy(MINE["node10"]), host="node3", addrs=["10.5.5.9"])
    assert renders(forged) == expected


def test_a_claimant_the_pillar_does_not_list_is_the_newer(caplog, seniority):
    """The pillar lists every key the master had accepted when it compiled
    it: a claimant missing from it (accepted since) is newer than any
    listed one, so node1 keeps its address against it."""
    mine = with_entry("node3", dict(copy.deepcopy(MINE["node10"]), host="node3", addrs=["10.5.5.9"]))
    assert "node3" not in seniority
    assert renders(mine) == renders(MINE)
    assert any("node3" in m and "10.5.5.9" in m and "node1 keeps it" in m for m in refusals(caplog))


NO_SENIORITY = {
    # this host's pillar has none (salt-call --local, another key cache driver)
    "none-published": {},
    # both keys accepted at the same time
    "equal": dict(SENIORITY, node2=SENIORITY["node1"]),
    # neither claimant listed, the others are
    "neither-listed": {k: v for k, v in SENIORITY.items() if k not in ("node1", "node2")},
    # the pillar's time for one of them is no number
    "unreadable": dict(SENIORITY, node1="early"),
}


@pytest.mark.parametrize("seniority", NO_SENIORITY.values(), ids=NO_SENIORITY)
def test_address_contest_without_seniority_drops_every_claimant(caplog, seniority):
    """Seniority does not tell node1 and node2 apart, and neither is this
    host nor network:master_host: nothing tells the honest one apart, so
    neither is used (logged), and the rest renders."""
    forged = with_entry("node2", forged_node2(addrs=["10.5.5.9"]))
    assert renders(forged) == renders(without("node1", "node2"))
    assert any("10.5.5.9" in m and "nobody keeps it" in m for m in refusals(caplog))


@pytest.mark.parametrize(
    "seniority",
    [{}, {name: ACCEPTED for name in [*MINE, "Master"]}],
    ids=["none-published", "all-at-once"],
)
def test_master_host_keeps_its_address_and_name_without_seniority(seniority):
    """Rendered on the gateway, with no seniority to tell the claimants
    apart: the member pillar names network:master_host wins a contest for
    its address or name."""
    render_on("gateway")
    expected = renders(without("node2"))
    assert renders(with_entry("node2", forged_node2(addrs=["10.5.5.10"]))) == expected
    impostor = dict(copy.deepcopy(MINE["node10"]), host="Master", addrs=["10.5.5.40"])
    assert renders(with_entry("Master", impostor)) == renders(MINE)


@pytest.mark.parametrize("host,addr,keeper", [("gateway", "10.5.5.10", "master"), ("node1", "10.5.5.9", "node1")])
def test_newcomer_claiming_the_masters_or_this_hosts_address_is_refused(caplog, seniority, host, addr, keeper):
    """A new id claims the master's address (rendered on the gateway: the
    master's key is older) or this host's own (rendered on node1: its own
    entry): refused, every member as it was."""
    render_on(host)
    seniority["node3"] = JOINED
    expected = renders(MINE)
    caplog.clear()
    mine = with_entry("node3", dict(copy.deepcopy(MINE["node10"]), host="node3", addrs=[addr]))
    assert renders(mine) == expected
    assert any("node3" in m and addr in m and f"{keeper} keeps it" in m for m in refusals(caplog)), refusals(caplog)


def test_this_hosts_address_is_never_given_to_another(caplog):
    """This host (master) knows its own addresses: a claim on one is refused
    even while master's own entry is missing from the mine."""
    mine = without("master")
    mine["node3"] = dict(copy.deepcopy(MINE["node10"]), host="node3", addrs=["10.5.5.10"])
    assert renders(mine) == renders(without("master"))
    assert any("node3" in m and "10.5.5.10" in m for m in refusals(caplog))


ATTACKS = {
    # (attacker id, its entry): a new id registered with the join token, a
    # member accepted after node2, and a new id claiming node2's name
    "newcomer-takes-the-address": ("node3", dict(copy.deepcopy(MINE["node10"]), host="node3", addrs=["10.5.5.18"])),
    "later-member-takes-the-address": ("node10", dict(copy.deepcopy(MINE["node10"]), addrs=["10.5.5.18"])),
    "newcomer-takes-the-name": ("NODE2", dict(copy.deepcopy(MINE["node10"]), host="NODE2", addrs=["10.5.5.40"])),
}


@pytest.mark.parametrize("host", ["master", "gateway", "node1", "node2"])
@pytest.mark.parametrize("attacker,entry", ATTACKS.values(), ids=ATTACKS)
def test_a_later_member_cannot_evict_an_older_one(caplog, seniority, hosts_file, host, attacker, entry):
    """An attacker whose key the master accepted after node2's claims
    node2's address (or name): node2 stays a member on every host, one that
    has no /etc/hosts block at all too, and the attacker is refused with a
    message naming the value."""
    render_on(host)
    seniority[attacker] = seniority.get(attacker, JOINED)
    assert seniority[attacker] > seniority["node2"] and not hosts_file.exists()
    caplog.clear()
    mine = with_entry(attacker, entry)
    with_mine(published(mine))
    ids = [m["id"] for m in cluster.members()]
    assert "node2" in ids and attacker not in ids
    assert "10.5.5.18 node2" in cluster.hosts_block().splitlines()
    value = "node2" if attacker == "NODE2" else "10.5.5.18"
    assert any(
        repr(attacker) in m and value in m and "node2 keeps it" in m for m in refusals(caplog)
    ), refusals(caplog)


def test_the_hosts_file_decides_nothing(caplog, seniority, hosts_file):
    """The members block in this host's hosts file is output, not a
    record: a block (or a static line) giving node1's address to node2
    changes no verdict either way."""
    write_hosts_block(hosts_file, "10.5.5.9 node2\n10.5.5.18 node2")
    forged = with_entry("node2", forged_node2(addrs=["10.5.5.9"]))
    assert renders(forged) == renders(without("node2"))
    assert any("node2" in m and "node1 keeps it" in m for m in refusals(caplog))
    seniority.clear()
    hosts_file.write_text("10.5.5.9 node2\n")
    assert renders(forged) == renders(without("node1", "node2"))


@pytest.mark.parametrize(
    "seniority,logged",
    [
        ("not a mapping", "'not a mapping', not a mapping"),
        (["node1", "node2"], "not a mapping"),
        ({**SENIORITY, "node1": True}, "'node1' the time True"),
        ({**SENIORITY, "node1": float("nan")}, "'node1' the time nan"),
        ({**SENIORITY, "node1": -1}, "'node1' the time -1"),
        ({**SENIORITY, "node1": {"mtime": 1}}, "'node1' the time {'mtime': 1}"),
    ],
    ids=["string", "list", "bool", "nan", "negative", "mapping"],
)
def test_a_malformed_seniority_pillar_picks_no_one(caplog, seniority, logged):
    """A seniority value that is no mapping is ignored, an id's time that is
    no number of epoch seconds is unknown (both logged): that contest falls
    to the next rule, here nobody."""
    forged = with_entry("node2", forged_node2(addrs=["10.5.5.9"]))
    assert renders(forged) == renders(without("node1", "node2"))
    assert any(cluster.KEY_SENIORITY_PILLAR in m and logged in m for m in refusals(caplog)), refusals(caplog)


def test_seniority_is_read_once_and_only_for_a_contest(seniority):
    reads = []
    pillar_get = cluster.__salt__["pillar.get"]

    def counting(key, default=None, unmask=False):
        reads.append(key)
        return pillar_get(key, default, unmask)

    cluster.__salt__["pillar.get"] = counting
    with_mine(published(MINE))
    cluster.members()
    assert cluster.KEY_SENIORITY_PILLAR not in reads
    forged = with_entry("node2", forged_node2(addrs=["10.5.5.9"]))
    forged["Node1"] = dict(copy.deepcopy(MINE["node10"]), host="Node1", addrs=["10.5.5.9"])
    seniority["Node1"] = JOINED
    with_mine(published(forged))
    cluster.members()
    assert reads.count(cluster.KEY_SENIORITY_PILLAR) == 1


@pytest.mark.parametrize("pillar", [{"network": {"cidr": "127.0.0.0/8"}}])
def test_loopback_cluster_shares_one_address(pillar):
    """Every member on one machine (the integration tests): loopback is every
    member's own address, not a contest."""
    mine = {
        name: dict(copy.deepcopy(MINE[name]), addrs=["127.0.0.1"]) for name in ("gateway", "master", "node1", "node2")
    }
    with_mine(published(mine))
    block = cluster.hosts_block()
    assert block == "127.0.0.1 gateway\n127.0.0.1 master\n127.0.0.1 node1\n127.0.0.1 node2"


# -- health-gated membership: each compute node's own claim (saltcluster_health)
#
# The hostfile and the upstream list the compute members that claim serving
# (cluster_health.publish); /etc/hosts, ssh_known_hosts and the NFS export
# list every member, so a drained node can come back.  Draining never
# empties the hostfile or the upstream.


def claiming(mine=None, **states):
    """``mine`` (the seed's by default) as published, with each named host's
    own health claim: a state name, or any value as it is."""
    mine = published(MINE if mine is None else mine)
    for name, state in states.items():
        if isinstance(state, str):
            state = {"state": state, "since": 1795000000, "passes": 0, "fails": 3, "failed": {}}
        mine[name]["saltcluster_health"] = state
    return mine


def test_a_drained_node_leaves_the_hostfile_and_the_upstream_only():
    with_mine(claiming(node1="serving", node2="drained", node10="serving"))
    assert cluster.hostfile() == "node1:2\nnode10:4"
    assert [b["name"] for b in cluster.upstream()] == ["node1", "node10"]
    # still a member: /etc/hosts, known_hosts and the NFS export keep it
    assert "10.5.5.18 node2" in cluster.hosts_block().splitlines()
    assert f"node2,10.5.5.18 {NODE2_KEY}" in cluster.known_hosts().splitlines()
    assert [m["name"] for m in cluster.members("compute")] == ["node1", "node2", "node10"]
    assert [m["health"] for m in cluster.members("compute")] == ["serving", "drained", "serving"]
    assert cluster.serving() == {
        "serving": ["node1", "node10"], "not_serving": {"node2": "drained"}, "kept": False, "why": "",
    }  # fmt: skip


def test_it_comes_back_when_it_claims_serving_again():
    with_mine(claiming(node1="serving", node2="serving", node10="serving"))
    assert cluster.hostfile() == "node1:2\nnode2:2\nnode10:4"


def test_the_last_serving_node_stays_alone():
    with_mine(claiming(node1="drained", node2="drained", node10="serving"))
    assert cluster.hostfile() == "node10:4"
    assert [b["name"] for b in cluster.upstream()] == ["node10"]


def test_draining_never_empties_the_hostfile_or_the_upstream(caplog):
    """Every compute node drained: all stay listed (an empty upstream serves
    nothing, a drained node may still answer), and the render says why."""
    with_mine(claiming(node1="drained", node2="drained", node10="joining"))
    assert cluster.hostfile() == "node1:2\nnode2:2\nnode10:4"
    assert [b["name"] for b in cluster.upstream()] == ["node1", "node2", "node10"]
    assert any("no compute member serves" in m and "node2 drained" in m and "keeping all" in m
               for m in refusals(caplog))  # fmt: skip
    report = cluster.serving()
    assert report["kept"] is True and report["serving"] == []
    assert report["why"] == (
        "no compute member serves (node1 drained, node2 drained, node10 joining): keeping all of them rather than none"
    )


def test_a_joining_node_waits_for_its_admission_while_others_serve():
    """A new node's membership is in the mine from its first start; it
    enters the hostfile and the upstream only once it claims serving (its
    highstate's last state, or orch.join's gate)."""
    joined = dict(MINE, node3=dict(copy.deepcopy(MINE["node10"]), host="node3", addrs=["10.5.5.40"]))
    mine = with_mine(claiming(joined, node1="serving", node2="serving", node10="serving", node3="joining"))
    assert "node3" not in cluster.hostfile()
    assert "10.5.5.40 node3" in cluster.hosts_block().splitlines()
    del mine["node3"]["saltcluster_health"]  # before its first claim, likewise
    assert "node3" not in cluster.hostfile()
    with_mine(claiming(joined, node1="serving", node2="serving", node10="serving", node3="serving"))
    assert "node3:4" in cluster.hostfile().splitlines()


def test_before_any_claim_every_compute_member_serves():
    """A fresh cluster's first highstate, or one from before health: no
    claims at all."""
    with_mine(published(MINE))
    assert cluster.hostfile() == "node1:2\nnode2:2\nnode10:4"
    assert cluster.serving()["kept"] is False


@pytest.mark.parametrize(
    "claim", ["drained", {"state": "boss"}, {"state": ["serving"]}, ["serving"], {"host": "node1", "state": 1}]
)
def test_a_claim_that_names_no_state_counts_as_none(caplog, claim):
    with_mine(claiming(node1="serving", node10="serving", node2=claim))
    assert "node2" not in cluster.hostfile()
    if not isinstance(claim, str):
        assert any("node2" in m and "taken for no claim" in m for m in refusals(caplog))


def test_a_claim_speaks_for_its_sender_only():
    """The mine keeps each claim under the id whose key signed it: whatever
    node2's claim says of node1, only node2 is judged by it."""
    claim = {"state": "drained", "host": "node1", "id": "node1", "node1": "drained"}
    with_mine(claiming(node1="serving", node2=claim, node10="serving"))
    assert cluster.hostfile() == "node1:2\nnode10:4"


def test_health_claims_are_read_in_the_same_mine_call():
    asked, claims = [], claiming(node1="serving", node2="drained", node10="serving")
    cluster.__salt__["mine.get"] = lambda tgt, fun: asked.append(fun) or mine_get(claims, fun)
    assert "node2" not in cluster.hostfile()
    assert asked == [["saltcluster_grains", "saltcluster_addrs", "saltcluster_host_keys", "saltcluster_health"]]


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


def test_cached_defaults_without_a_newer_section_are_fetched_again(tmp_path, defaults_text):
    """A cached copy from before the nginx section: fetched again, not
    refused as "nginx: None is invalid"."""
    old = salt.utils.yaml.safe_load(defaults_text)
    del old["saltcluster"]["nginx"]
    cached = tmp_path / "defaults.yaml"
    cached.write_text(salt.utils.yaml.safe_dump(old))
    cluster.__salt__["cp.is_cached"] = lambda url: str(cached)
    fetches = _count_fetches()
    assert cluster.settings(cached=True)["nginx"]["site_dir"] == "saltcluster.d"
    assert fetches == [cluster.DEFAULTS_URL]


@pytest.mark.parametrize("pillar", [{"mpi": {"release_providers": None}}])
def test_no_release_table_means_debian_everywhere(pillar):
    cluster.__grains__.update(DEBIAN_12)
    assert cluster.settings()["mpi"]["provider"] == "debian"
