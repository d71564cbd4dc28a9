"""The cluster runner (``_runners/saltcluster.py``) through Salt's real
runner loader: it loads beside Salt's own ``cluster`` runner."""

import os

import salt.loader

from tests.conftest import REPO


def test_runner_loads_beside_salts_own_cluster_runner(salt_factories, tmp_path):
    """Salt 3008.4 has a runner module named cluster; ours adds
    cluster.status to it instead of replacing it."""
    master = salt_factories.salt_master_daemon(
        "health-master", overrides={"runner_dirs": [str(REPO / "_runners")], "cachedir": str(tmp_path / "cache")}
    )
    runners = salt.loader.runner(master.config.copy())
    assert "cluster.status" in runners
    if os.path.exists(os.path.join(os.path.dirname(salt.loader.__file__), "..", "runners", "cluster.py")):
        assert "cluster.members" in runners  # Salt's own, still there
