"""First contact: on a lab booted from fresh disks (keys accepted, nothing
else run), the operator's one `salt '*' state.apply` converges the cluster.

Runs before every other lab test (tests/lab/conftest.py orders it first).
The apply itself is the session fixture `converged`: the other lab tests
get their highstated lab from it whether or not this file is selected.
Nothing is synced or published before it: the minions published their
membership at start (core functions, pillar/mine.sls), and the highstate
syncs this tree's modules itself."""

import pytest
from labkit import config, remote
from labkit.config import lb_url

from tests.lab.conftest import sh

COMPUTE = ["node1", "node2"]
LB_REQUESTS = 6


@pytest.fixture(scope="module")
def first_apply(converged):
    if not converged["fresh"]:
        pytest.skip("the lab was already running: first contact needs a lab this session boots (lab/saltlab down)")
    return converged


def test_one_apply_ends_with_zero_failed_states_on_every_host(first_apply):
    assert first_apply["failed"] == [], "\n".join(first_apply["failed"])
    assert first_apply["changed"] > 0  # it did configure the hosts


def test_every_host_answered_the_apply(first_apply):
    """Every base host is an accepted minion and took part (the failures
    above count a running host without a return)."""
    keys = remote.salt_keys()
    assert set(config.members()) <= set(keys["minions"]), keys


def test_gateway_answers_from_outside_alternating_the_nodes(first_apply):
    """The outside client, through the gateway's external address: every
    request answered, by node1 and node2 in turn."""
    names = []
    for _ in range(LB_REQUESTS):
        curl = f"curl -s --max-time {config.CURL_TIMEOUT} {lb_url()}"
        rc, out, _ = sh("client", curl, timeout=config.CURL_SSH_TIMEOUT)
        names.append(out.split()[0] if out.strip() else None)
    assert None not in names and set(names) == set(COMPUTE), names
    assert all(names[i] != names[i + 1] for i in range(len(names) - 1)), names


def test_membership_is_everywhere_after_the_one_apply(first_apply):
    """Every base member is in every membership file: hosts blocks,
    known_hosts, the hostfile (compute nodes) and the upstream."""
    rc, out, _ = sh("master", "grep -v '^#' /home/jobhandler/hosts")
    assert out.split() == [f"{n}:2" for n in COMPUTE], out
    for node in config.members():
        rc, out, _ = sh(node, "sed -n '/BEGIN saltcluster/,/END saltcluster/p' /etc/hosts")
        assert all(f"{config.address(name)} {name}" in out for name in config.members()), (node, out)
