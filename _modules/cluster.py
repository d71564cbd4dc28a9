"""
saltcluster topology: settings, validation and membership.

One pillar key (``saltcluster``) merged over the formula's
``parameters/defaults.yaml`` is the only configuration; membership (which
hosts exist, their roles, addresses, cpu count and ssh host keys) comes from
the Salt mine entry ``saltcluster_host`` that every minion publishes with
:py:func:`host_info`.  Every SLS and the ``mpi`` module read both through this
module, so no host list is written twice.
"""

import copy
import glob
import ipaddress
import json
import logging
import os
import pwd
import re

import salt.utils.dictupdate
import salt.utils.files
import salt.utils.yaml
from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

__virtualname__ = "cluster"

DEFAULTS_URL = "salt://cluster/parameters/defaults.yaml"
MINE_ENTRY = "saltcluster_host"
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
HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
USERNAME_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
DEVICE_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,15}$")
TEMPLATE_RE = re.compile(r"^(salt://[^\s]+|file:///[^\s]+)$")
DURATION_RE = re.compile(r"^\d+(ms|s|m|h)?$")
SIZE_RE = re.compile(r"^\d+[kKmM]?$")
# a path that goes into shell profiles and rpaths as it is
PLAIN_PATH_RE = re.compile(r"^/[A-Za-z0-9_.+/-]*$")


def __virtual__():
    return __virtualname__


class _Invalid(CommandExecutionError):
    """A pillar value that saltcluster refuses; the message names key and value."""


def _bad(key, value, why):
    raise _Invalid(f"saltcluster:{key}: {value!r} is invalid: {why}")


def _get(cfg, key):
    """The value at ``key`` (``section:name``, or deeper)."""
    value = cfg
    for part in key.split(":"):
        value = value[part]
    return value


def _int(cfg, key, lo, hi, allow_none=False):
    value = _get(cfg, key)
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        _bad(key, value, "must be an integer")
    if not lo <= value <= hi:
        _bad(key, value, f"must be between {lo} and {hi}")


def _abs_path(cfg, key):
    value = _get(cfg, key)
    if not isinstance(value, str) or not os.path.isabs(value) or ".." in value.split("/"):
        _bad(key, value, "must be an absolute path without '..'")


def _str_list(cfg, key):
    value = _get(cfg, key)
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        _bad(key, value, "must be a list of non-empty strings")


def _hostname(key, value):
    if not isinstance(value, str) or not HOSTNAME_RE.match(value):
        _bad(key, value, "is not a valid host name")


def _network(key, value):
    try:
        return ipaddress.ip_network(str(value), strict=False)
    except ValueError as exc:
        _bad(key, value, f"is not a network in cidr form ({exc})")


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
    if not cfg["nfs"]["clients"]:
        cfg["nfs"]["clients"] = [cfg["network"]["cidr"]]
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


def _check_mpi_provider(cfg):
    """The provider keys, checked before _derive builds paths from them."""
    mpi = cfg["mpi"]
    choices = ", ".join(MPI_PROVIDERS)
    if mpi["provider"] is not None and mpi["provider"] not in MPI_PROVIDERS:
        _bad("mpi:provider", mpi["provider"], f"must be one of {choices}, or null (by Debian release)")
    table = mpi["release_providers"]
    if table is None:  # null: no release named, debian everywhere
        table = mpi["release_providers"] = {}
    if not isinstance(table, dict):
        _bad("mpi:release_providers", table, "must map Debian codenames or major releases to providers")
    for release, provider in table.items():
        if provider not in MPI_PROVIDERS:
            _bad(f"mpi:release_providers:{release}", provider, f"must be one of {choices}")
    for section in ("debian", "pypi"):
        if not isinstance(mpi.get(section), dict):
            _bad(f"mpi:{section}", mpi.get(section), "must be a mapping")
        _str_list(cfg, f"mpi:{section}:packages")
    for key in ("mpi:debian:mpiexec", "mpi:debian:mpicc", "mpi:pypi:python"):
        _abs_path(cfg, key)
    _abs_path(cfg, "mpi:pypi:prefix")
    prefix = mpi["pypi"]["prefix"]
    if not PLAIN_PATH_RE.match(prefix) or prefix.rstrip("/") in ("", "/usr", "/usr/local"):
        _bad("mpi:pypi:prefix", prefix, "must be a directory of its own, named with letters, digits and ._+-/ only")
    req = mpi["pypi"]["requirement"]
    if not isinstance(req, str) or not req or req.startswith("-") or re.search(r"\s", req):
        _bad(
            "mpi:pypi:requirement", req,
            "must be one pip requirement: mpich==VERSION, a wheel URL or a local wheel path",
        )  # fmt: skip
    for key in ("packages", "mpiexec", "mpicc"):
        if mpi[key] is not None:
            (_str_list if key == "packages" else _abs_path)(cfg, f"mpi:{key}")


