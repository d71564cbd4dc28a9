"""cluster_user.uid_free: the holder of the MPI user's uid is named, or
relocated when it is a system account (test=True honoured)."""

import pwd

import cluster_user
import pytest

# salt-factories mocks the loader for a test module that holds this fixture itself
from tests.unit.states.conftest import configure_loader_modules  # noqa: F401


class Pw:
    def __init__(self, name, uid):
        self.pw_name, self.pw_uid = name, uid


@pytest.fixture
def passwd(monkeypatch):
    users = {100: Pw("messagebus", 100), 101: Pw("_apt", 101)}

    def getpwuid(uid):
        return users[uid]

    monkeypatch.setattr(cluster_user.pwd, "getpwuid", getpwuid)
    monkeypatch.setattr(cluster_user.pwd, "getpwall", lambda: list(users.values()) + [Pw("sys", 999)])
    return users


def test_uid_free_names_holder(passwd, calls):
    ret = cluster_user.uid_free("jobhandler", 100)
    assert ret["result"] is False
    assert "held by 'messagebus'" in ret["comment"] and "relocate_uid_holder" in ret["comment"]
    assert calls == []


def test_uid_free_when_free_or_owned(passwd):
    assert cluster_user.uid_free("jobhandler", 4242)["result"] is True
    passwd[100] = Pw("jobhandler", 100)
    assert cluster_user.uid_free("jobhandler", 100)["comment"] == "uid 100 already belongs to jobhandler"


def test_uid_relocate_moves_system_account(passwd, calls):
    ret = cluster_user.uid_free("jobhandler", 100, relocate=True, restart_services=["dbus"])
    assert ret["result"] is True
    assert ret["changes"] == {"messagebus": {"old": 100, "new": 998}}
    assert calls[0] == ["usermod", "-u", "998", "messagebus"]
    assert calls[1][:4] == ["find", "/", "-xdev", "-uid"]


def test_uid_relocate_test_mode(passwd, calls):
    cluster_user.__opts__["test"] = True
    ret = cluster_user.uid_free("jobhandler", 100, relocate=True)
    assert ret["result"] is None and ret["changes"] and calls == []


def test_uid_relocate_refuses_regular_user(passwd, calls):
    passwd[1000] = Pw("alice", 1000)
    ret = cluster_user.uid_free("jobhandler", 1000, relocate=True)
    assert ret["result"] is False and "'alice'" in ret["comment"] and calls == []


def test_uid_relocate_usermod_failure(passwd):
    cluster_user.__salt__["cmd.run_all"] = lambda cmd, **kw: {"retcode": 8, "stdout": "", "stderr": "user busy"}
    ret = cluster_user.uid_free("jobhandler", 100, relocate=True)
    assert ret["result"] is False and "user busy" in ret["comment"]


def test_real_passwd_is_read_when_not_patched():
    """uid 0 is root on every machine: unpatched, uid_free asks the real
    database and names root as the holder (and as the owner of its uid)."""
    assert pwd.getpwuid(0).pw_name == "root"
    ret = cluster_user.uid_free("jobhandler", 0)
    assert ret["result"] is False and "uid 0 wanted for jobhandler is held by 'root'" in ret["comment"]
    ret = cluster_user.uid_free("root", 0)
    assert ret == {"name": "root", "changes": {}, "result": True, "comment": "uid 0 already belongs to root"}
