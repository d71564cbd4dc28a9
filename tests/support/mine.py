"""Synthetic mine data (entry ``saltcluster_host``) for unit, functional and
benchmark use: the seed topology plus a host outside the cluster cidr.  Host
keys are in OpenSSH's public key format (base64 of a blob that starts with
the key type), with key material derived from the host's name."""

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
