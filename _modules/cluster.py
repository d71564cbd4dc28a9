"""
saltcluster topology: settings, validation and membership.

One pillar key (``saltcluster``) merged over the formula's
``parameters/defaults.yaml`` is the only configuration; membership (which
hosts exist, their roles, addresses, cpu count and ssh host keys) comes from
the Salt mine entries every minion publishes with core Salt functions
(``pillar/mine.sls``: ``saltcluster_grains``, ``saltcluster_addrs``,
``saltcluster_host_keys``), so a minion is published from its first start,
before any module of this tree reaches it.  Every SLS and the ``mpi`` module
read both through this module, so no host list is written twice.
"""

import base64
import binascii
import copy
import hashlib
import ipaddress
import json
import logging
import os
import pwd
import re
import socket

import salt.utils.dictupdate
import salt.utils.files
import salt.utils.functools
import salt.utils.mine
import salt.utils.yaml
from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

__virtualname__ = "cluster"

DEFAULTS_URL = "salt://cluster/parameters/defaults.yaml"
# The mine entries a member publishes (pillar/mine.sls), each the return of
# one core Salt function, so every minion has them from its first start:
GRAINS_ENTRY = "saltcluster_grains"  # grains.item id roles num_cpus (default=[])
ADDRS_ENTRY = "saltcluster_addrs"  # network.ip_addrs include_loopback=True
HOST_KEYS_ENTRY = "saltcluster_host_keys"  # ssh.host_keys keydir=/etc/ssh private=False certs=False
MEMBER_ENTRIES = (GRAINS_ENTRY, ADDRS_ENTRY, HOST_KEYS_ENTRY)
# A host's claim about its own health (cluster_health.publish, mine.send):
# {"state": joining|serving|drained, "since", ...}.  Only the host can write
# it (the mine stores data under the id whose key signed it): a host can
# drain only itself.  A compute member serves (is in the hostfile and the
# upstream) when its claim says serving, or when none serves.
HEALTH_ENTRY = "saltcluster_health"
HEALTH_STATES = ("joining", "serving", "drained")
# everything membership reads from the mine, in one mine.get
MINE_ENTRIES = (*MEMBER_ENTRIES, HEALTH_ENTRY)
ROLES = ("master", "compute", "gateway")
LB_METHODS = ("round_robin", "least_conn", "ip_hash", "random")
# Where MPICH comes from: Debian's packages, or PyPI's `mpich` wheel in a venv
# at mpi:pypi:prefix (Debian 12's MPICH 4.0.2 hangs in MPI_Finalize).  A
# release that mpi:release_providers does not name gets FALLBACK_PROVIDER.
MPI_PROVIDERS = ("debian", "pypi")
FALLBACK_PROVIDER = "debian"
NFS_OPTIONS = {
    "rw", "ro", "sync", "async", "subtree_check", "no_subtree_check",
    "root_squash", "no_root_squash", "all_squash", "no_all_squash",
    "secure", "insecure", "wdelay", "no_wdelay", "hide", "nohide",
    "crossmnt", "sec=sys", "sec=krb5", "sec=krb5i", "sec=krb5p",
}  # fmt: skip
# \Z, not $: `$` also matches before a trailing newline ("node1\n")
HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}\Z)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\Z"
)
USERNAME_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}\Z")
DEVICE_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,15}\Z")
TEMPLATE_RE = re.compile(r"^(salt://[^\s]+|file:///[^\s]+)\Z")
DURATION_RE = re.compile(r"^\d+(ms|s|m|h)?\Z")
SIZE_RE = re.compile(r"^\d+[kKmM]?\Z")
# a path that goes into shell profiles and rpaths as it is
PLAIN_PATH_RE = re.compile(r"^/[A-Za-z0-9_.+/-]*\Z")
PROGRAM_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")
# one name in a directory, never '.', '..' nor a path (fullmatch)
PLAIN_NAME_RE = PROGRAM_RE
SITE_FILE_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*\.conf")
SERVICE_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@:-]*")
UCX_TLS_RE = re.compile(r"[a-z0-9_]+(,[a-z0-9_]+)*")


def __virtual__():
    return __virtualname__


class _Invalid(CommandExecutionError):
    """A pillar value that saltcluster refuses; the message names key and value."""


def _bad(key, value, why):
    raise _Invalid(f"saltcluster:{key}: {value!r} is invalid: {why}")


_ABSENT = object()


def _get(cfg, key, default=_ABSENT):
    """The value at ``key`` (``section:name``, or deeper).  A missing key is
    a KeyError unless ``default`` is given (for the last part only)."""
    *path, leaf = key.split(":")
    value = cfg
    for part in path:
        value = value[part]
    if default is not _ABSENT:
        return value.get(leaf, default)
    return value[leaf]


# -- validation: small named checks, and a table of which setting gets which
#
# A check is called as ``check(key, value, cfg)`` and, for a bad value,
# raises through _bad with the key and the value; ``cfg`` is for the few
# checks that compare with another setting.  The tables list the settings in
# the order they are checked: the first bad one is the one reported.


def _mapping(key, value, cfg):
    if not isinstance(value, dict):
        _bad(key, value, "must be a mapping")


def _integer(lo, hi):
    def check(key, value, cfg):
        if isinstance(value, bool) or not isinstance(value, int):
            _bad(key, value, "must be an integer")
        if not lo <= value <= hi:
            _bad(key, value, f"must be between {lo} and {hi}")

    return check


def _optional(inner):
    """``inner``, for a setting whose null means "derive it" or "none"."""

    def check(key, value, cfg):
        if value is not None:
            inner(key, value, cfg)

    return check


def _each(*checks):
    """``checks`` on every item of a list, each named by the list's key."""

    def check(key, value, cfg):
        for item in value:
            for inner in checks:
                inner(key, item, cfg)

    return check


def _one_of(choices, why):
    def check(key, value, cfg):
        if value not in choices:
            _bad(key, value, why)

    return check


def _matches(pattern, why):
    """A string the whole of which ``pattern`` matches."""

    def check(key, value, cfg):
        if not isinstance(value, str) or not pattern.fullmatch(value):
            _bad(key, value, why)

    return check


def _abs_path(key, value, cfg):
    if not isinstance(value, str) or not os.path.isabs(value) or ".." in value.split("/"):
        _bad(key, value, "must be an absolute path without '..'")


def _str_list(key, value, cfg):
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        _bad(key, value, "must be a list of non-empty strings")


def _boolean(key, value, cfg):
    if not isinstance(value, bool):
        _bad(key, value, "must be true or false")


_hostname = _matches(HOSTNAME_RE, "is not a valid host name")


def _cidr(key, value, cfg):
    try:
        ipaddress.ip_network(str(value), strict=False)
    except ValueError as exc:
        _bad(key, value, f"is not a network in cidr form ({exc})")


def _not_root(key, value, cfg):
    if value == "root":
        _bad(key, value, "MPI jobs never run as root")