def validate(cfg, grains=None):
    """
    Check a merged saltcluster configuration and return it with derived paths
    filled in.  Raises ``CommandExecutionError`` naming the key and the value
    of the first bad setting, so rendering stops before any state runs.

    grains
        the host whose MPI provider is derived (``osmajorrelease``,
        ``oscodename``); default: this minion's grains

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
    for section in ("network", "user", "nfs", "ssh", "mpi", "web", "lb"):
        if not isinstance(cfg.get(section), dict):
            _bad(section, cfg.get(section), "must be a mapping")
    # network
    cluster_net = _network("network:cidr", cfg["network"]["cidr"])
    _hostname("network:master_host", cfg["network"]["master_host"])
    _abs_path(cfg, "network:hosts_file")
    _abs_path(cfg, "network:join_marker")
    # user
    user = cfg["user"]
    if not isinstance(user["name"], str) or not USERNAME_RE.match(user["name"]):
        _bad("user:name", user["name"], "is not a valid user name")
    if user["name"] == "root":
        _bad("user:name", user["name"], "MPI jobs never run as root")
    if not isinstance(user["group"], str) or not USERNAME_RE.match(user["group"]):
        _bad("user:group", user["group"], "is not a valid group name")
    _int(cfg, "user:uid", 1, 65534)
    _int(cfg, "user:gid", 1, 65534)
    _abs_path(cfg, "user:home")
    _abs_path(cfg, "user:shell")
    if not isinstance(user["relocate_uid_holder"], bool):
        _bad("user:relocate_uid_holder", user["relocate_uid_holder"], "must be true or false")
    _str_list(cfg, "user:relocate_restart_services")
    _check_mpi_provider(cfg)
    _derive(cfg, grains)
    # nfs
    _abs_path(cfg, "nfs:export_path")
    _abs_path(cfg, "nfs:exports_file")
    _str_list(cfg, "nfs:clients")
    for client in cfg["nfs"]["clients"]:
        if not (HOSTNAME_RE.match(client) or _is_network(client)):
            _bad("nfs:clients", client, "is neither a cidr nor a host name")
        net = _network("nfs:clients", client) if _is_network(client) else None
        if net and (net.version != cluster_net.version or not net.subnet_of(cluster_net)):
            _bad("nfs:clients", client, f"reaches outside the cluster network {cluster_net}")
    _str_list(cfg, "nfs:options")
    for opt in cfg["nfs"]["options"]:
        if opt not in NFS_OPTIONS and not re.match(r"^(anonuid|anongid|fsid)=\d+$", opt):
            _bad("nfs:options", opt, "is not an exports(5) option")
        if opt in ("no_root_squash", "insecure"):
            # root on any node would own the shared home, jobhandler's private key included
            _bad("nfs:options", opt, "saltcluster exports the shared home with root_squash and secure only")
    _str_list(cfg, "nfs:mount_options")
    _int(cfg, "nfs:server_wait_seconds", 0, 3600)
    # ssh
    if cfg["ssh"]["key_type"] not in ("ed25519", "rsa", "ecdsa"):
        _bad("ssh:key_type", cfg["ssh"]["key_type"], "must be ed25519, rsa or ecdsa")
    _abs_path(cfg, "ssh:known_hosts_file")
    _abs_path(cfg, "ssh:sshd_dropin")
    # mpi
    for key in ("hostfile", "bin_dir", "src_dir", "mpiexec", "mpicc", "profile_file"):
        _abs_path(cfg, f"mpi:{key}")
    _str_list(cfg, "mpi:packages")
    _str_list(cfg, "mpi:allowed_dirs")
    for path in cfg["mpi"]["allowed_dirs"]:
        if not os.path.isabs(path) or ".." in path.split("/"):
            _bad("mpi:allowed_dirs", path, "must be an absolute path without '..'")
    _str_list(cfg, "mpi:programs")
    for prog in cfg["mpi"]["programs"]:
        if not re.match(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$", prog):
            _bad("mpi:programs", prog, "is not a plain program name")
    _int(cfg, "mpi:slots", 1, 4096, allow_none=True)
    _int(cfg, "mpi:timeout", 1, 7 * 86400)
    if not isinstance(cfg["mpi"]["ucx_tls"], str) or not re.match(
        r"^[a-z0-9_]+(,[a-z0-9_]+)*$", cfg["mpi"]["ucx_tls"]
    ):
        _bad("mpi:ucx_tls", cfg["mpi"]["ucx_tls"], "must be a comma list of UCX transports")
    dev = cfg["mpi"]["ucx_net_device"]
    if dev is not None and not (isinstance(dev, str) and DEVICE_RE.match(dev)):
        _bad("mpi:ucx_net_device", dev, "is not a network device name")
    # web and lb
    _int(cfg, "web:port", 1, 65535)
    _abs_path(cfg, "web:index_file")
    _abs_path(cfg, "web:config_file")
    _abs_path(cfg, "lb:config_file")
    _int(cfg, "lb:listen_port", 1, 65535)
    _int(cfg, "lb:backend_port", 1, 65535)
    _int(cfg, "lb:max_fails", 0, 1000)
    _int(cfg, "lb:keepalive", 0, 10000)
    if cfg["lb"]["method"] not in LB_METHODS:
        _bad("lb:method", cfg["lb"]["method"], f"nginx knows {', '.join(LB_METHODS)}")
    template = cfg["lb"]["template"]
    if not isinstance(template, str) or not TEMPLATE_RE.match(template) or ".." in template.split("/"):
        _bad("lb:template", template, "must be a salt:// or file:/// path without '..'")
    if not DURATION_RE.match(str(cfg["lb"]["read_timeout"])):
        _bad("lb:read_timeout", cfg["lb"]["read_timeout"], "must be an nginx time like 5s")
    if not DURATION_RE.match(str(cfg["lb"]["fail_timeout"])):
        _bad("lb:fail_timeout", cfg["lb"]["fail_timeout"], "must be an nginx time like 10s")
    if not SIZE_RE.match(str(cfg["lb"]["zone_size"])):
        _bad("lb:zone_size", cfg["lb"]["zone_size"], "must be an nginx size like 64k")
    for section in ("web", "lb"):
        workers = cfg[section]["worker_processes"]
        if workers != "auto" and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            _bad(f"{section}:worker_processes", workers, "must be auto or a positive integer")
    if not isinstance(cfg["lb"]["forwarded_for"], bool):
        _bad("lb:forwarded_for", cfg["lb"]["forwarded_for"], "must be true or false")
    weights = cfg["lb"]["weights"]
    if not isinstance(weights, dict):
        _bad("lb:weights", weights, "must map host names to weights")
    for host, weight in weights.items():
        _hostname("lb:weights", host)
        if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= 1000:
            _bad(f"lb:weights:{host}", weight, "must be an integer between 1 and 1000")
    return cfg


def _is_network(value):
    try:
        ipaddress.ip_network(value, strict=False)
        return True
    except ValueError:
        return False


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
            return found
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
        host was configured with and not pay a fileserver round trip (1.5
        to 3 s per job in the lab).  States always fetch.

    CLI Example:

    .. code-block:: bash

        salt '*' cluster.defaults
        salt '*' cluster.defaults cached=True
    """
    if "saltcluster.defaults" not in __context__:
        found = _cached_defaults() if cached else None
        if found is None:
            text = __salt__["cp.get_file_str"](DEFAULTS_URL)
            if not text:
                raise CommandExecutionError(f"cannot read {DEFAULTS_URL}: is the saltcluster tree served?")
            found = salt.utils.yaml.safe_load(text)["saltcluster"]
        __context__["saltcluster.defaults"] = found
    return copy.deepcopy(__context__["saltcluster.defaults"])


