"""
File operations done as a user, never through a link that user planted.

The states that write into the MPI user's home run as root, but every name
under that home is the user's to replace: a symlink ``~/hosts`` to
``/etc/shadow``, or a hard link to it, must not make root write or chown
``/etc/shadow``.  Each operation here runs in a child process that has
dropped to the user's uid, gid and groups, so the kernel's own permission
checks apply to whatever the user planted, and it:

- opens existing names with ``O_NOFOLLOW`` and judges them by ``fstat`` of
  the open file (regular, owned by the user, one link), never by path;
- writes a new file to a fresh name in the same directory (``O_EXCL``,
  ``O_NOFOLLOW``), sets its group and mode on the open descriptor and renames
  it over the name: a rename replaces the link name, never its target;
- never chowns anything but its own fresh descriptor.

The child reports back as JSON only (never pickle: its output is the user's
to shape).  With ``user`` unset the operations run in this process as they
are (root's own files).
"""

import base64
import difflib
import errno
import grp
import json
import os
import pwd
import secrets
import stat

from salt.exceptions import CommandExecutionError

__virtualname__ = "userfs"

TMP_SUFFIX = ".saltcluster-tmp"


def __virtual__():
    if not hasattr(os, "fork") or not hasattr(os, "O_NOFOLLOW"):
        return (False, "userfs needs fork() and O_NOFOLLOW (POSIX)")
    return __virtualname__


# -- acting as the user: a forked child with only the user's ids ---------------


def _ids(user, group=None):
    """(uid, gid of the user, gid wanted for files or None, groups)."""
    if user is None:
        uid, gid = os.geteuid(), os.getegid()
        groups = None
    else:
        try:
            pw = pwd.getpwnam(user)
        except KeyError:
            raise CommandExecutionError(f"user {user!r} does not exist") from None
        uid, gid = pw.pw_uid, pw.pw_gid
        groups = os.getgrouplist(pw.pw_name, pw.pw_gid)
    want = None
    if group is not None:
        try:
            want = grp.getgrnam(group).gr_gid if isinstance(group, str) else int(group)
        except KeyError:
            raise CommandExecutionError(f"group {group!r} does not exist") from None
    return uid, gid, want, groups