def _not_above(other):
    """At most the setting ``other`` (checked before this one)."""

    def check(key, value, cfg):
        limit = _get(cfg, other)
        if value > limit:
            _bad(key, value, f"must not exceed {other} ({limit})")

    return check


def _matches_text(pattern, why):
    """Like :py:func:`_matches`, on the value's text: YAML reads ``10`` as a
    number, nginx reads it as ten seconds."""

    def check(key, value, cfg):
        if not pattern.fullmatch(str(value)):
            _bad(key, value, why)

    return check


def _not_equal_to(other, why):
    """Unlike the setting ``other`` (checked before this one)."""

    def check(key, value, cfg):
        if value == _get(cfg, other):
            _bad(key, value, f"is {other} too: {why}")

    return check


def _nginx_time(example):
    return _matches_text(DURATION_RE, f"must be an nginx time like {example}")


def _worker_count(key, value, cfg):
    if value != "auto" and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        _bad(key, value, "must be auto or a positive integer")


def _template_url(key, value, cfg):
    if not isinstance(value, str) or not TEMPLATE_RE.fullmatch(value) or ".." in value.split("/"):
        _bad(key, value, "must be a salt:// or file:/// path without '..'")


def _lb_weights(key, value, cfg):
    if not isinstance(value, dict):
        _bad(key, value, "must map host names to weights")
    for host, weight in value.items():
        _hostname(key, host, cfg)
        if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= 1000:
            _bad(f"{key}:{host}", weight, "must be an integer between 1 and 1000")


def _is_network(value):
    try:
        ipaddress.ip_network(value, strict=False)
        return True
    except ValueError:
        return False


def _nfs_client(key, value, cfg):
    """A host name, or a network inside ``network:cidr``."""
    if not (HOSTNAME_RE.fullmatch(value) or _is_network(value)):
        _bad(key, value, "is neither a cidr nor a host name")
    if _is_network(value):
        net = ipaddress.ip_network(value, strict=False)
        cluster_net = ipaddress.ip_network(str(cfg["network"]["cidr"]), strict=False)
        if net.version != cluster_net.version or not net.subnet_of(cluster_net):
            _bad(key, value, f"reaches outside the cluster network {cluster_net}")


def _exports_option(key, value, cfg):
    if value not in NFS_OPTIONS and not re.fullmatch(r"(anonuid|anongid|fsid)=\d+", value):
        _bad(key, value, "is not an exports(5) option")
    if value in ("no_root_squash", "insecure"):
        # no_root_squash: root on a client would own every file of the
        # shared home outright.  root_squash is no protection of the MPI
        # user's files, though: with sec=sys the server believes the uid a
        # client sends, so root on any host that may mount the export can
        # become uid 100 (su, setuid) and read jobhandler's private key.
        # Only the hosts the export lists are trusted that far, which is
        # why it lists the compute members' addresses and not the cidr.
        _bad(key, value, "saltcluster exports the shared home with root_squash and secure only")


def _provider_table(key, value, cfg):
    """``mpi:release_providers``: release → provider; null is no release
    named (debian everywhere) and becomes ``{}``."""
    if value is None:
        value = cfg["mpi"]["release_providers"] = {}
    if not isinstance(value, dict):
        _bad(key, value, "must map Debian codenames or major releases to providers")
    for release, provider in value.items():
        if provider not in MPI_PROVIDERS:
            _bad(f"{key}:{release}", provider, f"must be one of {', '.join(MPI_PROVIDERS)}")


def _own_prefix(key, value, cfg):
    """A directory the pypi provider has to itself, named so that it goes
    into shell profiles and rpaths as it is."""
    if not PLAIN_PATH_RE.fullmatch(value) or value.rstrip("/") in ("", "/usr", "/usr/local"):
        _bad(key, value, "must be a directory of its own, named with letters, digits and ._+-/ only")


def _pip_requirement(key, value, cfg):
    if not isinstance(value, str) or not value or value.startswith("-") or re.search(r"\s", value):
        _bad(key, value, "must be one pip requirement: mpich==VERSION, a wheel URL or a local wheel path")


# the batch scheduler (scheduler, slurm:): none keeps mpi.run on the hostfile
SCHEDULERS = ("none", "slurm")
LEAVE_POLICIES = ("requeue", "finish")
# Slurm lowercases ClusterName; names go into slurm.conf and job scripts as they are
SLURM_CLUSTER_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
SLURM_PARTITION_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,39}")


def _partition_name(key, value, cfg):
    if value.upper() in ("DEFAULT", "ALL"):
        _bad(key, value, "is a word slurm.conf reserves")


def _jobs_dir(key, value, cfg):
    """``slurm:jobs_dir``: null is ``<user:home>/jobs`` (filled in here); the
    path goes into batch scripts (#SBATCH --output) as it is."""
    if value is None:
        value = cfg["slurm"]["jobs_dir"] = f"{cfg['user']['home']}/jobs"
    _abs_path(key, value, cfg)
    if not PLAIN_PATH_RE.fullmatch(value):
        _bad(key, value, "must be named with letters, digits and ._+-/ only")


SECTIONS = ("network", "user", "nfs", "ssh", "mpi", "nginx", "web", "lb", "health", "slurm")
_PORT = _integer(1, 65535)
_SECONDS_A_WEEK = _integer(1, 7 * 86400)

# checked before _derive, which builds paths and picks the provider's values
# from these
RULES_BEFORE_DERIVE = (
    *((section, _mapping) for section in SECTIONS),
    ("network:cidr", _cidr),
    ("network:master_host", _hostname),
    ("network:hosts_file", _abs_path),
    ("network:join_marker", _abs_path),
    ("user:name", _matches(USERNAME_RE, "is not a valid user name"), _not_root),
    ("user:group", _matches(USERNAME_RE, "is not a valid group name")),
    ("user:uid", _integer(1, 65534)),
    ("user:gid", _integer(1, 65534)),
    ("user:home", _abs_path),
    ("user:shell", _abs_path),
    ("user:relocate_uid_holder", _boolean),
    ("user:relocate_restart_services", _str_list),
    (
        "mpi:provider",
        _optional(_one_of(MPI_PROVIDERS, f"must be one of {', '.join(MPI_PROVIDERS)}, or null (by Debian release)")),
    ),
    ("mpi:release_providers", _provider_table),
    ("mpi:debian", _mapping),
    ("mpi:debian:packages", _str_list),
    ("mpi:pypi", _mapping),
    ("mpi:pypi:packages", _str_list),
    ("mpi:debian:mpiexec", _abs_path),
    ("mpi:debian:mpicc", _abs_path),
    ("mpi:pypi:python", _abs_path),
    ("mpi:pypi:prefix", _abs_path, _own_prefix),
    ("mpi:pypi:requirement", _pip_requirement),
    # null: the provider's
    ("mpi:packages", _optional(_str_list)),
    ("mpi:mpiexec", _optional(_abs_path)),
    ("mpi:mpicc", _optional(_abs_path)),
)