def settings(overrides=None, cached=False):
    """
    The effective, validated configuration: defaults merged with pillar
    ``saltcluster`` (and ``overrides``, for trying a value out).

    CLI Example:

    .. code-block:: bash

        salt '*' cluster.settings
        salt-call cluster.settings overrides='{"lb": {"method": "least_conn"}}'

    ``cached=True`` starts from the cached defaults (see :py:func:`defaults`).
    """
    cfg = defaults(cached=cached)
    pillar = __salt__["pillar.get"]("saltcluster", {}, unmask=True) or {}
    if not isinstance(pillar, dict):
        _bad("", pillar, "pillar saltcluster must be a mapping")
    cfg = salt.utils.dictupdate.merge(cfg, pillar, strategy="recurse")
    if overrides:
        cfg = salt.utils.dictupdate.merge(cfg, overrides, strategy="recurse")
    try:
        return validate(cfg)
    except KeyError as exc:
        if not cached:
            raise
        # a cached copy older than these modules (synced, no state run since)
        log.warning("cluster: cached %s lacks %s: fetching it", DEFAULTS_URL, exc)
        __context__.pop("saltcluster.defaults", None)
        return settings(overrides=overrides, cached=False)


def host_info():
    """
    What this host publishes to the mine (entry ``saltcluster_host``): its
    cluster name (the minion id: name minions as the hosts are to be called,
    e.g. ``node1``), roles, IPv4 addresses, cpu count and ssh host public keys.

    CLI Example:

    .. code-block:: bash

        salt '*' cluster.host_info
    """
    keys = []
    for path in sorted(glob.glob("/etc/ssh/ssh_host_*_key.pub")):
        with salt.utils.files.fopen(path) as fh:
            parts = fh.read().split()
        if len(parts) >= 2:
            keys.append(f"{parts[0]} {parts[1]}")
    roles = __grains__.get("roles") or []
    if isinstance(roles, str):
        roles = [roles]
    return {
        "host": __opts__["id"],
        "roles": sorted(roles),
        "addrs": __salt__["network.ip_addrs"](include_loopback=True),
        "num_cpus": __grains__.get("num_cpus", 1),
        "host_keys": keys,
    }


