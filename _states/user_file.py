"""
Files and directories in a user's home, written as that user and never
through a link the user planted.

Salt's ``file.managed`` runs as root and writes in place (``shutil.copyfile``
follows a symlink, and writes into the inode a hard link shares), then
chowns the path; ``file.directory`` keeps a symlink to a directory and
manages its target.  In a home the user controls, a symlink ``~/hosts`` to
``/etc/shadow`` makes root overwrite and chown ``/etc/shadow``.  These states
do every read and write through the ``userfs`` execution module: a child
process with the user's uid, gid and groups, ``O_NOFOLLOW`` opens judged by
``fstat``, and new content written to a fresh file in the same directory and
renamed over the name (a rename replaces the link name, never its target).
The kernel's permission checks apply as for the user, so whatever the user
planted, the state can do no more than the user could.
"""

import os
import pwd
import shutil
import tempfile

import salt.utils.files
from salt.exceptions import CommandExecutionError

__virtualname__ = "user_file"


def __virtual__():
    if "userfs.manage" not in __salt__:
        return (False, "user_file needs the userfs execution module (saltutil.sync_modules)")
    return __virtualname__


def _ret(name):
    return {"name": name, "changes": {}, "result": False, "comment": ""}


def _check(ret, name, user):
    """None if ``name`` and ``user`` are usable, else ``ret`` filled in (in
    test mode a user that an earlier state will create is not an error)."""
    if not os.path.isabs(name):
        ret["comment"] = f"{name!r} is not an absolute path"
        return ret
    try:
        pwd.getpwnam(user)
    except KeyError:
        if __opts__["test"]:
            ret.update(result=None, changes={"new": name}, comment=f"{name} would be written once user {user} exists")
        else:
            ret["comment"] = f"user {user!r} does not exist"
        return ret
    return None


def _fail(ret, exc):
    ret.update(result=False, changes={}, comment=str(exc))
    return ret


def _done(ret, changes, comment):
    ret["changes"] = changes
    ret["comment"] = comment
    ret["result"] = None if (__opts__["test"] and changes) else True
    return ret


def managed(name, user, contents=None, source=None, group=None, mode="0644", show_changes=True):
    """
    Ensure ``name`` is a regular file owned by ``user`` (and no other name),
    holding ``contents`` or the file at ``source``, with ``group`` and
    ``mode``.  Written as the user: a symlink or hard link at ``name`` is
    replaced by a new file, its target left as it was.

    name
        absolute path, in a directory the user may write
    user
        the owner; all reads and writes are done as this user
    contents
        the text; a final newline is added if missing (as ``file.managed``)
    source
        ``salt://`` URL (or a local path root trusts) to copy instead
    group
        a group of the user's (default: the user's primary group)
    mode
        octal string, default ``'0644'``

    .. code-block:: yaml

        mpi-hostfile:
          user_file.managed:
            - name: /home/jobhandler/hosts
            - user: jobhandler
            - contents: |
                node1:2
    """
    ret = _ret(name)
    if (contents is None) == (source is None):
        ret["comment"] = "give exactly one of contents and source"
        return ret
    if _check(ret, name, user):
        return ret
    if source is not None:
        cached = __salt__["cp.cache_file"](source, saltenv=__env__) if "://" in source else source
        if not cached or not os.path.isfile(cached):
            ret["comment"] = f"source {source} not found"
            return ret
        with salt.utils.files.fopen(cached, "rb") as fh:
            data = fh.read()
    else:
        data = str(contents)
        if data and not data.endswith("\n"):
            data += "\n"
    try:
        changes, comment = __salt__["userfs.manage"](
            name, data, user=user, group=group, mode=mode, test=__opts__["test"], show_changes=show_changes
        )
    except CommandExecutionError as exc:
        return _fail(ret, exc)
    return _done(ret, changes, comment)


def directory(name, user, group=None, mode="0755"):
    """
    Ensure ``name`` is a directory owned by ``user`` with ``group`` and
    ``mode``, made and fixed as the user.  A symlink at ``name`` is removed
    (its target is left alone) and a real directory made in its place;
    a directory the user does not own is reported, not chowned.

    .. code-block:: yaml

        mpi-bin:
          user_file.directory:
            - name: /home/jobhandler/bin
            - user: jobhandler
    """
    ret = _ret(name)
    if _check(ret, name, user):
        return ret
    try:
        changes = __salt__["userfs.directory"](name, user=user, group=group, mode=mode, test=__opts__["test"])
    except CommandExecutionError as exc:
        return _fail(ret, exc)
    if not changes:
        return _done(ret, {}, f"directory {name} is in the correct state")
    return _done(ret, changes, f"directory {name} {'would be' if __opts__['test'] else 'was'} updated")


def _ssh_keygen(args, tmpdir):
    res = __salt__["cmd.run_all"](["ssh-keygen", *args], python_shell=False, cwd=tmpdir, ignore_retcode=True)
    return res