# checked on the derived configuration
RULES = (
    ("nfs:export_path", _abs_path),
    ("nfs:exports_file", _abs_path),
    ("nfs:clients", _str_list, _each(_nfs_client)),
    ("nfs:options", _str_list, _each(_exports_option)),
    ("nfs:mount_options", _str_list),
    ("nfs:server_wait_seconds", _integer(0, 3600)),
    ("ssh:key_type", _one_of(("ed25519", "rsa", "ecdsa"), "must be ed25519, rsa or ecdsa")),
    ("ssh:known_hosts_file", _abs_path),
    ("ssh:sshd_dropin", _abs_path),
    *((f"mpi:{name}", _abs_path) for name in ("hostfile", "bin_dir", "src_dir", "mpiexec", "mpicc", "profile_file")),
    ("mpi:packages", _str_list),
    ("mpi:allowed_dirs", _str_list, _each(_abs_path)),
    ("mpi:programs", _str_list, _each(_matches(PROGRAM_RE, "is not a plain program name"))),
    ("mpi:slots", _optional(_integer(1, 4096))),
    # mpi.run's limits against its callers: longest timeout, most ranks,
    # bytes of output kept
    ("mpi:max_timeout", _SECONDS_A_WEEK),
    ("mpi:timeout", _SECONDS_A_WEEK, _not_above("mpi:max_timeout")),
    ("mpi:max_np", _optional(_integer(1, 65536))),
    ("mpi:max_output", _integer(1024, 2**30)),
    ("mpi:ucx_tls", _matches(UCX_TLS_RE, "must be a comma list of UCX transports")),
    ("mpi:ucx_net_device", _optional(_matches(DEVICE_RE, "is not a network device name"))),
    ("nginx:packages", _str_list),
    ("nginx:service", _matches(SERVICE_RE, "is not a service name")),
    ("nginx:config_file", _abs_path),
    ("nginx:site_dir", _matches(PLAIN_NAME_RE, "must be a plain directory name, without '/' or '..'")),
    ("nginx:worker_processes", _worker_count),
    ("nginx:check_command", _abs_path),
    ("web:port", _PORT),
    ("web:index_file", _abs_path),
    ("web:site_file", _matches(SITE_FILE_RE, "must be a plain file name ending in .conf")),
    (
        "lb:site_file",
        _matches(SITE_FILE_RE, "must be a plain file name ending in .conf"),
        # each role's states write, and its clean twin removes, its own file
        _not_equal_to("web:site_file", "each role has a site file of its own"),
    ),
    ("lb:listen_port", _PORT),
    ("lb:backend_port", _PORT),
    ("lb:max_fails", _integer(0, 1000)),
    ("lb:keepalive", _integer(0, 10000)),
    ("lb:method", _one_of(LB_METHODS, f"nginx knows {', '.join(LB_METHODS)}")),
    ("lb:template", _template_url),
    ("lb:read_timeout", _nginx_time("5s")),
    ("lb:fail_timeout", _nginx_time("10s")),
    ("lb:zone_size", _matches_text(SIZE_RE, "must be an nginx size like 64k")),
    ("lb:forwarded_for", _boolean),
    ("lb:weights", _lb_weights),
    # consecutive health checks (cluster_health.publish) before a compute
    # node is drained, and before it serves again
    ("health:fail_after", _integer(1, 1000)),
    ("health:pass_after", _integer(1, 1000)),
    ("scheduler", _one_of(SCHEDULERS, f"must be one of {', '.join(SCHEDULERS)}")),
    (
        "slurm:cluster_name",
        _matches(SLURM_CLUSTER_RE, "must be a Slurm cluster name: lowercase letters, digits, _ and -, at most 40"),
    ),
    (
        "slurm:partition",
        _matches(SLURM_PARTITION_RE, "must be a Slurm partition name: letters, digits, _ and -, at most 40"),
        _partition_name,
    ),
    ("slurm:leave_policy", _one_of(LEAVE_POLICIES, f"must be one of {', '.join(LEAVE_POLICIES)}")),
    ("slurm:leave_timeout", _integer(0, 7 * 86400)),
    ("slurm:max_time", _integer(1, 365 * 24 * 60)),
    ("slurm:max_nodes", _integer(1, 65536)),
    ("slurm:jobs_dir", _jobs_dir),
    ("slurm:max_output", _integer(1024, 2**30)),
    ("slurm:register_timeout", _integer(1, 3600)),
    (
        "slurm:config_dir",
        _abs_path,
        _matches(PLAIN_PATH_RE, "must be named with letters, digits and ._+-/ only"),
    ),
    (
        "slurm:epilog",
        _matches(PLAIN_NAME_RE, "must be a plain file name: configless slurmd gets it only from beside slurm.conf"),
    ),
    ("slurm:munge_key", _abs_path),
    ("slurm:slurmd_dropin", _abs_path),
    ("slurm:master_packages", _str_list),
    ("slurm:compute_packages", _str_list),
)


def _own_port_for_the_page(key, value, cfg):
    """On a host with the compute and the gateway role one nginx serves
    both sites, each the default server of its port: on one port they
    clash, and the balancer would send a request for this host's page back
    to itself."""
    port = cfg["web"]["port"]
    if value == port:
        _bad(
            key,
            value,
            f"this host is compute and gateway, and web:port is {port} too: "
            "give the page a port of its own (web:port, and lb:backend_port the same)",
        )


def _host_rules(grains):
    """The rules that depend on the host's roles (grain ``roles``), checked
    after RULES."""
    roles = grains.get("roles") or []
    roles = [roles] if isinstance(roles, str) else roles
    if isinstance(roles, (list, tuple)) and "compute" in roles and "gateway" in roles:
        return (("lb:listen_port", _own_port_for_the_page),)
    return ()


def _check(cfg, rules):
    for key, *checks in rules:
        # an absent section is named as not a mapping; any other absent key
        # stays a KeyError, which settings(cached=True) takes for a cached
        # defaults file older than this module
        value = _get(cfg, key, None) if checks[0] is _mapping else _get(cfg, key)
        for check in checks:
            check(key, value, cfg)


def release_provider(mpi, grains):

    """The MPI provider ``mpi:release_providers`` names for a host's Debian
    release: looked up by codename (grain ``oscodename``), then by major
    release (``osmajorrelease``); a release it does not name (trixie, newer
    ones, or no such grains) gets ``debian``."""
    table = {str(k): v for k, v in (mpi.get("release_providers") or {}).items()}
    for grain in ("oscodename", "osmajorrelease"):
        value = grains.get(grain)
        if value not in (None, "") and str(value) in table:
            return table[str(value)]
    return FALLBACK_PROVIDER


