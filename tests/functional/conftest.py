"""Real Salt loaders (salt-factories ``Loaders``) over the repository's tree,
pillar and modules, with membership from synthetic mine data."""

import hashlib
import json
import pathlib
import tempfile

import pytest
import salt.utils.yaml
from saltfactories.utils.functional import Loaders

from tests.conftest import REPO
from tests.support.mine import MINE, published

DEFAULT_NGINX = salt.utils.yaml.safe_load((REPO / "salt/cluster/parameters/defaults.yaml").read_text())[
    "saltcluster"
]["nginx"]
# What the tests may never change: the host's own nginx (they run as root).
HOST_NGINX = (
    DEFAULT_NGINX["config_file"],
    str(pathlib.Path(DEFAULT_NGINX["config_file"]).parent / DEFAULT_NGINX["site_dir"]),
    DEFAULT_NGINX["check_command"],
)


def scratch_nginx(workdir):
    """nginx's files in the scratch directory: the base config (the site
    directory beside it) and the checker cluster.nginx installs."""
    return {"config_file": str(workdir / "nginx/nginx.conf"), "check_command": str(workdir / "bin/nginx-check")}


def staging_dirs():
    """The checker's staging directories left in the temporary directory."""
    return set(pathlib.Path(tempfile.gettempdir()).glob("saltcluster-nginx.*"))


def by_id(ret):
    """A state run's results keyed by state ID."""
    raw = getattr(ret, "raw", ret)
    assert isinstance(raw, dict), raw
    return {key.split("_|-")[1]: value for key, value in raw.items()}


def snapshot(paths):
    """What is at each of ``paths``: a directory's names, a file's digest, or None."""
    found = {}
    for path in map(pathlib.Path, paths):
        if path.is_dir():
            found[path] = sorted(p.name for p in path.iterdir())
        elif path.exists():
            found[path] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            found[path] = None
    return found


@pytest.fixture(scope="module", autouse=True)
def host_nginx_untouched():
    before = snapshot(HOST_NGINX)
    yield
    assert snapshot(HOST_NGINX) == before


@pytest.fixture(scope="module")
def fake_mine_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("mine") / "mine.json"
    path.write_text(json.dumps(published(MINE)))
    return path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("hostroot")


@pytest.fixture(scope="module")
def pillar_root(tmp_path_factory, workdir):
    """The repo's pillar plus an override that points every file the states
    write into a scratch directory, and picks a uid that is free here."""
    root = tmp_path_factory.mktemp("pillar")
    (root / "top.sls").write_text("base:\n  '*':\n    - saltcluster\n    - mine\n    - functional\n")
    (root / "functional.sls").write_text(
        json.dumps(
            {
                "saltcluster": {
                    "network": {"hosts_file": str(workdir / "hosts")},
                    "user": {"home": str(workdir / "home"), "uid": 64123, "gid": 64123, "name": "scfunc"},
                    "nfs": {"exports_file": str(workdir / "exports")},
                    "ssh": {"known_hosts_file": str(workdir / "ssh_known_hosts")},
                    "nginx": scratch_nginx(workdir),
                    "web": {"index_file": str(workdir / "www/index.html")},
                    "mpi": {
                        "profile_file": str(workdir / "saltcluster-mpi.sh"),
                        "pypi": {"prefix": str(workdir / "mpich")},
                    },
                }
            }
        )
    )
    return root


def make_minion_opts(salt_factories, fake_mine_file, pillar_root, minion_id, roles, grains=None):
    """A masterless minion's opts over the repo's tree; ``grains`` are set
    over the real ones (e.g. another Debian release)."""
    factory = salt_factories.salt_minion_daemon(
        minion_id,
        overrides={
            "file_client": "local",
            "file_roots": {"base": [str(REPO / "salt")]},
            "pillar_roots": {"base": [str(pillar_root), str(REPO / "pillar")]},
            "module_dirs": [str(REPO / "tests/functional/fakes")],
            "saltcluster_fake_mine": str(fake_mine_file),
            "grains": {"roles": roles, **(grains or {})},
            "enable_fqdns_grains": False,
        },
    )
    return factory.config.copy()


@pytest.fixture(scope="module")
def minion_opts(salt_factories, fake_mine_file, pillar_root, request):
    roles = getattr(request.module, "ROLES", ["master", "compute", "gateway"])
    minion_id = getattr(request.module, "MINION_ID", "node1")
    return make_minion_opts(salt_factories, fake_mine_file, pillar_root, minion_id, roles)


@pytest.fixture(scope="module")
def loaders(minion_opts):
    return Loaders(minion_opts, loaded_base_name=f"{__name__}.loaded")


@pytest.fixture(autouse=True)
def reset_loaders_state(loaders):
    try:
        yield
    finally:
        loaders.reset_state()


@pytest.fixture
def modules(loaders):
    return loaders.modules
