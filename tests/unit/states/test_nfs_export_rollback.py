"""nfs_export.present never leaves a failed export live: the exports file is
restored (and re-exported) when ``exportfs -ra`` refuses the new one, and a
client list that reaches every host is refused before anything is written."""

import nfs_export
import pytest

OLD = "# keep me\n/srv/other 10.0.0.0/8(ro)\n/home/jobhandler 10.5.5.9(rw,sync)\n"


@pytest.fixture
def exportfs():
    """A fake `exportfs -ra`: fails while the exports file holds a line it
    should refuse, the way exportfs rejects an option or host it cannot use."""

    class ExportFs:
        calls = []
        seen = []
        refuse = "bad-host"

        def __call__(self, cmd, **kwargs):
            assert cmd == ["exportfs", "-ra"] and kwargs.get("python_shell") is False
            text = self.path.read_text() if self.path.exists() else ""
            self.calls.append(cmd)
            self.seen.append(text)
            if self.refuse in text:
                return {"retcode": 1, "stdout": "", "stderr": f"exportfs: Failed to resolve {self.refuse}"}
            return {"retcode": 0, "stdout": "", "stderr": ""}

    return ExportFs()


@pytest.fixture
def exports(tmp_path, exportfs, monkeypatch):
    path = tmp_path / "exports"
    path.write_text(OLD)
    exportfs.path = path
    monkeypatch.setattr(nfs_export.salt.utils.path, "which", lambda n: "/usr/sbin/exportfs")
    return path


@pytest.fixture
def configure_loader_modules(exportfs):
    return {nfs_export: {"__salt__": {"cmd.run_all": exportfs}, "__opts__": {"test": False}}}


def present(exports, clients, **kw):
    return nfs_export.present("/home/jobhandler", clients=clients, exports=str(exports), **kw)


def test_members_export_goes_live(exports, exportfs):
    ret = present(exports, ["10.5.5.9", "10.5.5.18"], options=["rw", "sync", "root_squash"])
    assert ret["result"] is True, ret
    assert exports.read_text().splitlines()[-1] == "/home/jobhandler 10.5.5.9(rw,sync,root_squash) 10.5.5.18(rw,sync,root_squash)"
    assert exportfs.calls == [["exportfs", "-ra"]]


def test_export_refused_by_exportfs_is_rolled_back(exports, exportfs):
    """exportfs -ra failed on the new file: the old file is put back and
    re-exported, so the server keeps serving the last good export."""
    ret = present(exports, ["10.5.5.9", "bad-host"])
    assert ret["result"] is False
    assert "Failed to resolve bad-host" in ret["comment"] and "previous export kept" in ret["comment"]
    assert exports.read_text() == OLD
    assert len(exportfs.calls) == 2 and exportfs.seen[-1] == OLD
    assert ret["changes"] == {}


def test_rollback_of_a_new_export_removes_its_line(tmp_path, exportfs, monkeypatch):
    monkeypatch.setattr(nfs_export.salt.utils.path, "which", lambda n: "/usr/sbin/exportfs")
    path = tmp_path / "exports"
    exportfs.path = path
    ret = present(path, ["bad-host"])
    assert ret["result"] is False
    assert not path.exists() or "/home/jobhandler" not in path.read_text()


@pytest.mark.parametrize("client", ["*", "0.0.0.0/0", "::/0", "*.*", "10.5.5.9/0"])
def test_export_to_everyone_refused_before_writing(exports, exportfs, client):
    ret = present(exports, ["10.5.5.9", client])
    assert ret["result"] is False and repr(client) in ret["comment"]
    assert exports.read_text() == OLD and exportfs.calls == []


def test_unchanged_export_is_not_reexported(exports, exportfs):
    ret = present(exports, ["10.5.5.9"], options=["rw", "sync"])
    assert ret["result"] is True and ret["changes"] == {} and exportfs.calls == []