def _derive(cfg, grains):
    """Fill the paths that default to places under the user's home, and the
    MPI provider's values (provider, packages, mpiexec, mpicc, the directories
    its programs need on PATH and LD_LIBRARY_PATH) that pillar left null."""
    home = cfg["user"]["home"]
    if cfg["nfs"]["export_path"] is None:
        cfg["nfs"]["export_path"] = home
    for name, leaf in (("hostfile", "hosts"), ("bin_dir", "bin"), ("src_dir", "src")):
        if cfg["mpi"][name] is None:
            cfg["mpi"][name] = f"{home}/{leaf}"
    # nfs:clients stays empty unless pillar names clients: the export then
    # lists the compute members' addresses (salt/cluster/nfs/server/config.sls)
    mpi = cfg["mpi"]
    if mpi["provider"] is None:
        mpi["provider"] = release_provider(mpi, grains)
    if mpi["provider"] == "pypi":
        prefix = mpi["pypi"]["prefix"]
        found = {
            "packages": mpi["pypi"]["packages"],
            "mpiexec": f"{prefix}/bin/mpiexec",
            "mpicc": f"{prefix}/bin/mpicc",
        }
        # Hydra, mpicc and the ranks come from the prefix; Debian-built
        # programs find libmpich.so.12 (a link to libmpi.so.12) there
        mpi["path_dirs"], mpi["library_dirs"] = [f"{prefix}/bin"], [f"{prefix}/lib"]
    else:
        found = {key: mpi["debian"][key] for key in ("packages", "mpiexec", "mpicc")}
        mpi["path_dirs"], mpi["library_dirs"] = [], []
    # an explicit pillar value wins over the provider's
    for key, value in found.items():
        if mpi[key] is None:
            mpi[key] = value
    return cfg


def validate(cfg, grains=None):
    """
    Check a merged saltcluster configuration and return it with derived paths
    filled in.  Raises ``CommandExecutionError`` naming the key and the value
    of the first bad setting, so rendering stops before any state runs.

    grains
        the host whose MPI provider is derived (``osmajorrelease``,
        ``oscodename``) and whose roles (``roles``) some checks follow: a
        host that is compute node and gateway needs ``web:port`` apart from
        ``lb:listen_port``; default: this minion's grains

    CLI Example:

    .. code-block:: bash

        salt-call cluster.validate '{"user": {"uid": "x"}}'
    """
    if grains is None:
        try:
            grains = __grains__
        except NameError:  # imported outside Salt's loader
            grains = {}
    cfg = copy.deepcopy(cfg)
    _check(cfg, RULES_BEFORE_DERIVE)
    _derive(cfg, grains)
    _check(cfg, RULES)
    _check(cfg, _host_rules(grains))
    return cfg


def _cached_defaults():
    """The ``saltcluster`` mapping of the defaults file as this minion's file
    cache holds it (written by the last fetch, i.e. the last state run), or
    None when there is no usable copy."""
    path = __salt__["cp.is_cached"](DEFAULTS_URL)
    if not path:
        return None
    try:
        with salt.utils.files.fopen(path) as fh:
            found = salt.utils.yaml.safe_load(fh).get("saltcluster")
        if isinstance(found, dict):
            missing = [section for section in SECTIONS if section not in found]
            if not missing:
                return found
            # older than these modules (synced, no state run since); a
            # missing key inside a section shows up as a KeyError in settings
            log.warning("cluster: cached %s has no %s: fetching it", DEFAULTS_URL, ", ".join(missing))
            return None
    except (OSError, AttributeError, salt.utils.yaml.YAMLError) as exc:
        log.warning("cluster: cached %s unusable (%s): fetching it", DEFAULTS_URL, exc)
    return None


def defaults(cached=False):
    """
    The formula's defaults (``saltcluster`` key of parameters/defaults.yaml),
    fetched from the fileserver so the file stays the single source.

    cached
        read the copy in this minion's file cache (the one its last state
        run fetched) and go to the master only when there is none.  For
        jobs such as ``mpi.run``, which should run with the settings the
        host was configured with and not pay a fileserver round trip per
        job.  States always fetch.

    CLI Example:

    .. code-block:: bash

        salt '*' cluster.defaults
        salt '*' cluster.defaults cached=True
    """
    return copy.deepcopy(_loaded_defaults(cached))


def _loaded_defaults(cached):
    """The defaults as this run loaded them (read once per ``__context__``;
    callers copy before they change anything)."""
    if "saltcluster.defaults" not in __context__:
        found = _cached_defaults() if cached else None
        if found is None:
            text = __salt__["cp.get_file_str"](DEFAULTS_URL)
            if not text:
                raise CommandExecutionError(f"cannot read {DEFAULTS_URL}: is the saltcluster tree served?")
            found = salt.utils.yaml.safe_load(text)["saltcluster"]
        __context__["saltcluster.defaults"] = found
    return __context__["saltcluster.defaults"]


def settings(overrides=None, cached=False):
    """
    The effective, validated configuration: defaults merged with pillar
    ``saltcluster`` (and ``overrides``, for trying a value out).

    CLI Example:

    .. code-block:: bash

        salt '*' cluster.settings
        salt-call cluster.settings overrides='{"lb": {"method": "least_conn"}}'

    ``cached=True`` starts from the cached defaults (see :py:func:`defaults`).

    One render calls this from every SLS (map.jinja) and from each
    membership function, so the validated result is kept in ``__context__``
    under a digest of everything it is made of (defaults, pillar, overrides,
    the grains the provider and the role checks follow): the same inputs
    are merged and validated once, and a changed pillar or grain is
    validated anew.
    """
    base = _loaded_defaults(cached)
    pillar = __salt__["pillar.get"]("saltcluster", {}, unmask=True) or {}
    if not isinstance(pillar, dict):
        _bad("", pillar, "pillar saltcluster must be a mapping")
    grains = {name: __grains__.get(name) for name in ("oscodename", "osmajorrelease", "roles")}
    # repr, not JSON: it tells 12 from '12', and a value it cannot show
    # alike twice (an object's address) only costs a recomputation
    digest = hashlib.sha256(repr((base, pillar, overrides, grains, cached)).encode()).hexdigest()
    known = __context__.get("saltcluster.settings")
    if known and known[0] == digest:
        return copy.deepcopy(known[1])
    cfg = salt.utils.dictupdate.merge(copy.deepcopy(base), pillar, strategy="recurse")
    if overrides:
        cfg = salt.utils.dictupdate.merge(cfg, overrides, strategy="recurse")
    try:
        cfg = validate(cfg, grains)
    except KeyError as exc:
        if not cached:
            raise
        # a cached copy older than these modules (synced, no state run since)
        log.warning("cluster: cached %s lacks %s: fetching it", DEFAULTS_URL, exc)
        __context__.pop("saltcluster.defaults", None)
        return settings(overrides=overrides, cached=False)
    __context__["saltcluster.settings"] = (digest, cfg)
    return copy.deepcopy(cfg)


# -- membership: the mine entries every host publishes, and what members() takes of them
#
# A member's mine entries are written by that member alone: root on one node
# can publish anything under its own minion id (`salt-call mine.send ...`),
# and only the minion's key, which the master accepted, vouches for that id.
# So a member's name is its minion id, every published field is checked, and
# a host whose entries fail a check is dropped alone (logged with the id and
# the bad value): one bad entry never stops another host's render.
#
# The entries are the raw returns of core functions (pillar/mine.sls), so a
# minion publishes them from its first start, before this module is synced
# to it.  _assemble() turns them into the one record the checks read
# (host, roles, num_cpus, addrs, host_keys), as host_info() shows it.