def _public_of(private):
    """The public line of the private key ``private`` (bytes), derived in a
    directory only root can read; None if ssh-keygen cannot read it (not a
    key, or one with a passphrase)."""
    tmpdir = tempfile.mkdtemp(prefix="saltcluster-key-")
    try:
        path = os.path.join(tmpdir, "key")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(private)
        res = _ssh_keygen(["-y", "-P", "", "-f", path], tmpdir)
        return res["stdout"].strip() + "\n" if res["retcode"] == 0 and res["stdout"].strip() else None
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _generate(key_type, comment):
    """A new key pair (private, public bytes), made in a directory only root
    can read."""
    tmpdir = tempfile.mkdtemp(prefix="saltcluster-key-")
    try:
        path = os.path.join(tmpdir, "key")
        res = _ssh_keygen(["-q", "-t", key_type, "-N", "", "-C", comment, "-f", path], tmpdir)
        if res["retcode"] != 0:
            raise CommandExecutionError(f"ssh-keygen -t {key_type} failed: {res['stderr'] or res['stdout']}")
        with salt.utils.files.fopen(path, "rb") as fh:
            private = fh.read()
        with salt.utils.files.fopen(path + ".pub", "rb") as fh:
            public = fh.read()
        return private, public
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _key_fields(line):
    """(type, base64 blob) of an OpenSSH public key line, or None."""
    for field_at, field in enumerate(line.split()):
        if field.startswith(("ssh-", "ecdsa-", "sk-")):
            rest = line.split()[field_at : field_at + 2]
            return tuple(rest) if len(rest) == 2 else None
    return None


def keypair(name, user, group=None, key_type="ed25519", comment=None):
    """
    Ensure ``name`` (private, ``0600``) and ``name.pub`` (``0644``) hold a key
    pair of ``user``'s, as regular files the user owns alone.  An existing
    private key that is a regular file of the user's is kept (and its public
    half derived from it); anything else at ``name`` (missing, a symlink, a
    hard link or file of another owner) gets a new pair, made in a
    root-only temporary directory and written as the user by rename, so a
    planted link is replaced and never read, written or chowned through.

    .. code-block:: yaml

        mpi-user-key:
          user_file.keypair:
            - name: /home/jobhandler/.ssh/id_ed25519
            - user: jobhandler
            - comment: jobhandler@saltcluster
    """
    ret = _ret(name)
    if _check(ret, name, user):
        return ret
    test = __opts__["test"]
    uid = pwd.getpwnam(user).pw_uid
    comment = comment or f"{user}@saltcluster"
    changes = {}
    try:
        priv = __salt__["userfs.inspect"](name, user=user, read=True)
        if priv["kind"] == "file" and priv["uid"] == uid and "content" in priv:
            private = priv["content"]
            public = _public_of(private)
            if public is None:
                ret["comment"] = f"{name} is not a private key ssh-keygen can read without a passphrase; left as it is"
                return ret
            pub = __salt__["userfs.inspect"](name + ".pub", user=user, read=True)
            old = pub.get("content", b"").decode(errors="replace") if pub["owned_alone"] else ""
            if old and _key_fields(old) == _key_fields(public.strip()):
                public = old.encode()  # keep its comment and layout
            else:
                public = public.encode()
        else:
            changes["generated"] = f"new {key_type} key pair (was: {priv['kind'] or 'missing'})"
            if test:
                return _done(ret, changes, f"{name} would be generated as {user}")
            private, public = _generate(key_type, comment)
        for path, data, mode in ((name, private, "0600"), (name + ".pub", public, "0644")):
            change, _ = __salt__["userfs.manage"](
                path, data, user=user, group=group, mode=mode, test=test, show_changes=False
            )
            if change:
                changes[path] = change
    except CommandExecutionError as exc:
        return _fail(ret, exc)
    if not changes:
        return _done(ret, {}, f"key pair {name} is in the correct state")
    return _done(ret, changes, f"key pair {name} {'would be' if test else 'was'} updated")


def authorized_key(name, user, source, group=None, mode="0600"):
    """
    Ensure the public key in the file ``source`` (read as the user, not
    through a link) is a line of ``name`` (an ``authorized_keys`` file),
    which is kept a regular file of the user's: other lines of a file the
    user owns are kept; a symlink or another owner's file there is replaced,
    never read or written through.

    .. code-block:: yaml

        mpi-user-key-authorised:
          user_file.authorized_key:
            - name: /home/jobhandler/.ssh/authorized_keys
            - source: /home/jobhandler/.ssh/id_ed25519.pub
            - user: jobhandler
    """
    ret = _ret(name)
    if _check(ret, name, user):
        return ret
    test = __opts__["test"]
    uid = pwd.getpwnam(user).pw_uid
    try:
        pub = __salt__["userfs.inspect"](source, user=user, read=True)
        line = pub.get("content", b"").decode(errors="replace").strip() if pub["owned_alone"] else ""
        fields = _key_fields(line)
        if not fields:
            if test:
                ret.update(result=None, changes={"added": source})
                ret["comment"] = f"{source} would be authorised once it exists"
            else:
                ret["comment"] = f"{source} is not a public key file of {user}'s"
            return ret
        cur = __salt__["userfs.inspect"](name, user=user, read=True)
        text = ""
        if cur["kind"] == "file" and cur["uid"] == uid and "content" in cur:
            text = cur["content"].decode(errors="replace")
        changes = {}
        if not any(_key_fields(old) == fields for old in text.splitlines()):
            if text and not text.endswith("\n"):
                text += "\n"
            text += line + "\n"
            changes["added"] = line
        change, _ = __salt__["userfs.manage"](name, text, user=user, group=group, mode=mode, test=test)
        change.pop("diff", None)  # the added line says it
        changes.update(change)
    except CommandExecutionError as exc:
        return _fail(ret, exc)
    if not changes:
        return _done(ret, {}, f"{source} is authorised in {name}")
    return _done(ret, changes, f"{source} {'would be' if test else 'was'} authorised in {name}")
