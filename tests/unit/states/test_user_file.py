"""user_file: files in a user's home, written as the user (here: this
process's user); a link in their place is replaced, never written through
(test=True honoured)."""

import os
import pwd
import stat

import pytest
import user_file

from tests.unit.states.conftest import plant

# salt-factories mocks the loader for a test module that holds this fixture itself
from tests.unit.states.conftest import configure_loader_modules  # noqa: F401

ME = pwd.getpwuid(os.geteuid()).pw_name


@pytest.mark.parametrize(
    "kind,replaced", [("symlink", "symlink"), ("hardlink", "file with 2 hard links")]
)
def test_user_file_link_replaced_not_written_through(tmp_path, kind, replaced):
    target = tmp_path / "outside"
    target.write_text("keep\n")
    target.chmod(0o644)
    name = tmp_path / "hosts"
    plant(kind, name, target)
    ret = user_file.managed(str(name), ME, contents="node1:2", mode="0600")
    assert ret["result"] is True and ret["changes"]["replaced"] == replaced
    assert target.read_text() == "keep\n" and stat.S_IMODE(target.stat().st_mode) == 0o644
    st = os.lstat(name)
    assert stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and stat.S_IMODE(st.st_mode) == 0o600
    assert name.read_text() == "node1:2\n"
    ret = user_file.managed(str(name), ME, contents="node1:2", mode="0600")
    assert ret["result"] is True and ret["changes"] == {}


def test_user_file_test_mode_touches_nothing(tmp_path):
    target = tmp_path / "outside"
    target.write_text("keep\n")
    name = tmp_path / "hosts"
    name.symlink_to(target)
    user_file.__opts__["test"] = True
    ret = user_file.managed(str(name), ME, contents="new")
    assert ret["result"] is None and ret["changes"]["replaced"] == "symlink"
    assert name.is_symlink() and target.read_text() == "keep\n"
    ret = user_file.directory(str(tmp_path / "bin"), ME)
    assert ret["result"] is None and not (tmp_path / "bin").exists()


def test_user_file_diff_mode_and_source(tmp_path):
    src = tmp_path / "cpi.c"
    src.write_bytes(b"int main(void){return 0;}\n")
    name = tmp_path / "copy.c"
    name.write_text("old\n")
    name.chmod(0o600)
    ret = user_file.managed(str(name), ME, source=str(src))
    assert ret["result"] is True and "-old" in ret["changes"]["diff"] and ret["changes"]["mode"] == "0644"
    assert name.read_bytes() == src.read_bytes() and stat.S_IMODE(name.stat().st_mode) == 0o644
    name.chmod(0o600)
    ino = name.stat().st_ino
    ret = user_file.managed(str(name), ME, source=str(src))
    # right content, wrong mode: fixed in place, not rewritten
    assert ret["changes"] == {"mode": "0644"} and name.stat().st_ino == ino


def test_user_file_directory_symlink_replaced(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    name = tmp_path / "bin"
    name.symlink_to(outside)
    ret = user_file.directory(str(name), ME, mode="0750")
    assert ret["result"] is True and ret["changes"]["replaced"] == "symlink"
    assert not name.is_symlink() and name.is_dir() and stat.S_IMODE(name.stat().st_mode) == 0o750
    assert outside.is_dir() and os.listdir(outside) == []
    assert user_file.directory(str(name), ME, mode="0750")["changes"] == {}
    (tmp_path / "file").write_text("")
    ret = user_file.directory(str(tmp_path / "file"), ME)
    assert ret["result"] is False and "not a directory" in ret["comment"]


def test_user_file_refuses_bad_arguments(tmp_path):
    assert "absolute" in user_file.managed("hosts", ME, contents="x")["comment"]
    assert "exactly one" in user_file.managed(str(tmp_path / "x"), ME)["comment"]
    ret = user_file.managed(str(tmp_path / "x"), "no-such-user-here", contents="x")
    assert ret["result"] is False and "'no-such-user-here' does not exist" in ret["comment"]
    user_file.__opts__["test"] = True
    ret = user_file.managed(str(tmp_path / "x"), "no-such-user-here", contents="x")
    assert ret["result"] is None and "once user no-such-user-here exists" in ret["comment"]
