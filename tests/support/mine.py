"""Synthetic mine data for unit, functional and benchmark use: the seed
topology plus a host outside the cluster cidr.  Host keys are in OpenSSH's
public key format (base64 of a blob that starts with the key type), with key
material derived from the host's name.

``MINE`` and ``mine_for`` give each host's record as ``cluster.host_info``
shows it (host, roles, addrs, num_cpus, host_keys), which is what tests read
and forge; ``published`` turns such records into what hosts really publish
(pillar/mine.sls: three entries, each a core function's return), the form
the master's mine cache (``salt-run cache.mine``), the functional tests'
fake mine and the unit tests' fake ``mine.get`` (through ``mine_get``)
hold."""

import base64
import copy
import hashlib

SEED = {
    "gateway": {"addrs": ["10.0.2.5", "10.5.5.1", "127.0.0.1"], "roles": ["gateway"], "num_cpus": 1},
    "master": {"addrs": ["10.5.5.10", "127.0.0.1"], "roles": ["master"], "num_cpus": 1},
    "node1": {"addrs": ["10.5.5.9", "127.0.0.1"], "roles": ["compute"], "num_cpus": 2},
    "node2": {"addrs": ["10.5.5.18", "127.0.0.1"], "roles": ["compute"], "num_cpus": 2},
    "node10": {"addrs": ["10.5.5.30"], "roles": ["compute"], "num_cpus": 4},
    "outsider": {"addrs": ["192.168.9.9"], "roles": ["compute"], "num_cpus": 8},
}


def ssh_string(data):
    """An SSH wire-format string: 4-byte big-endian length, then the bytes."""
    return len(data).to_bytes(4, "big") + data


def key_blob(kind, seed):
    """The public key blob of a ``kind`` key (ssh-ed25519, ssh-rsa or
    ecdsa-sha2-nistpNNN) whose material comes from ``seed``."""
    material = hashlib.sha256(seed.encode()).digest()
    if kind == "ssh-ed25519":
        return ssh_string(b"ssh-ed25519") + ssh_string(material)
    if kind == "ssh-rsa":
        return ssh_string(b"ssh-rsa") + ssh_string(b"\x01\x00\x01") + ssh_string(b"\x00" + material * 8)
    if kind.startswith("ecdsa-sha2-"):
        curve = kind.rsplit("-", 1)[1].encode()
        return ssh_string(kind.encode()) + ssh_string(curve) + ssh_string(b"\x04" + material * 2)
    raise ValueError(kind)


def host_key(kind, seed, blob=None):
    """``<kind> <base64>`` as ssh_host_*_key.pub holds it, without the comment."""
    return f"{kind} {base64.b64encode(blob if blob is not None else key_blob(kind, seed)).decode()}"


def _entry(name, info):
    return {
        "host": name,
        "roles": info["roles"],
        "addrs": info["addrs"],
        "num_cpus": info["num_cpus"],
        "host_keys": [host_key("ssh-ed25519", name), host_key("ecdsa-sha2-nistp256", name)],
    }


MINE = {name: _entry(name, info) for name, info in SEED.items()}


def mine_for(names):
    return {n: copy.deepcopy(MINE[n]) for n in names}


def synthetic(n_compute, cidr_prefix="10.5"):
    """A mine of a master, a gateway and ``n_compute`` nodes (up to 65k)."""
    mine = {
        "master": _entry("master", {"addrs": [f"{cidr_prefix}.0.10"], "roles": ["master"], "num_cpus": 2}),
        "gateway": _entry("gateway", {"addrs": [f"{cidr_prefix}.0.1"], "roles": ["gateway"], "num_cpus": 1}),
    }
    for i in range(1, n_compute + 1):
        addr = f"{cidr_prefix}.{1 + i // 250}.{i % 250 + 2}"
        mine[f"node{i}"] = _entry(f"node{i}", {"addrs": [addr], "roles": ["compute"], "num_cpus": 2})
    return mine


# pillar/mine.sls, and the core function each entry is the return of
GRAINS, ADDRS, HOST_KEYS = "saltcluster_grains", "saltcluster_addrs", "saltcluster_host_keys"
ENTRIES = (GRAINS, ADDRS, HOST_KEYS)


def publish(info):
    """One host's record (as ``MINE`` holds it) as its three mine entries:
    ``grains.item id roles num_cpus``, ``network.ip_addrs`` and
    ``ssh.host_keys`` (``{<name>.pub: key}``, named so that their order is
    the record's).  A field the record lacks is left out of the grains, as
    a grain the host lacks; anything that is not what the record should
    hold goes on as it is, so forged records stay forged."""
    if not isinstance(info, dict):
        return {entry: copy.deepcopy(info) for entry in ENTRIES}
    grains = {new: copy.deepcopy(info[old]) for old, new in (("host", "id"), ("roles", "roles"),
                                                             ("num_cpus", "num_cpus")) if old in info}  # fmt: skip
    keys = info.get("host_keys")
    if isinstance(keys, list):
        keys = {f"key{i:02d}.pub": key for i, key in enumerate(keys)}
    return {GRAINS: grains, ADDRS: copy.deepcopy(info.get("addrs")), HOST_KEYS: copy.deepcopy(keys)}


def published(mine):
    """``{minion: record}`` as the master's mine cache holds it:
    ``{minion: {entry: data}}``."""
    return {name: publish(info) for name, info in mine.items()}


def mine_get(cache, fun):
    """What ``mine.get('*', fun)`` answers from a mine ``cache`` (as
    ``published`` makes it): one entry's ``{minion: data}``, or for a list
    (or a comma string) of entries ``{entry: {minion: data}}``."""
    funs = fun.split(",") if isinstance(fun, str) else list(fun)
    if isinstance(fun, str) and len(funs) == 1:
        return {m: copy.deepcopy(e[fun]) for m, e in cache.items() if fun in e}
    found = {}
    for entry in funs:
        for minion, entries in cache.items():
            if entry in entries:
                found.setdefault(entry, {})[minion] = copy.deepcopy(entries[entry])
    return found
