"""The MPI provider per Debian release, through real loaders: grains of
Debian 12 and Debian 13 set over this host's, the real tree and pillar."""

import os
import subprocess

import pytest

from tests.functional.conftest import make_minion_opts

RELEASES = {
    "debian12": {"os": "Debian", "os_family": "Debian", "osmajorrelease": 12, "oscodename": "bookworm"},
    "debian13": {"os": "Debian", "os_family": "Debian", "osmajorrelease": 13, "oscodename": "trixie"},
}
DEBIAN_PACKAGES = ["mpich", "libmpich-dev", "gcc", "libc6-dev"]
PYPI_PACKAGES = ["gcc", "libc6-dev", "python3-venv"]
VENV_ID = "cluster-mpi-package-mpi-venv-installed"
LINK_ID = "cluster-mpi-package-file-symlink-libmpich"


@pytest.fixture(scope="module", params=sorted(RELEASES))
def release(request):
    return request.param


@pytest.fixture(scope="module")
def minion_opts(salt_factories, fake_mine_file, pillar_root, release):
    return make_minion_opts(
        salt_factories, fake_mine_file, pillar_root, f"mpi-{release}", ["master"], RELEASES[release]
    )


@pytest.fixture
def prefix(workdir):
    return str(workdir / "mpich")  # functional pillar: mpi:pypi:prefix


def _arg(state, name):
    return next(arg[name] for arg in state if isinstance(arg, dict) and name in arg)


def test_grains_are_the_releases(modules, release):
    assert modules.grains.get("oscodename") == RELEASES[release]["oscodename"]


def test_provider_packages_and_tools_per_release(modules, release, prefix):
    mpi = modules.cluster.settings()["mpi"]
    if release == "debian12":
        assert mpi["provider"] == "pypi" and mpi["packages"] == PYPI_PACKAGES
        assert (mpi["mpiexec"], mpi["mpicc"]) == (f"{prefix}/bin/mpiexec", f"{prefix}/bin/mpicc")
    else:
        assert mpi["provider"] == "debian" and mpi["packages"] == DEBIAN_PACKAGES
        assert (mpi["mpiexec"], mpi["mpicc"]) == ("/usr/bin/mpiexec", "/usr/bin/mpicc")


def test_mpi_sls_per_release(modules, release, prefix):
    high = modules.state.show_sls("cluster.mpi")
    assert isinstance(high, dict), high
    pkgs = _arg(high["cluster-mpi-package-pkg-installed"]["pkg"], "pkgs")
    profile = high["cluster-mpi-config-file-managed-profile"]["file"]
    assert _arg(profile, "name").endswith("/saltcluster-mpi.sh")
    if release == "debian12":
        assert pkgs == PYPI_PACKAGES
        venv = high[VENV_ID]["mpi_venv"]
        assert (_arg(venv, "name"), _arg(venv, "requirement")) == (prefix, "mpich==5.0.2")
        link = high[LINK_ID]["file"]
        assert (_arg(link, "name"), _arg(link, "target")) == (f"{prefix}/lib/libmpich.so.12", "libmpi.so.12")
    else:
        assert pkgs == DEBIAN_PACKAGES
        assert VENV_ID not in high and LINK_ID not in high


def test_programs_built_with_the_providers_mpicc(modules, release, prefix):
    high = modules.state.show_sls("cluster.mpi.programs")
    mpicc = _arg(high["cluster-mpi-programs-mpi-program-built-cpi"]["mpi_program"], "mpicc")
    assert mpicc == (f"{prefix}/bin/mpicc" if release == "debian12" else "/usr/bin/mpicc")


@pytest.mark.parametrize("provider", ["debian", "pypi"])
def test_pillar_provider_wins_over_the_release(modules, provider, prefix):
    high = modules.state.show_sls("cluster.mpi.package", pillar={"saltcluster": {"mpi": {"provider": provider}}})
    pkgs = _arg(high["cluster-mpi-package-pkg-installed"]["pkg"], "pkgs")
    assert pkgs == (DEBIAN_PACKAGES if provider == "debian" else PYPI_PACKAGES)
    assert (VENV_ID in high) == (provider == "pypi")


def test_unknown_provider_stops_rendering_naming_it(modules):
    ret = modules.state.show_sls("cluster.mpi", pillar={"saltcluster": {"mpi": {"provider": "conda"}}})
    assert "saltcluster:mpi:provider: 'conda' is invalid" in str(ret)


def test_package_test_mode_touches_nothing(modules, release, prefix):
    ret = modules.state.sls("cluster.mpi.package", test=True)
    states = {key.split("_|-")[1]: value for key, value in ret.raw.items()}
    assert not {k: v["comment"] for k, v in states.items() if v["result"] is False}
    if release == "debian12":
        assert states[VENV_ID]["result"] is None
        assert states[VENV_ID]["changes"]["installed"]["new"] == "mpich==5.0.2"
    assert not os.path.exists(prefix)


def test_login_profile_per_release(modules, release, prefix, workdir):
    """The profile the config state writes, rendered from the real template
    and settings, then sourced by sh (dash) and bash."""
    mpi = modules.cluster.settings(overrides={"mpi": {"ucx_net_device": "vec0"}})["mpi"]
    path = workdir / f"profile-{release}.sh"
    ret = modules.state.single(
        "file.managed", name=str(path), source="salt://cluster/files/mpi/profile.sh.jinja",
        template="jinja", context={"mpi": mpi},
    )  # fmt: skip
    assert all(r["result"] for r in ret.raw.values()), ret.raw
    for shell in ("sh", "bash"):
        out = subprocess.run(
            [shell, "-c", f'. {path}; . {path}; echo "$PATH|$LD_LIBRARY_PATH|$UCX_TLS|$UCX_NET_DEVICES"'],
            env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        if release == "debian12":
            # sourced twice: each directory once
            assert out == f"{prefix}/bin:/usr/bin:/bin|{prefix}/lib|tcp,sm,self|vec0"
        else:
            assert out == "/usr/bin:/bin||tcp,sm,self|vec0"