def _as_user(user, func, *args):
    """``func(*args)`` as ``user`` (a forked child that dropped to the user's
    uid, gid and groups); its JSON-able return value, or
    CommandExecutionError with the child's error."""
    uid, gid, _, groups = _ids(user)
    if user is None or (os.geteuid() == uid and os.geteuid() != 0):
        try:
            return func(*args)
        except OSError as exc:
            raise CommandExecutionError(_oserror(exc)) from None
    if os.geteuid() != 0:
        raise CommandExecutionError(f"acting as {user!r} needs root")
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        code = 0
        try:
            os.close(rfd)
            os.setgroups(groups)
            os.setgid(gid)
            os.setuid(uid)
            os.umask(0o077)
            try:
                out = {"ok": func(*args)}
            except OSError as exc:
                out = {"error": _oserror(exc)}
            except Exception as exc:  # pylint: disable=broad-except
                out = {"error": f"{type(exc).__name__}: {exc}"}
            data = json.dumps(out).encode()
            while data:
                data = data[os.write(wfd, data) :]
        except BaseException:  # pylint: disable=broad-except
            code = 1
        finally:
            os._exit(code)  # pylint: disable=protected-access
    os.close(wfd)
    chunks = []
    try:
        while True:
            chunk = os.read(rfd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(rfd)
        _, status = os.waitpid(pid, 0)
    try:
        out = json.loads(b"".join(chunks))
    except ValueError:
        raise CommandExecutionError(f"the child acting as {user!r} failed (wait status {status})") from None
    if "error" in out:
        raise CommandExecutionError(out["error"])
    return out["ok"]


def _oserror(exc):
    where = f": {exc.filename}" if exc.filename else ""
    return f"{exc.strerror or exc}{where}"


def _kind(mode):
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "special file"


def _describe(path, read, follow=False):
    """What is at ``path`` (not following a final symlink unless ``follow``):
    kind, uid, gid, mode, nlink and, for a regular file the caller may read
    and ``read`` asks for, its content (base64)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return {"kind": None}
    except OSError as exc:
        # ELOOP: a symlink; EACCES: not the user's to read
        if exc.errno not in (errno.ELOOP, errno.EACCES, errno.EPERM, errno.ENXIO, errno.EWOULDBLOCK):
            raise
        try:
            st = os.stat(path) if follow else os.lstat(path)
        except FileNotFoundError:
            return {"kind": None}
        info = {"kind": _kind(st.st_mode), "uid": st.st_uid, "gid": st.st_gid,
                "mode": stat.S_IMODE(st.st_mode), "nlink": st.st_nlink}  # fmt: skip
        if exc.errno == errno.EACCES:
            info["unreadable"] = True
        return info
    try:
        st = os.fstat(fd)
        info = {"kind": _kind(st.st_mode), "uid": st.st_uid, "gid": st.st_gid,
                "mode": stat.S_IMODE(st.st_mode), "nlink": st.st_nlink}  # fmt: skip
        if read and info["kind"] == "file":
            chunks = []
            while True:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
            info["content"] = base64.b64encode(b"".join(chunks)).decode()
        return info
    finally:
        os.close(fd)


def _write_new(path, data, mode, gid):
    """``data`` to a fresh file beside ``path``, renamed over ``path``."""
    directory, base = os.path.split(path)
    for _ in range(10):
        tmp = os.path.join(directory, f".{base}.{secrets.token_hex(6)}{TMP_SUFFIX}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            break
        except FileExistsError:
            continue
    else:
        raise OSError(errno.EEXIST, "no free temporary name", path)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if gid is not None and os.fstat(fd).st_gid != gid:
                os.fchown(fd, -1, gid)
            os.fchmod(fd, 0o644 if mode is None else mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return True


def _fix_meta(path, mode, gid, uid):
    """Group and mode of the regular file at ``path``, on a descriptor opened
    without following links, only if it is still one the user owns alone."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != uid or st.st_nlink != 1:
            raise OSError(errno.EAGAIN, "changed while being managed", path)
        if gid is not None and st.st_gid != gid:
            os.fchown(fd, -1, gid)
        if mode is not None and stat.S_IMODE(st.st_mode) != mode:
            os.fchmod(fd, mode)
    finally:
        os.close(fd)
    return True


def _directory(path, mode, gid, uid, test):
    """Make ``path`` a real directory of the user's (a symlink there is
    removed, never followed) with ``mode`` and ``gid``; the changes."""
    changes = {}
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISLNK(st.st_mode):
        changes["replaced"] = "symlink"
        if not test:
            os.unlink(path)
        st = None
    elif st is not None and not stat.S_ISDIR(st.st_mode):
        raise OSError(errno.ENOTDIR, f"exists as a {_kind(st.st_mode)}, not a directory", path)
    if st is None:
        changes[path] = "New Dir"
        if test:
            return changes
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.mkdir(path, 0o700)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if st.st_uid != uid:
            raise OSError(errno.EPERM, f"owned by uid {st.st_uid}, not {uid}", path)
        if gid is not None and st.st_gid != gid:
            changes.setdefault("group", gid)
            if not test:
                os.fchown(fd, -1, gid)
        if mode is not None and stat.S_IMODE(st.st_mode) != mode:
            changes.setdefault("mode", f"{mode:04o}")
            if not test:
                os.fchmod(fd, mode)
    finally:
        os.close(fd)
    return changes


def _rename(src, dst):
    os.rename(src, dst)
    return True


def _remove(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


# -- the public functions: run as root, act as the user ---------------------


def _mode(mode):
    if mode is None:
        return None
    return int(str(mode), 8) if not isinstance(mode, int) else mode


def _decode(info):
    if "content" in info:
        info["content"] = base64.b64decode(info["content"])
    return info


def inspect(path, user=None, read=True, follow=False):
    """
    What is at ``path`` as ``user`` sees it, without following a final
    symlink (unless ``follow``): a dict with ``kind`` (None, ``file``,
    ``directory``, ``symlink``, ``special file``), ``uid``, ``gid``, ``mode``,
    ``nlink``, ``owned_alone`` (a regular file of the user's with no other
    name) and, when ``read`` and the user may read it, ``content`` (bytes).

    CLI Example:

    .. code-block:: bash

        salt master userfs.inspect /home/jobhandler/hosts user=jobhandler
    """
    uid = _ids(user)[0]
    info = _decode(_as_user(user, _describe, path, read, follow))
    info["owned_alone"] = info["kind"] == "file" and info["uid"] == uid and info["nlink"] == 1
    return info


def write(path, contents, user=None, group=None, mode="0644"):
    """
    Replace ``path`` with a new regular file holding ``contents`` (str or
    bytes), owned by ``user`` (written as the user), ``group`` and ``mode``:
    a fresh file in the same directory renamed over the name, so a symlink or
    hard link there is replaced, never written through.

    CLI Example:

    .. code-block:: bash

        salt master userfs.write /home/jobhandler/hosts 'node1:2' user=jobhandler
    """
    data = contents.encode() if isinstance(contents, str) else bytes(contents)
    gid = _ids(user, group)[2]
    return _as_user(user, _write_new, path, data, _mode(mode), gid)


def rename(src, dst, user=None):
    """
    Rename ``src`` to ``dst`` as ``user``: replaces the name ``dst``, never
    what a link there points to.

    CLI Example:

    .. code-block:: bash

        salt master userfs.rename /home/jobhandler/bin/.cpi.new /home/jobhandler/bin/cpi user=jobhandler
    """
    return _as_user(user, _rename, src, dst)


def remove(path, user=None):
    """
    Remove the name ``path`` as ``user`` (a link is removed, not followed);
    False if there was nothing.

    CLI Example:

    .. code-block:: bash

        salt master userfs.remove /home/jobhandler/bin/cpi.saltcluster-build user=jobhandler
    """
    return _as_user(user, _remove, path)


def directory(path, user=None, group=None, mode="0755", test=False):
    """
    Make ``path`` a directory of ``user``'s with ``group`` and ``mode``, as
    the user: a symlink at ``path`` is removed (its target is left alone) and
    a real directory made in its place; a directory the user does not own is
    an error, not chowned.  Returns the changes (none when all is well).

    CLI Example:

    .. code-block:: bash

        salt master userfs.directory /home/jobhandler/bin user=jobhandler
    """
    uid, _, gid, _ = _ids(user, group)
    return _as_user(user, _directory, path, _mode(mode), gid, uid, bool(test))


def manage(path, contents, user=None, group=None, mode="0644", test=False, show_changes=True):
    """
    Ensure ``path`` is a regular file owned by ``user`` alone (one link),
    holding ``contents`` with ``group`` and ``mode``; everything done as the
    user.  A file that is right but for group or mode is fixed on a
    descriptor opened without following links; anything else (missing, a
    symlink, a hard link, another owner's file, other contents) is replaced by
    a new file renamed over the name.  Returns ``(changes, comment)``; with
    ``test`` nothing is touched.

    CLI Example:

    .. code-block:: bash

        salt master userfs.manage /home/jobhandler/hosts 'node1:2' user=jobhandler
    """
    data = contents.encode() if isinstance(contents, str) else bytes(contents)
    uid, _, gid, _ = _ids(user, group)
    mode = _mode(mode)
    info = inspect(path, user, read=True)
    changes = {}
    if info["owned_alone"] and info.get("content") == data:
        if gid is not None and info["gid"] != gid:
            changes["group"] = group
        if mode is not None and info["mode"] != mode:
            changes["mode"] = f"{mode:04o}"
        if changes and not test:
            _as_user(user, _fix_meta, path, mode, gid, uid)
        return changes, (f"{path} updated" if changes else f"{path} is in the correct state")
    kind = info["kind"]
    if kind is None:
        changes["diff"] = "New file"
    elif kind != "file":
        changes["replaced"] = kind
    elif info["uid"] != uid:
        changes["replaced"] = f"file owned by uid {info['uid']}"
    elif info["nlink"] != 1:
        changes["replaced"] = f"file with {info['nlink']} hard links"
    if kind == "file" and info["uid"] == uid and info.get("content") != data:
        changes["diff"] = _diff(info.get("content"), data) if show_changes else "<show_changes=False>"
    if mode is not None and (kind is None or info.get("mode") != mode):
        changes["mode"] = f"{mode:04o}"
    if not test:
        _as_user(user, _write_new, path, data, mode, gid)
    return changes, f"{path} {'would be' if test else 'was'} written as {user or 'this process'}"


def _diff(old, new):
    try:
        old_text, new_text = (old or b"").decode(), new.decode()
    except UnicodeDecodeError:
        return "Replace binary file"
    return "".join(difflib.unified_diff(old_text.splitlines(True), new_text.splitlines(True)))
