"""Synthetic mine data (entry ``saltcluster_host``) for unit, functional and
benchmark use: the seed topology plus a host outside the cluster cidr."""

import copy

SEED = {
    "gateway": {"addrs": ["10.0.2.5", "10.5.5.1", "127.0.0.1"], "roles": ["gateway"], "num_cpus": 1},
    "master": {"addrs": ["10.5.5.10", "127.0.0.1"], "roles": ["master"], "num_cpus": 1},
    "node1": {"addrs": ["10.5.5.9", "127.0.0.1"], "roles": ["compute"], "num_cpus": 2},
    "node2": {"addrs": ["10.5.5.18", "127.0.0.1"], "roles": ["compute"], "num_cpus": 2},
    "node10": {"addrs": ["10.5.5.30"], "roles": ["compute"], "num_cpus": 4},
    "outsider": {"addrs": ["192.168.9.9"], "roles": ["compute"], "num_cpus": 8},
}


def _entry(name, info):
    return {
        "host": name,
        "roles": info["roles"],
        "addrs": info["addrs"],
        "num_cpus": info["num_cpus"],
        "host_keys": [f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{name}", f"ecdsa-sha2-nistp256 AAAAE2VjZHNh{name}"],
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
