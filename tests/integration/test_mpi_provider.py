"""The MPI provider for real through the master and its minions: on this
machine (Debian 12) the default is pypi, MPICH from PyPI's `mpich` wheel in a
venv at the (scratch) prefix.  Its MPICH does not hang in MPI_Finalize where
Debian 12's 4.0.2 does (ranks over TCP: 22-25 hangs in 30 runs)."""

import os
import subprocess

import pytest

from tests.integration.conftest import by_id, ok

VENV_ID = "cluster-mpi-package-mpi-venv-installed"
LINK_ID = "cluster-mpi-package-file-symlink-libmpich"
PROFILE_ID = "cluster-mpi-config-file-managed-profile"
HOSTS = ("gateway", "master", "node1", "node2")
RUNS = 20  # cpi over TCP, each bounded by RUN_TIMEOUT
RUN_TIMEOUT = 20


@pytest.fixture(scope="module")
def mpi_settings(synced, salt_cli):
    ret = salt_cli.run("cluster.settings", minion_tgt="master")
    ok(ret)
    return ret.data["mpi"]


@pytest.fixture(scope="module")
def prefix(scratch):
    return scratch / "mpich"  # integration pillar: mpi:pypi:prefix


def test_this_debian_12_host_gets_pypi(synced, salt_cli, mpi_settings, prefix):
    ret = salt_cli.run("grains.item", "osmajorrelease", "oscodename", minion_tgt="master")
    if (ret.data["osmajorrelease"], ret.data["oscodename"]) != (12, "bookworm"):
        pytest.skip(f"not Debian 12 here: {ret.data}")
    assert mpi_settings["provider"] == "pypi"
    assert mpi_settings["packages"] == ["gcc", "libc6-dev", "python3-venv"]
    assert mpi_settings["mpiexec"] == f"{prefix}/bin/mpiexec"
    assert mpi_settings["mpicc"] == f"{prefix}/bin/mpicc"


def test_package_test_mode_installs_nothing(mpi_settings, salt_cli, scratch):
    dry = scratch / "mpich-dry"
    pillar = {"saltcluster": {"mpi": {"provider": "pypi", "pypi": {"prefix": str(dry)}}}}
    ret = salt_cli.run("state.apply", "cluster.mpi.package", "test=True", pillar=pillar, minion_tgt="master")
    states = by_id(ret)
    assert states[VENV_ID]["result"] is None, states[VENV_ID]
    assert states[VENV_ID]["changes"]["installed"]["new"] == "mpich==5.0.2"
    assert not dry.exists()


def test_mpi_applied_on_every_host_then_unchanged(mpi_settings, salt_cli, scratch, prefix):
    if mpi_settings["provider"] != "pypi":
        pytest.skip("the debian provider: nothing but packages")
    # the first host installs (unless an earlier test's cluster.mpi.programs
    # did); four at once would race pip in the one shared prefix
    ret = salt_cli.run("state.apply", "cluster.mpi", minion_tgt="master")
    ok(ret)
    for rel in ("bin/mpiexec", "bin/mpicc", "bin/hydra_pmi_proxy", "lib/libmpi.so.12"):
        assert os.access(prefix / rel, os.R_OK), rel
    assert os.readlink(prefix / "lib/libmpich.so.12") == "libmpi.so.12"
    assert oct((prefix / "bin/mpiexec").stat().st_mode & 0o777) == "0o755"
    # every host: the prefix is already right (same path), the profile is new
    ret = salt_cli.run("state.apply", "cluster.mpi", minion_tgt="*")
    ok(ret)
    for host in HOSTS:
        states = by_id(ret, host)
        assert states[VENV_ID]["changes"] == {} and states[LINK_ID]["changes"] == {}, host
        assert (scratch / host / "saltcluster-mpi.sh").is_file()
    # and again: nothing at all changes
    ret = salt_cli.run("state.apply", "cluster.mpi", minion_tgt="*")
    ok(ret)
    changed = {(h, k) for h in HOSTS for k, v in by_id(ret, h).items() if v["changes"]}
    assert changed == set()