def _pick_addr(addrs, net):
    for addr in addrs or []:
        try:
            if ipaddress.ip_address(addr) in net:
                return addr
        except ValueError:
            continue
    return None


def members(role=None, mine=None, cidr=None):
    """
    Cluster members from the mine, sorted by name: a list of dicts with
    ``id``, ``name``, ``addr`` (the address inside ``network:cidr``), ``roles``,
    ``num_cpus`` and ``host_keys``.  Hosts with no address in the cidr are
    not members.  ``role`` keeps only hosts holding that role.

    CLI Example:

    .. code-block:: bash

        salt master cluster.members compute
    """
    if cidr is None:
        cidr = settings()["network"]["cidr"]
    net = ipaddress.ip_network(cidr, strict=False)
    if mine is None:
        mine = __salt__["mine.get"]("*", MINE_ENTRY)
        if not mine and __opts__.get("file_client") == "local":
            # masterless: a cluster of this one host
            mine = {__opts__["id"]: host_info()}
        elif not mine:
            # every member publishes itself, this host included: no data at
            # all means the master could not be asked, not an empty cluster.
            # Failing the render keeps hosts, known_hosts, hostfile and
            # upstream as they are instead of emptying them.
            raise CommandExecutionError(
                f"saltcluster: the mine returned no {MINE_ENTRY} data at all (master unreachable, or "
                "mine.update never ran); keeping the running membership files"
            )
    result = []
    for minion_id, info in sorted((mine or {}).items()):
        if not isinstance(info, dict):
            log.warning("saltcluster: ignoring mine data of %s: %r", minion_id, info)
            continue
        addr = _pick_addr(info.get("addrs"), net)
        name = info.get("host") or minion_id
        if addr is None or not HOSTNAME_RE.match(str(name)):
            log.info("saltcluster: %s has no usable address in %s, not a member", minion_id, net)
            continue
        roles = info.get("roles") or []
        if role is not None and role not in roles:
            continue
        result.append(
            {
                "id": minion_id,
                "name": name,
                "addr": addr,
                "roles": list(roles),
                "num_cpus": int(info.get("num_cpus") or 1),
                "host_keys": list(info.get("host_keys") or []),
            }
        )
    result.sort(key=lambda m: _natural(m["name"]))
    return result


def _natural(name):
    """node2 sorts before node10."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def hosts_block(mine=None):
    """
    The lines saltcluster keeps in /etc/hosts: one ``addr name`` per member.

    CLI Example:

    .. code-block:: bash

        salt '*' cluster.hosts_block
    """
    return "\n".join(f"{m['addr']} {m['name']}" for m in members(mine=mine))


def known_hosts(mine=None):
    """
    ssh_known_hosts lines from the members' real host keys (as published in
    the mine), each listing the host's name and cluster address.

    CLI Example:

    .. code-block:: bash

        salt '*' cluster.known_hosts
    """
    lines = []
    for member in members(mine=mine):
        for key in member["host_keys"]:
            lines.append(f"{member['name']},{member['addr']} {key}")
    return "\n".join(lines)


def hostfile(mine=None):
    """
    The Hydra hostfile text: one ``name:slots`` line per compute member; slots
    come from ``mpi:slots`` if set, else the node's ``num_cpus`` grain.

    CLI Example:

    .. code-block:: bash

        salt master cluster.hostfile
    """
    cfg = settings()
    lines = []
    for member in members("compute", mine=mine, cidr=cfg["network"]["cidr"]):
        slots = cfg["mpi"]["slots"] or member["num_cpus"]
        lines.append(f"{member['name']}:{slots}")
    return "\n".join(lines)


def upstream(mine=None):
    """
    The load balancer's backends: a list of ``{name, addr, port, weight}``
    for the compute members.  Raises if there are none, so the gateway never
    goes live with an empty upstream: nginx keeps its last good config.

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
        for m in members("compute", mine=mine, cidr=cfg["network"]["cidr"])
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
    The raw mine entry for all hosts, as JSON text (for debugging membership).

    CLI Example:

    .. code-block:: bash

        salt master cluster.mine_snapshot
    """
    return json.dumps(__salt__["mine.get"]("*", MINE_ENTRY), sort_keys=True, indent=1)