MAX_CPUS = 4096  # as mpi:slots
MAX_ADDRS = 1024
MAX_HOST_KEYS = 16
HOST_KEY_TYPES = (
    "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
)  # fmt: skip
# `<type> <base64>`, used with fullmatch (an RSA key of 16384 bits is ~2.8k characters)
HOST_KEY_RE = re.compile(r"(?P<type>[A-Za-z0-9@.-]{1,64}) (?P<blob>[A-Za-z0-9+/]{4,8192}={0,2})")
# names a Debian /etc/hosts gives the machine itself: never a member's
RESERVED_NAMES = {
    "localhost", "localhost.localdomain", "broadcasthost", "ip6-localhost", "ip6-loopback",
    "ip6-localnet", "ip6-mcastprefix", "ip6-allnodes", "ip6-allrouters", "ip6-allhosts",
}  # fmt: skip


# ssh.host_keys names a key by its file: ssh_host_<type>_key.pub is <type>.pub
# (a certificate's is <type>-cert.pub, a private key's plain <type>)
PUBLIC_KEY_FILE_RE = re.compile(r"[A-Za-z0-9_.@-]{1,64}(?<!-cert)\.pub")


class _Refused(Exception):
    """A mine entry members() does not use; the message names the bad value."""


def _show(value, limit=200):
    """``value``'s repr (control characters visible), cut for the log."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _host_key_error(key):
    """Why ``key`` is not a public host key ``<type> <base64>`` of a known
    type whose blob starts with that type, or None if it is one."""
    if not isinstance(key, str):
        return f"host key {_show(key)} is not a string"
    found = HOST_KEY_RE.fullmatch(key)
    if not found:
        return f"host key {_show(key)} is not '<type> <base64>'"
    kind = found["type"]
    if kind not in HOST_KEY_TYPES:
        return f"host key {_show(key)} is of type {kind!r}, not one of {', '.join(HOST_KEY_TYPES)}"
    try:
        blob = base64.b64decode(found["blob"], validate=True)
    except (binascii.Error, ValueError) as exc:
        return f"host key {_show(key)} is not base64 ({exc})"
    size = int.from_bytes(blob[:4], "big")
    if len(blob) <= 4 + size or blob[4 : 4 + size] != kind.encode():
        return f"host key {_show(key)} does not hold a {kind} key"
    return None


def _reads_as_address(name):
    """True for a name a resolver or ssh could take for an IPv4 address:
    one inet_aton(3) parses (10.5.5.10, 0xa05050a, 167052554), or one whose
    last label is all digits (RFC 3696 2)."""
    try:
        socket.inet_aton(name)
        return True
    except OSError:
        return name.rsplit(".", 1)[-1].isdigit()


def _ip(value):
    """``value`` as an address if it is one in its canonical text form."""
    if not isinstance(value, str):
        return None
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        return None
    return addr if str(addr) == value else None


def _assemble(minion_id, entries):
    """
    What ``minion_id``'s mine ``entries`` (``{entry: data}``, as the
    master's mine cache holds them) say of it, as one record for the checks
    of :py:func:`_validated`: ``host`` (its ``id`` grain), ``roles``,
    ``num_cpus``, ``addrs``, and ``host_keys`` (``<type> <base64>`` of each
    ``.pub`` file ssh.host_keys read, in file name order, the comment left
    out).  Raises _Refused when an entry is missing or is not what its core
    function returns.  A value that is not a name of a public key file is
    never shown: it may be a private key (ssh.host_keys without
    private=False).
    """
    if not isinstance(entries, dict):
        raise _Refused(f"entry {_show(entries)} is not a mapping")
    missing = [name for name in MEMBER_ENTRIES if name not in entries]
    if missing:
        raise _Refused(f"it publishes no {', '.join(missing)} (see pillar/mine.sls), so it is no member")
    grains = entries[GRAINS_ENTRY]
    if not isinstance(grains, dict):
        raise _Refused(f"{GRAINS_ENTRY} {_show(grains)} is not a mapping")
    info = {"roles": grains.get("roles"), "num_cpus": grains.get("num_cpus"), "addrs": entries[ADDRS_ENTRY]}
    if "id" in grains:
        info["host"] = grains["id"]
    files = entries[HOST_KEYS_ENTRY]
    if not isinstance(files, dict):
        raise _Refused(f"{HOST_KEYS_ENTRY} {_show(files)} is not a mapping of .pub files to keys")
    keys = []
    for name in sorted(files, key=str):
        if not isinstance(name, str) or not PUBLIC_KEY_FILE_RE.fullmatch(name):
            raise _Refused(
                f"{HOST_KEYS_ENTRY} holds {_show(name, 80)}, which is no public host key file "
                "(ssh.host_keys must run with private=False certs=False)"
            )
        text = files[name]
        # `<type> <base64> <comment>` as the .pub file holds it; the comment
        # goes, anything else is the checks' to judge
        keys.append(" ".join(text.split(" ", 2)[:2]) if isinstance(text, str) else text)
    info["host_keys"] = keys
    return info


def _own_entries():
    """This host's membership entries, made now by the calls mine.update
    makes: the ``mine_functions`` of this host's configuration (pillar
    ``pillar/mine.sls``)."""
    configured = __salt__["config.merge"]("mine_functions", {}) or {}
    entries = {}
    for name in MEMBER_ENTRIES:
        if name not in configured:
            raise CommandExecutionError(
                f"saltcluster: mine_functions has no {name}: this host's pillar lacks pillar/mine.sls"
            )
        fun, args, kwargs, _ = salt.utils.mine.parse_function_definition(copy.deepcopy(configured[name]))
        fun = fun or name
        if fun not in __salt__:
            raise CommandExecutionError(f"saltcluster: {name} needs {fun}, which this host does not have")
        entries[name] = salt.utils.functools.call_function(__salt__[fun], *args, **kwargs)
    return entries


def host_info():
    """
    What this host publishes to the mine for membership, as the other hosts
    read it: its cluster name (the minion id: name minions as the hosts are
    to be called, e.g. ``node1``), roles, addresses, cpu count and ssh host
    public keys.  Made by the same core functions the mine runs
    (``mine_functions`` in ``pillar/mine.sls``: ``grains.item``,
    ``network.ip_addrs``, ``ssh.host_keys``), now.  What the other hosts
    would refuse (a role outside master, compute and gateway, a .pub file
    that holds no host key of a known type, ...) is logged as a warning
    naming the value: such a host is no member anywhere.

    CLI Example:

    .. code-block:: bash

        salt '*' cluster.host_info
    """
    minion_id = __opts__["id"]
    try:
        info = _assemble(minion_id, _own_entries())
    except _Refused as exc:
        raise CommandExecutionError(f"saltcluster: this host publishes no usable membership: {exc}") from exc
    try:
        _validated(minion_id, info)
    except _Refused as exc:
        log.warning("saltcluster: the other members refuse what this host publishes: %s", exc)
    return info


def _pick_addr(addrs, net):
    """The first of ``addrs`` inside ``net`` that a host can hold (not the
    network's own address nor its broadcast), or None."""
    unusable = {net.network_address, net.broadcast_address} if net.num_addresses > 2 else set()
    for addr in addrs or []:
        ip = _ip(addr)
        if ip is not None and ip.version == net.version and ip in net and ip not in unusable:
            return addr
    return None


def _check_id(minion_id):
    """Raises _Refused if ``minion_id`` is no plain distinct host name."""
    if not isinstance(minion_id, str) or not HOSTNAME_RE.fullmatch(minion_id):
        raise _Refused(f"minion id {_show(minion_id)} is not a host name")
    if minion_id.lower() in RESERVED_NAMES or _reads_as_address(minion_id):
        raise _Refused(f"minion id {minion_id!r} names the machine itself or reads as an address")


def _validated(minion_id, info):
    """``info`` (as :py:func:`_assemble` makes it) checked field by field:
    ``(roles, num_cpus, host_keys, addrs)``.  Raises _Refused naming the
    first bad value."""
    if not isinstance(info, dict):
        raise _Refused(f"entry {_show(info)} is not a mapping")
    host = info.get("host", minion_id)
    if host != minion_id:
        raise _Refused(f"host {_show(host)} is not its minion id")
    roles = info.get("roles")
    if not isinstance(roles, list) or not all(isinstance(r, str) and r in ROLES for r in roles):
        raise _Refused(f"roles {_show(roles)} are not a list of {', '.join(ROLES)}")
    cpus = info.get("num_cpus")
    if isinstance(cpus, bool) or not isinstance(cpus, int) or not 1 <= cpus <= MAX_CPUS:
        raise _Refused(f"num_cpus {_show(cpus)} is not an integer from 1 to {MAX_CPUS}")
    keys = info.get("host_keys")
    if not isinstance(keys, list) or len(keys) > MAX_HOST_KEYS:
        raise _Refused(f"host_keys {_show(keys)} are not a list of at most {MAX_HOST_KEYS} keys")
    for key in keys:
        problem = _host_key_error(key)
        if problem:
            raise _Refused(problem)
    addrs = info.get("addrs")
    if not isinstance(addrs, list) or len(addrs) > MAX_ADDRS:
        raise _Refused(f"addrs {_show(addrs)} are not a list of at most {MAX_ADDRS} addresses")
    for addr in addrs:
        if _ip(addr) is None:
            raise _Refused(f"address {_show(addr)} is not an IP address")
    return roles, cpus, keys, addrs


def _claimed_health(minion_id, entries):
    """The state ``minion_id`` claims for its own health in its
    saltcluster_health entry (joining, serving, drained), or None when it
    claims none.  A claim that names none of those counts as none
    (logged): that host does not serve."""
    claim = entries.get(HEALTH_ENTRY)
    if claim is None:
        return None
    state = claim.get("state") if isinstance(claim, dict) else None
    if not isinstance(state, str) or state not in HEALTH_STATES:
        log.warning("saltcluster: %s claims health %s: taken for no claim", _show(minion_id), _show(claim))
        return None
    return state


def _member(minion_id, entries, net):
    """The member minion ``minion_id``'s mine ``entries`` describe, or None
    when it has no address in ``net``.  Raises _Refused naming the first bad
    value."""
    _check_id(minion_id)
    roles, cpus, keys, addrs = _validated(minion_id, _assemble(minion_id, entries))
    addr = _pick_addr(addrs, net)
    if addr is None:
        return None
    return {
        "id": minion_id,
        "name": minion_id,
        "addr": addr,
        "roles": sorted(set(roles)),
        "num_cpus": cpus,
        "host_keys": list(keys),
        "health": _claimed_health(minion_id, entries),
    }


# pillar/keys.sls: {minion id: epoch seconds}, when the master accepted each
# minion's key (its key store, read as the master compiles the pillar)
KEY_SENIORITY_PILLAR = "saltcluster_key_seniority"


def _key_seniority():
    """``{minion id: when the master accepted its key}`` as this host's
    pillar has it (pillar/keys.sls), {} when it has none.  A value that is
    no mapping is ignored, and an id whose time is no number of epoch
    seconds maps to None, its time unknown (both logged)."""
    found = __salt__["pillar.get"](KEY_SENIORITY_PILLAR, {})
    if not isinstance(found, dict):
        log.warning("saltcluster: pillar %s is %s, not a mapping: ignored", KEY_SENIORITY_PILLAR, _show(found))
        return {}
    seniority = {}
    for minion_id, when in found.items():
        if not isinstance(minion_id, str):
            log.warning(
                "saltcluster: pillar %s names %s, no minion id: ignored", KEY_SENIORITY_PILLAR, _show(minion_id)
            )
        elif isinstance(when, (int, float)) and not isinstance(when, bool) and 0 <= when < 1e12:  # not NaN, inf
            seniority[minion_id] = when
        else:
            log.warning(
                "saltcluster: pillar %s gives %s the time %s, not epoch seconds: taken as unknown",
                KEY_SENIORITY_PILLAR, _show(minion_id), _show(when),
            )  # fmt: skip
            seniority[minion_id] = None
    return seniority


def _senior(claimants, seniority):
    """The claimants whose minion key the master accepted first, by
    ``seniority``: one, or several accepted at the same time; none when
    ``seniority`` lists none of them or has no valid time for one.  A
    claimant it does not list counts as accepted after every listed one:
    the pillar lists every key the master had accepted when it compiled
    it."""
    times = {c["id"]: seniority[c["id"]] for c in claimants if c["id"] in seniority}
    if not times or None in times.values():
        return []
    first = min(times.values())
    return [c for c in claimants if times.get(c["id"]) == first]


def _keeper(claimants, this_id, this_hosts, seniority, master_host):
    """Who of ``claimants`` (members claiming one name or address) keeps it,
    and why: ``(member or None, reason)``.  ``this_hosts``: the value is
    certainly this host's own; ``seniority``: what _key_seniority returns."""
    if this_hosts:
        own = [c for c in claimants if c["id"] == this_id]
        return (own[0] if own else None), "it is this host's own"
    for why, found in (
        ("this host's own entry", [c for c in claimants if c["id"] == this_id]),
        ("its minion key was accepted first", _senior(claimants, seniority)),
        ("network:master_host", [c for c in claimants if c["name"] == master_host]),
    ):
        if len(found) == 1:
            return found[0], why
    return None, "nothing tells the claimants apart"


def _own_addrs(mine):
    """This host's addresses: as its own mine entry (its own publication)
    lists them, or from its interfaces when the mine has no entry of it."""
    own = mine.get(__opts__["id"])
    if isinstance(own, dict) and isinstance(own.get(ADDRS_ENTRY), list):
        return {a for a in own[ADDRS_ENTRY] if _ip(a) is not None}
    return set(__salt__["network.ip_addrs"](include_loopback=True))


def _settle_claims(candidates, net, cfg, mine):
    """
    The members of ``candidates`` whose name and address are theirs alone.

    Names are the minion ids, but the resolver and ssh compare them without
    case (``MASTER`` is ``master``), and an address in the cidr can be
    claimed by anyone.  A member claiming a name or an address that another
    member claims too never displaces the member it belongs to: that one
    keeps it by the first rule that picks exactly one claimant, and every
    other claimant is dropped (logged with the value):

    1. this host's own: its minion id and its addresses (no other member
       gets those even uncontested), or what its own mine entry claims;
    2. key seniority: the claimant whose minion key the master accepted
       first, by ``saltcluster_key_seniority`` (``pillar/keys.sls``, which
       the master reads from its own key store when it compiles this host's
       pillar).  The mine holds each member's present claims only, written
       by that member, never who held a name or an address first; the
       master's key store is the one record of who came first, and no
       minion can write it.  So a member that joins later (a new id
       registered with the join token, whatever it publishes) cannot take
       a name or an address from a member that was there before it, on any
       host.  A claimant the pillar does not list was accepted after the
       pillar was compiled, so after every listed one.  When two claimants
       were accepted at the same time, none is listed, or the pillar's time
       for one is no number, this rule picks no one.  The pillar is read
       only when two members claim one value, and only picks among them: it
       never makes a member;
    3. the member named ``network:master_host`` (pillar, not the mine).

    If no rule picks one, every claimant is dropped.  Limits: Salt 3008.4
    has no record of which address a minion really uses (the master's
    ``connected_ids`` matches the minion's own ``ipv4`` grain, which the
    minion writes), so seniority says who came first, not whose a value
    is: a member accepted earlier (a compromised one, or an id registered
    with the join token in advance) keeps a later member out of the address
    or the name it claims, until the two claims no longer meet; a host
    whose key is deleted and accepted again (reinstalled) is the newest;
    and where the pillar has no seniority (``salt-call --local``, or a
    master whose ``keys.cache_driver`` is not ``localfs_key``) a value two
    members claim, neither of them this host nor the master, is nobody's.
    In a loopback cidr every member is this machine (the integration
    tests): addresses are shared, not claimed.
    """
    this_id = __opts__["id"]
    shared = net.is_loopback
    own_addrs = set() if shared else _own_addrs(mine)
    contests = {}
    for member in candidates:
        contests.setdefault(("name", member["name"].lower()), []).append(member)
        if not shared:
            contests.setdefault(("address", member["addr"]), []).append(member)
    seniority = None
    refused = {}
    for (what, value), claimants in contests.items():
        this_hosts = value == this_id.lower() if what == "name" else value in own_addrs
        if len(claimants) == 1 and (not this_hosts or claimants[0]["id"] == this_id):
            continue
        if seniority is None:  # read once, and only when there is a contest
            seniority = _key_seniority()
        keeper, why = _keeper(claimants, this_id, this_hosts, seniority, cfg["network"]["master_host"])
        others = ", ".join(sorted(c["id"] for c in claimants if c is not keeper))
        verdict = f"{keeper['id']} keeps it" if keeper else "nobody keeps it"
        for loser in claimants:
            if loser is not keeper:
                refused.setdefault(loser["id"], f"{what} {value} is claimed by {others}; {verdict} ({why})")
    for minion_id, reason in sorted(refused.items()):
        log.warning("saltcluster: refusing the mine entries of %r: %s", minion_id, reason)
    return [m for m in candidates if m["id"] not in refused]


def _by_minion(found):
    """``mine.get``'s answer for several entries (``{entry: {minion:
    data}}``) as the mine cache holds it: ``{minion: {entry: data}}``."""
    mine = {}
    for entry, per_minion in (found or {}).items() if isinstance(found, dict) else ():
        if entry in MINE_ENTRIES and isinstance(per_minion, dict):
            for minion_id, data in per_minion.items():
                mine.setdefault(minion_id, {})[entry] = data
    return mine


def _read_mine():
    """Every host's saltcluster entries, ``{minion: {entry: data}}``, in one
    mine.get."""
    mine = _by_minion(__salt__["mine.get"]("*", list(MINE_ENTRIES)))
    published = any(entry in entries for entries in mine.values() for entry in MEMBER_ENTRIES)
    if not published and __opts__.get("file_client") == "local":
        # masterless: a cluster of this one host
        return {__opts__["id"]: _own_entries()}
    if not published:
        # every member publishes itself, this host included: no data at
        # all means the master could not be asked, not an empty cluster.
        # Failing the render keeps hosts, known_hosts, hostfile and
        # upstream as they are instead of emptying them.
        raise CommandExecutionError(
            f"saltcluster: the mine returned no membership data at all ({', '.join(MEMBER_ENTRIES)}: "
            "master unreachable, or no minion published yet); keeping the running membership files"
        )
    return mine


def _members(cfg, role=None):
    net = ipaddress.ip_network(cfg["network"]["cidr"], strict=False)
    mine = _read_mine()
    candidates = []
    for minion_id, entries in sorted(mine.items(), key=lambda item: str(item[0])):
        try:
            member = _member(minion_id, entries, net)
        except _Refused as exc:
            log.warning("saltcluster: refusing the mine entries of %s: %s", _show(minion_id), exc)
            continue
        if member is None:
            log.info("saltcluster: %s has no usable address in %s, not a member", minion_id, net)
            continue
        candidates.append(member)
    result = _settle_claims(candidates, net, cfg, mine)
    if role is not None:
        result = [m for m in result if role in m["roles"]]
    result.sort(key=lambda m: _natural(m["name"]))
    return result


def members(role=None, cidr=None):
    """
    Cluster members from the mine, sorted by name: a list of dicts with
    ``id``, ``name`` (the minion id), ``addr`` (the address inside
    ``network:cidr``), ``roles``, ``num_cpus``, ``host_keys`` and
    ``health`` (the state the host claims for itself: ``joining``,
    ``serving``, ``drained``, or None; see :py:func:`serving`).  Hosts with
    no address in the cidr are not members.  ``role`` keeps only hosts
    holding that role; ``cidr`` stands in for ``network:cidr``.  The mine
    is read in one ``mine.get`` of every saltcluster entry (its answer
    regrouped as ``{minion: {entry: data}}``, as ``salt-run cache.mine``
    shows it).

    A member publishes three mine entries, each the return of a core
    function (``pillar/mine.sls``): ``saltcluster_grains`` (``grains.item
    id roles num_cpus``), ``saltcluster_addrs`` (``network.ip_addrs
    include_loopback=True``) and ``saltcluster_host_keys``
    (``ssh.host_keys keydir=/etc/ssh private=False certs=False``); a host
    missing one is no member.  Each host's entries are checked before use,
    and a host whose entries fail is dropped alone with a warning naming
    the minion id and the bad value: an ``id`` grain other than the minion
    id, roles that are not a list of master,
    compute and gateway, a ``num_cpus`` that is not an integer from 1 to
    4096, an address that is not an IP address, a host key that is not
    ``<type> <base64>`` of a known type.  A member claiming another's name
    (compared without case) or address never displaces it (see
    ``_settle_claims`` for who keeps a contested one, and the limits).

    CLI Example:

    .. code-block:: bash

        salt master cluster.members compute
    """
    cfg = settings()
    if cidr is not None:
        cfg["network"]["cidr"] = cidr
    return _members(cfg, role=role)


def _serving(found, role):
    """``(members, why)``: the members of ``found`` (those of ``role``) that
    serve, i.e. whose own health claim says serving; ``why`` is "".  If
    none does, every one of them, and ``why`` says so (logged as a warning
    when one is drained): an empty hostfile or upstream serves nothing,
    while a drained node may still answer.  Until a member has claimed
    anything (a fresh cluster before its first checks), all serve."""
    serving = [m for m in found if m["health"] == "serving"]
    if serving or not found:
        for member in found:
            if member["health"] != "serving":
                health = member["health"] or "not claimed"
                log.info("saltcluster: %s does not serve (health %s)", member["name"], health)
        return serving, ""
    if not any(m["health"] for m in found):
        return found, ""
    states = ", ".join(f"{m['name']} {m['health'] or 'not claimed'}" for m in found)
    why = f"no {role} member serves ({states}): keeping all of them rather than none"
    if any(m["health"] == "drained" for m in found):
        log.warning("saltcluster: %s", why)
    return found, why


def serving(role="compute"):
    """
    The members of ``role`` that serve, as the hostfile and the upstream
    list them: ``{"serving": [names], "not_serving": {name: health},
    "kept": bool, "why": str}``.  A member serves when its own health claim
    (``cluster_health.publish``, mine entry ``saltcluster_health``) says
    ``serving``; ``joining`` (not admitted yet), ``drained`` (failed
    ``health:fail_after`` checks in a row) and no claim do not.  Draining
    never empties them: when none serves, all are listed (``kept``), and
    ``why`` says so.  /etc/hosts, ssh_known_hosts and the NFS export list
    every member, serving or not, so a drained node can come back.

    CLI Example:

    .. code-block:: bash

        salt master cluster.serving
    """
    found = members(role=role)
    listed, why = _serving(found, role)
    names = {m["name"] for m in listed}
    return {
        "serving": [m["name"] for m in found if m["health"] == "serving"],
        "not_serving": {m["name"]: m["health"] for m in found if m["health"] != "serving"},
        "kept": bool(why) and bool(names),
        "why": why,
    }


def _natural(name):
    """node2 sorts before node10."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def hosts_block():
    """
    The lines saltcluster keeps in /etc/hosts: one ``addr name`` per member.

    CLI Example:

    .. code-block:: bash

        salt '*' cluster.hosts_block
    """
    return "\n".join(f"{m['addr']} {m['name']}" for m in members())


def known_hosts():
    """
    ssh_known_hosts lines from the members' real host keys (as published in
    the mine), each listing the host's name and cluster address.

    CLI Example:

    .. code-block:: bash

        salt '*' cluster.known_hosts
    """
    lines = []
    for member in members():
        for key in member["host_keys"]:
            lines.append(f"{member['name']},{member['addr']} {key}")
    return "\n".join(lines)


# -- the Hydra hostfile: one format, written by cluster.mpi.hostfile from
# hostfile() and read back by mpi.run through parse_hostfile()

HOSTFILE_SLOTS_RE = re.compile(r"[0-9]{1,9}")


def hostfile_lines(members, slots=None):
    """
    The Hydra hostfile lines for ``members`` (dicts with ``name`` and
    ``num_cpus``, as :py:func:`members` returns them): one ``name:slots``
    each, ``slots`` if given, else the member's cpu count.

    CLI Example:

    .. code-block:: bash

        salt master cluster.hostfile_lines '[{"name": "node1", "num_cpus": 2}]'
    """
    return [f"{m['name']}:{slots or m['num_cpus']}" for m in members]


def parse_hostfile(text):
    """
    The entries of Hydra hostfile ``text`` as ``[{"host", "slots"}]``, read
    as Hydra reads them: ``#`` starts a comment, blank lines are skipped,
    and a line without a slot count (``:N``) is one slot.

    CLI Example:

    .. code-block:: bash

        salt master cluster.parse_hostfile 'node1:2'
    """
    entries = []
    # lines end as a file read in text mode ends them (\n, \r\n or \r),
    # not at every separator str.splitlines knows
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        host, _, slots = line.partition(":")
        entries.append({"host": host, "slots": int(slots) if HOSTFILE_SLOTS_RE.fullmatch(slots) else 1})
    return entries


def hostfile():
    """
    The Hydra hostfile text: one ``name:slots`` line per compute member that
    serves (:py:func:`serving`: a drained node is left out, unless none
    serves); slots come from ``mpi:slots`` if set, else the node's
    ``num_cpus`` grain.

    CLI Example:

    .. code-block:: bash

        salt master cluster.hostfile
    """
    cfg = settings()
    listed, _ = _serving(_members(cfg, "compute"), "compute")
    return "\n".join(hostfile_lines(listed, cfg["mpi"]["slots"]))


def upstream():
    """
    The load balancer's backends: a list of ``{name, addr, port, weight}``
    for the compute members that serve (:py:func:`serving`: a drained node
    is left out, unless none serves).  Raises if there are none, so the
    gateway never goes live with an empty upstream: nginx keeps its last
    good config.

    CLI Example:

    .. code-block:: bash

        salt gateway cluster.upstream
    """
    cfg = settings()
    lb = cfg["lb"]
    backends = [
        {
            "name": m["name"],
            "addr": m["addr"],
            "port": lb["backend_port"],
            "weight": lb["weights"].get(m["name"], 1),
        }
        for m in _serving(_members(cfg, "compute"), "compute")[0]
    ]
    if not backends:
        raise CommandExecutionError(
            "saltcluster:lb: the compute backend list is empty (no compute member with an "
            f"address in {cfg['network']['cidr']} in the mine); keeping the running config"
        )
    return backends


def uid_holder(uid, name=None):
    """
    The user that holds ``uid`` other than ``name``, or None.

    CLI Example:

    .. code-block:: bash

        salt '*' cluster.uid_holder 100 jobhandler
    """
    try:
        holder = pwd.getpwuid(int(uid)).pw_name
    except KeyError:
        return None
    return None if holder == name else holder


def mine_snapshot():
    """
    saltcluster's raw mine entries of every host, ``{minion: {entry:
    data}}``, as JSON text (for debugging membership).

    CLI Example:

    .. code-block:: bash

        salt master cluster.mine_snapshot
    """
    return json.dumps(_by_minion(__salt__["mine.get"]("*", list(MINE_ENTRIES))), sort_keys=True, indent=1)
