"""A real salt-master with four real minions on loopback (gateway, master,
node1, node2), serving this repository's tree, pillar and modules."""

import contextlib
import json
import pathlib
import pwd
import shutil
import tempfile
import time

import pytest

from tests.conftest import REPO

HOSTS = {"gateway": ["gateway"], "master": ["master"], "node1": ["compute"], "node2": ["compute"]}
TEST_USER = {"name": "scint", "uid": 64200, "gid": 64200, "group": "scint"}


@pytest.fixture(scope="package")
def scratch():
    # not under pytest's tmp root (mode 0700): the MPI user must reach its home
    root = pathlib.Path(tempfile.mkdtemp(prefix="saltcluster-int-"))
    root.chmod(0o755)
    for minion in HOSTS:
        (root / minion).mkdir()
        (root / minion / "hosts").write_text("127.0.0.1 localhost\n")
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="package")
def pillar_root(tmp_path_factory, scratch):
    """The repo's pillar, with an override that keeps every file the states
    write inside a scratch directory (per minion) and uses loopback as the
    cluster network: all four minions live on this machine."""
    root = tmp_path_factory.mktemp("pillar")
    (root / "top.sls").write_text("base:\n  '*':\n    - saltcluster\n    - mine\n    - integration\n")
    override = {
        "network": {"cidr": "127.0.0.0/8", "master_host": "localhost", "hosts_file": f"{scratch}/@ID@/hosts"},
        "user": dict(TEST_USER, home=f"{scratch}/home/{TEST_USER['name']}", relocate_uid_holder=False),
        "nfs": {"exports_file": f"{scratch}/@ID@/exports"},
        "ssh": {"known_hosts_file": f"{scratch}/@ID@/ssh_known_hosts"},
        # nginx's files (base config, site directory beside it, checker):
        # nothing under this machine's /etc/nginx or /usr/local/sbin changes
        "nginx": {
            "config_file": f"{scratch}/@ID@/nginx/nginx.conf",
            "check_command": f"{scratch}/@ID@/bin/saltcluster-nginx-check",
        },
        "web": {"index_file": f"{scratch}/@ID@/www/index.html"},
        # the provider comes from this host's release (Debian 12: pypi).  One
        # prefix for all four minions, as on real hosts (Hydra starts
        # hydra_pmi_proxy from its own bin dir), but in scratch rather than
        # /opt: nothing left on this machine, nothing shared between runs
        "mpi": {
            "ucx_net_device": None,
            "timeout": 120,
            "profile_file": f"{scratch}/@ID@/saltcluster-mpi.sh",
            "pypi": {"prefix": f"{scratch}/mpich"},
        },
    }
    text = json.dumps({"saltcluster": override}).replace("@ID@", "{{ grains.id }}")
    (root / "integration.sls").write_text(text)
    return root


@pytest.fixture(scope="package")
def salt_master(salt_factories, pillar_root):
    factory = salt_factories.salt_master_daemon(
        "int-master",
        overrides={
            "file_roots": {"base": [str(REPO / "salt")]},
            "pillar_roots": {"base": [str(pillar_root), str(REPO / "pillar")]},
            "enable_fqdns_grains": False,
        },
    )
    with factory.started():
        yield factory


@contextlib.contextmanager
def running_minions(master, roles_by_id, **overrides):
    """Salt minions of MASTER, one per id of ROLES_BY_ID with those roles as
    its grain (and OVERRIDES to its config), started one after another and
    stopped again, every one started, when the block ends."""
    started = {}
    try:
        for mid, roles in roles_by_id.items():
            factory = master.salt_minion_daemon(
                mid, overrides={"grains": {"roles": roles}, "enable_fqdns_grains": False, **overrides}
            )
            factory.start()
            started[mid] = factory
        yield started
    finally:
        for factory in started.values():
            factory.terminate()


@pytest.fixture(scope="package")
def minions(salt_master):
    with running_minions(salt_master, HOSTS) as factories:
        yield factories


@pytest.fixture(scope="package")
def salt_cli(salt_master):
    return salt_master.salt_cli(timeout=180)


@pytest.fixture(scope="package")
def salt_run_cli(salt_master):
    return salt_master.salt_run_cli(timeout=60)


