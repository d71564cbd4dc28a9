"""mpi_program.built: compiled once and rebuilt when the source changes, the
old binary kept on a compile error, and a link at any of its files replaced,
never followed (test=True honoured)."""

import os
import stat

import mpi_program
import pytest

from tests.unit.states.conftest import plant

# salt-factories mocks the loader for a test module that holds this fixture itself
from tests.unit.states.conftest import configure_loader_modules  # noqa: F401


@pytest.fixture
def source(tmp_path):
    src = tmp_path / "cpi.c"
    src.write_text("int main(void){return 0;}\n")
    return src


def fake_mpicc(calls):
    def run_all(cmd, **kwargs):
        calls.append(cmd)
        out = cmd[cmd.index("-o") + 1]
        with open(out, "w") as fh:
            fh.write("binary")
        return {"retcode": 0, "stdout": "", "stderr": ""}

    return run_all


def test_program_built_once_then_up_to_date(tmp_path, source, calls, monkeypatch):
    monkeypatch.setattr(mpi_program.salt.utils.path, "which", lambda n: "/usr/bin/mpicc")
    mpi_program.__salt__["cmd.run_all"] = fake_mpicc(calls)
    binary = tmp_path / "cpi"
    ret = mpi_program.built(str(binary), str(source))
    assert ret["result"] is True and ret["changes"]["built"] == str(binary)
    assert binary.read_text() == "binary" and len(calls) == 1
    ret = mpi_program.built(str(binary), str(source))
    assert ret["result"] is True and ret["changes"] == {} and len(calls) == 1
    source.write_text("int main(void){return 1;}\n")
    ret = mpi_program.built(str(binary), str(source))
    assert ret["changes"] and len(calls) == 2


def test_program_test_mode(tmp_path, source, calls, monkeypatch):
    monkeypatch.setattr(mpi_program.salt.utils.path, "which", lambda n: "/usr/bin/mpicc")
    mpi_program.__opts__["test"] = True
    ret = mpi_program.built(str(tmp_path / "cpi"), str(source))
    assert ret["result"] is None and ret["changes"] and calls == []
    assert not (tmp_path / "cpi").exists()


def test_program_compile_error_keeps_old_binary(tmp_path, source, monkeypatch):
    monkeypatch.setattr(mpi_program.salt.utils.path, "which", lambda n: "/usr/bin/mpicc")
    binary = tmp_path / "cpi"
    binary.write_text("old")
    mpi_program.__salt__["cmd.run_all"] = lambda cmd, **kw: {"retcode": 1, "stdout": "", "stderr": "syntax error"}
    ret = mpi_program.built(str(binary), str(source))
    assert ret["result"] is False and "syntax error" in ret["comment"] and ret["changes"] == {}
    assert binary.read_text() == "old"


def test_program_missing_source_and_compiler(tmp_path, monkeypatch):
    ret = mpi_program.built(str(tmp_path / "x"), str(tmp_path / "x.c"))
    assert ret["result"] is False and "does not exist" in ret["comment"]
    (tmp_path / "x.c").write_text("")
    monkeypatch.setattr(mpi_program.salt.utils.path, "which", lambda n: None)
    ret = mpi_program.built(str(tmp_path / "x"), str(tmp_path / "x.c"))
    assert ret["result"] is False and "not found" in ret["comment"]


@pytest.mark.parametrize("planted", ["cpi", "cpi.sha256", "cpi.saltcluster-build"])
@pytest.mark.parametrize("kind", ["symlink", "hardlink"])
def test_program_links_replaced_never_followed(tmp_path, source, calls, monkeypatch, planted, kind):
    """A link at the binary, the stamp or the build output: rebuilt, the
    link's target untouched, the names regular files with one link."""
    monkeypatch.setattr(mpi_program.salt.utils.path, "which", lambda n: "/usr/bin/mpicc")
    mpi_program.__salt__["cmd.run_all"] = fake_mpicc(calls)
    target = tmp_path / "outside"
    target.write_text("not the program's\n")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    binary = bindir / "cpi"
    assert mpi_program.built(str(binary), str(source))["result"] is True
    if planted != "cpi":
        (bindir / "cpi.sha256").unlink()  # due for a rebuild either way
    plant(kind, bindir / planted, target)
    ret = mpi_program.built(str(binary), str(source))
    assert ret["result"] is True and ret["changes"]["built"] == str(binary), ret["comment"]
    assert target.read_text() == "not the program's\n" and target.stat().st_nlink == 1
    for name in ("cpi", "cpi.sha256"):
        st = os.lstat(bindir / name)
        assert stat.S_ISREG(st.st_mode) and st.st_nlink == 1
    assert binary.read_text() == "binary" and not os.path.lexists(bindir / "cpi.saltcluster-build")
    assert mpi_program.built(str(binary), str(source))["changes"] == {}
