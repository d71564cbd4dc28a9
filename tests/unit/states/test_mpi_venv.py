"""mpi_venv.installed: the pypi provider's MPICH in a venv at one prefix
(test=True honoured)."""

import os

import mpi_venv
import pytest

# salt-factories mocks the loader for a test module that holds this fixture itself
from tests.unit.states.conftest import configure_loader_modules  # noqa: F401


@pytest.fixture
def pip(tmp_path):
    """A stand-in for `python -m venv` and pip: records each command and lays
    out what the real ones would (the wheel's bin and lib files)."""
    log = {"calls": [], "fail": None, "layout": mpi_venv.LAYOUT}

    def run_all(cmd, **kwargs):
        log["calls"].append((cmd, kwargs))
        if log["fail"] and log["fail"] in cmd:
            return {"retcode": 1, "stdout": "", "stderr": f"ERROR: {log['fail']} failed"}
        if cmd[1:3] == ["-m", "venv"]:
            prefix = cmd[3]
            os.makedirs(os.path.join(prefix, "bin"))
            open(os.path.join(prefix, "pyvenv.cfg"), "w").close()
            os.symlink(cmd[0], os.path.join(prefix, "bin", "python"))
        else:
            prefix = os.path.dirname(os.path.dirname(cmd[0]))
            for rel in log["layout"]:
                os.makedirs(os.path.dirname(os.path.join(prefix, rel)), exist_ok=True)
                open(os.path.join(prefix, rel), "w").close()
        return {"retcode": 0, "stdout": "", "stderr": ""}

    mpi_venv.__salt__["cmd.run_all"] = run_all
    return log


def venv(prefix, req="mpich==5.0.2"):
    return mpi_venv.installed(str(prefix), requirement=req, python="/usr/bin/python3")


def test_venv_created_then_unchanged(tmp_path, pip):
    prefix = tmp_path / "opt/mpich"
    ret = venv(prefix)
    assert ret["result"] is True, ret["comment"]
    assert ret["changes"] == {
        "venv": f"{prefix} from /usr/bin/python3",
        "installed": {"old": None, "new": "mpich==5.0.2"},
    }
    (venv_cmd, venv_kw), (pip_cmd, pip_kw) = pip["calls"]
    assert venv_cmd == ["/usr/bin/python3", "-m", "venv", str(prefix)]
    assert pip_cmd[:4] == [str(prefix / "bin/python"), "-m", "pip", "install"] and pip_cmd[-1] == "mpich==5.0.2"
    # readable by the MPI user; never through a shell
    assert all(kw["umask"] == "022" and kw["python_shell"] is False for kw in (venv_kw, pip_kw))
    # re-apply: nothing to do, pip not even asked
    ret = venv(prefix)
    assert ret["result"] is True and ret["changes"] == {} and len(pip["calls"]) == 2


def test_venv_test_mode_touches_nothing(tmp_path, pip):
    mpi_venv.__opts__["test"] = True
    ret = venv(tmp_path / "mpich")
    assert ret["result"] is None and ret["changes"]["installed"]["new"] == "mpich==5.0.2"
    assert "would be installed" in ret["comment"]
    assert pip["calls"] == [] and not (tmp_path / "mpich").exists()


def test_venv_new_requirement_reinstalls_without_a_new_venv(tmp_path, pip):
    venv(tmp_path)
    ret = venv(tmp_path, "mpich==5.0.3")
    assert ret["result"] is True
    assert ret["changes"] == {"installed": {"old": "mpich==5.0.2", "new": "mpich==5.0.3"}}
    assert [c[2] for c, _ in pip["calls"]] == ["venv", "pip", "pip"] and pip["calls"][-1][0][-1] == "mpich==5.0.3"
    assert "--force-reinstall" in pip["calls"][-1][0]


def test_venv_local_wheel_reinstalled_when_its_content_changes(tmp_path, pip):
    wheel = tmp_path / "mpich-5.0.2-py3-none-manylinux_2_28_x86_64.whl"
    wheel.write_bytes(b"one")
    prefix = tmp_path / "prefix"
    assert venv(prefix, str(wheel))["result"] is True
    assert venv(prefix, str(wheel))["changes"] == {}
    wheel.write_bytes(b"two")
    ret = venv(prefix, str(wheel))
    assert ret["changes"] and len(pip["calls"]) == 3


def test_venv_files_removed_by_hand_are_reinstalled(tmp_path, pip):
    venv(tmp_path)
    (tmp_path / "lib/libmpi.so.12").unlink()
    ret = venv(tmp_path)
    assert ret["result"] is True and ret["changes"] and (tmp_path / "lib/libmpi.so.12").exists()


def test_venv_pip_failure_reported_and_retried(tmp_path, pip):
    pip["fail"] = "mpich==5.0.2"
    ret = venv(tmp_path / "p")
    assert ret["result"] is False and "ERROR: mpich==5.0.2 failed" in ret["comment"]
    assert not (tmp_path / "p" / mpi_venv.STAMP).exists()
    pip["fail"] = None
    ret = venv(tmp_path / "p")
    assert ret["result"] is True and ret["changes"]["installed"]["new"] == "mpich==5.0.2"
    assert "venv" not in ret["changes"]  # made by the failed run already


def test_venv_not_mpich_refused(tmp_path, pip):
    pip["layout"] = ("lib/python3.11/site-packages/numpy/__init__.py",)
    ret = venv(tmp_path, "numpy")
    assert ret["result"] is False and "bin/mpiexec" in ret["comment"] and "MPICH's wheel" in ret["comment"]
    assert not (tmp_path / mpi_venv.STAMP).exists()


def test_venv_missing_python_named(tmp_path, pip):
    ret = mpi_venv.installed(str(tmp_path / "p"), requirement="mpich==5.0.2", python="/nonexistent/python3")
    assert ret["result"] is False and "/nonexistent/python3" in ret["comment"] and pip["calls"] == []
