"""nfs_export: present writes its one line and re-exports, absent removes
it, bad input is refused before anything is written (test=True honoured).
The rollback of an export exportfs refuses: test_nfs_export_rollback.py."""

import nfs_export
import pytest

# salt-factories mocks the loader for a test module that holds this fixture itself
from tests.unit.states.conftest import configure_loader_modules  # noqa: F401


@pytest.fixture
def exports(tmp_path):
    path = tmp_path / "exports"
    path.write_text("# keep me\n/srv/other 10.0.0.0/8(ro)\n/home/jobhandler 1.2.3.4(rw)\n")
    return path


def present(exports, **kw):
    args = {"clients": ["10.5.5.0/24"], "options": ["rw", "sync"], "exports": str(exports)}
    args.update(kw)
    return nfs_export.present("/home/jobhandler", **args)


def test_export_replaces_only_its_line_and_reexports(exports, calls, monkeypatch):
    monkeypatch.setattr(nfs_export.salt.utils.path, "which", lambda n: "/usr/sbin/exportfs")
    ret = present(exports)
    assert ret["result"] is True
    assert ret["changes"] == {
        "old": "/home/jobhandler 1.2.3.4(rw)",
        "new": "/home/jobhandler 10.5.5.0/24(rw,sync)",
    }
    assert exports.read_text() == (
        "# keep me\n/srv/other 10.0.0.0/8(ro)\n/home/jobhandler 10.5.5.0/24(rw,sync)\n"
    )
    assert calls == [["exportfs", "-ra"]]
    # idempotent: no change, no re-export
    ret = present(exports)
    assert ret["result"] is True and ret["changes"] == {} and calls == [["exportfs", "-ra"]]


def test_export_test_mode_touches_nothing(exports, calls):
    before = exports.read_text()
    nfs_export.__opts__["test"] = True
    ret = present(exports)
    assert ret["result"] is None and ret["changes"]["new"].startswith("/home/jobhandler 10.5.5.0/24")
    assert exports.read_text() == before and calls == []


def test_export_creates_missing_file(tmp_path, monkeypatch):
    monkeypatch.setattr(nfs_export.salt.utils.path, "which", lambda n: None)
    ret = present(tmp_path / "new-exports")
    assert ret["result"] is True and "exportfs not found" in ret["comment"]
    assert (tmp_path / "new-exports").read_text() == "/home/jobhandler 10.5.5.0/24(rw,sync)\n"


@pytest.mark.parametrize(
    "kw,bad",
    [
        ({"clients": ["10.5.5.0/24 *(rw)"]}, "'10.5.5.0/24 *(rw)'"),
        ({"clients": []}, "no clients"),
        ({"options": ["rw", "no root squash"]}, "'no root squash'"),
    ],
)
def test_export_refuses_bad_input_before_writing(exports, kw, bad, calls):
    before = exports.read_text()
    ret = present(exports, **kw)
    assert ret["result"] is False and bad in ret["comment"]
    assert exports.read_text() == before and calls == []


def test_export_refuses_relative_path(exports):
    ret = nfs_export.present("home/x", clients=["a"], exports=str(exports))
    assert ret["result"] is False and "'home/x'" in ret["comment"]


def test_export_reexport_failure_reported(exports, monkeypatch):
    monkeypatch.setattr(nfs_export.salt.utils.path, "which", lambda n: "/usr/sbin/exportfs")
    nfs_export.__salt__["cmd.run_all"] = lambda cmd, **kw: {"retcode": 1, "stdout": "", "stderr": "nfsd gone"}
    ret = present(exports)
    assert ret["result"] is False and "nfsd gone" in ret["comment"]


def test_export_absent(exports, calls, monkeypatch):
    monkeypatch.setattr(nfs_export.salt.utils.path, "which", lambda n: "/usr/sbin/exportfs")
    ret = nfs_export.absent("/srv/other", exports=str(exports))
    assert ret["changes"] == {"old": "/srv/other 10.0.0.0/8(ro)", "new": None}
    assert "/srv/other" not in exports.read_text() and "# keep me" in exports.read_text()
    assert nfs_export.absent("/srv/other", exports=str(exports))["changes"] == {}