# what a member publishes (pillar/mine.sls), core functions only
MEMBER_ENTRIES = ("saltcluster_grains", "saltcluster_addrs", "saltcluster_host_keys")
MINE_WAIT = 60  # seconds from the minions' start until the master holds their entries


def published_mine(salt_run_cli, minions, wait=MINE_WAIT):
    """The master's mine cache of ``minions`` once every one of them holds
    every membership entry: what each minion's start-up mine run sent,
    with nothing synced to it and no mine.update.  Fails after ``wait``
    seconds."""
    deadline = time.monotonic() + wait
    while True:
        ret = salt_run_cli.run("cache.mine", tgt=",".join(minions), tgt_type="list")
        data = ret.data if isinstance(ret.data, dict) else {}
        missing = {m: sorted(set(MEMBER_ENTRIES) - set(data.get(m) or {})) for m in minions}
        missing = {m: e for m, e in missing.items() if e}
        if not missing:
            return data
        if time.monotonic() > deadline:
            pytest.fail(f"the mine lacks {missing} {wait} s after the minions started")
        time.sleep(1)


@pytest.fixture(scope="package")
def synced(minions, salt_cli, salt_run_cli):
    """Every host's membership in the mine, published by the minions'
    start-up mine run (no mine.update: pillar/mine.sls names core functions
    only); then modules synced from the master to every minion (for the
    tests that call them directly; a highstate syncs them itself), and the
    runners and states (served from salt/_runners, salt/_states) into the
    master's extension modules, as the master's highstate does on a real
    master (master_extmods.synced)."""
    published_mine(salt_run_cli, list(minions))
    ret = salt_cli.run("saltutil.sync_all", minion_tgt="*")
    assert ret.returncode == 0, ret
    ret = salt_run_cli.run("saltutil.sync_runners")
    assert ret.returncode == 0, ret
    ret = salt_run_cli.run("saltutil.sync_states")
    assert ret.returncode == 0, ret
    return minions


@pytest.fixture(scope="package")
def mpi_user(synced, salt_cli, scratch):
    """The MPI user made for real by the users state on the 'master' minion,
    removed again afterwards."""
    assert _free(TEST_USER["uid"]), f"uid {TEST_USER['uid']} is taken on this machine"
    (scratch / "home").mkdir(exist_ok=True)
    ret = salt_cli.run("state.apply", "cluster.users", minion_tgt="master")
    assert ret.returncode == 0, ret
    yield TEST_USER["name"]
    salt_cli.run("state.single", "user.absent", name=TEST_USER["name"], purge=True, minion_tgt="master")
    salt_cli.run("state.single", "group.absent", name=TEST_USER["group"], minion_tgt="master")


def _free(uid):
    try:
        pwd.getpwuid(uid)
        return False
    except KeyError:
        return True


@pytest.fixture
def local_hostfile(mpi_user, scratch, salt_cli):
    """Hydra runs ranks locally for hosts that are this machine."""
    ret = salt_cli.run("state.apply", "cluster.mpi.programs", minion_tgt="master")
    ok(ret)
    hostfile = scratch / "home" / mpi_user / "hosts"
    hostfile.write_text("localhost:4\n")
    return hostfile


def ok(ret):
    """Fail with the comments of the states that failed, not a wall of JSON."""
    if ret.returncode == 0:
        return
    problems = []
    data = ret.data if isinstance(ret.data, dict) else {"?": ret.data}
    if any("_|-" in key for key in data):  # one minion targeted: no minion level
        data = {"": data}
    for minion, states in data.items():
        if not isinstance(states, dict):
            problems.append(f"{minion}: {states}")
            continue
        for key, state in states.items():
            if isinstance(state, dict) and state.get("result") is False:
                problems.append(f"{minion}: {key.split('_|-')[1]}: {state.get('comment')}")
    pytest.fail(f"exit {ret.returncode}: " + ("\n".join(problems) or ret.stderr or str(ret.data)[:2000]))


def by_id(ret, minion=None):
    """A state run's results keyed by state ID."""
    data = ret.data if minion is None else ret.data[minion]
    assert isinstance(data, dict), data
    return {key.split("_|-")[1]: value for key, value in data.items()}