def _as_user_login(user, script, timeout):
    """``script`` in a login shell of ``user`` (su -: a fresh environment)."""
    return subprocess.run(
        ["su", "-", user, "-c", script], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def test_login_shell_runs_plain_mpiexec(local_hostfile, mpi_user, mpi_settings, scratch):
    """What a user types: no -genv, no path; the profile (here in scratch, on
    hosts /etc/profile.d/saltcluster-mpi.sh) provides it all."""
    profile = scratch / "master" / "saltcluster-mpi.sh"
    assert profile.is_file()
    res = _as_user_login(
        mpi_user, f". {profile} && command -v mpiexec && echo UCX_TLS=$UCX_TLS && mpiexec -f hosts -n 4 bin/cpi", 60
    )
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == mpi_settings["mpiexec"]
    assert lines[1] == f"UCX_TLS={mpi_settings['ucx_tls']}"
    assert "pi is approximately 3.14159265" in res.stdout


def _runs(salt_cli, program, count, **extra):
    """``count`` runs of ``program`` on 4 ranks over TCP; the results."""
    results = []
    for _ in range(count):
        ret = salt_cli.run(
            "mpi.run", program, "np=4", f"timeout={RUN_TIMEOUT}", 'env={"UCX_TLS": "tcp,self"}',
            *[f"{k}={v}" for k, v in extra.items()], minion_tgt="master", _timeout=RUN_TIMEOUT + 60,
        )  # fmt: skip
        assert isinstance(ret.data, dict), ret
        results.append(ret.data)
    return results


def test_cpi_over_tcp_never_hangs(local_hostfile, salt_cli, mpi_settings):
    """The reproduction of Debian 12's finalize hang, through mpi.run."""
    results = _runs(salt_cli, "cpi", RUNS)
    hung = [r for r in results if r["timed_out"]]
    failed = [r for r in results if r["retcode"] != 0 and not r["timed_out"]]
    assert (len(hung), len(failed)) == (0, 0), (hung + failed)[:3]
    assert all("pi is approximately 3.14159265" in r["stdout"] for r in results)
    assert all(r["command"][0] == mpi_settings["mpiexec"] for r in results)
    assert "UCX_TLS" in results[0]["command"] and "tcp,self" in results[0]["command"]
    assert max(r["duration"] for r in results) < RUN_TIMEOUT


def test_program_built_by_debians_mpicc_runs_on_pypi(local_hostfile, mpi_user, salt_cli, mpi_settings, prefix):
    if mpi_settings["provider"] != "pypi":
        pytest.skip("the debian provider runs its own programs")
    if not os.access("/usr/bin/mpicc", os.X_OK):
        pytest.skip("Debian's mpicc (libmpich-dev) is not installed")
    home = local_hostfile.parent
    binary = home / "bin" / "cpi-debian"
    ret = salt_cli.run(
        "state.single", "mpi_program.built", name=str(binary), source=str(home / "src" / "cpi.c"),
        mpicc="/usr/bin/mpicc", runas=mpi_user, minion_tgt="master",
    )  # fmt: skip
    ok(ret)
    needed = subprocess.run(["readelf", "-d", str(binary)], capture_output=True, text=True, check=True).stdout
    assert "[libmpich.so.12]" in needed  # Debian's MPICH soname, not the wheel's libmpi.so.12
    # mpi.run's environment sends it to the prefix's libmpich.so.12 (-> libmpi.so.12)
    ret = salt_cli.run(
        "mpi.run", "cpi-debian", "np=2", 'env={"LD_DEBUG": "libs"}', minion_tgt="master", _timeout=90
    )
    assert ret.data["retcode"] == 0, ret.data
    assert f"calling init: {prefix}/lib/libmpich.so.12" in ret.data["stderr"]
    assert "calling init: /usr/lib/x86_64-linux-gnu/libmpich.so.12" not in ret.data["stderr"]
    results = _runs(salt_cli, "cpi-debian", 10)
    assert [r for r in results if r["timed_out"] or r["retcode"] != 0] == []
    assert all("pi is approximately 3.14159265" in r["stdout"] for r in results)
