"""The lab's User-Mode Linux kernel and Debian image, each built once and
cached under a key of its inputs (kernel: source version, config, patches,
spec; image: release, packages, pinned requirements, overlay files, recipe
number)."""

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from labkit import config, figures
from labkit.base import LabError, run, say


def digest(*parts):
    sha = hashlib.sha256()
    for part in parts:
        sha.update(part if isinstance(part, bytes) else str(part).encode())
        sha.update(b"\0")
    return sha.hexdigest()[:16]


def ensure_host_packages(packages):
    missing = [p for p in packages if run(["dpkg-query", "-W", "-f=${Status}", p], check=False,
                                          capture_output=True).stdout.find("install ok installed") < 0]  # fmt: skip
    if missing:
        say(f"installing host packages: {' '.join(missing)}")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        run(["apt-get", "update", "-qq"], env=env)
        run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env,
            stdout=subprocess.DEVNULL)  # fmt: skip


def host_mirror():
    """The Debian mirror this host's apt uses (never written into the repo)."""
    texts = []
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        with contextlib.suppress(OSError):
            texts.append(path.read_text())
    for text in texts:
        for uri in re.findall(r"^URIs:\s*(\S+)", text, re.M) + re.findall(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)", text, re.M):
            if uri.rstrip("/").endswith("/debian"):
                return uri
    raise LabError("no Debian mirror found in /etc/apt sources")


def private_apt(suite):
    """apt-get/apt-cache options for a sources list of the lab's own (SUITE
    from this host's Debian mirror): the host's apt configuration and lists
    stay untouched.  None: the host's own sources."""
    if suite is None:
        return []
    root = config.CACHE / "apt" / suite
    (root / "lists/partial").mkdir(parents=True, exist_ok=True)
    (root / "archives/partial").mkdir(parents=True, exist_ok=True)
    sources = root / "sources.list"
    sources.write_text(f"deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {host_mirror()} {suite} main\n")
    return [f"-oDir::Etc::SourceList={sources}", "-oDir::Etc::SourceParts=/dev/null",
            f"-oDir::State::Lists={root / 'lists'}", f"-oDir::Cache={root}",
            "-oDir::State::status=/dev/null", "-oAPT::Sandbox::User=root"]  # fmt: skip


@contextlib.contextmanager
def build_lock():
    """One build at a time: a second caller waits, then finds the cache."""
    config.CACHE.mkdir(parents=True, exist_ok=True)
    with open(config.CACHE / ".build.lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say("another saltlab build is running: waiting for it")
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _progress(proc, logfile, counts):
    """Print a line count every 20 s while a long step runs."""
    last = time.monotonic()
    while proc.poll() is None:
        time.sleep(1)
        if time.monotonic() - last > 20:
            last = time.monotonic()
            with open(logfile, errors="replace") as fh:
                n = sum(1 for line in fh if counts(line))
            say(f"  ... {n} steps done")
    proc.wait()


# ---------------------------------------------------------------- kernel


def kernel_patches():
    return [config.LAB / "kernel" / name for name in config.kernel_spec()["patches"]]


def kernel_source_version():
    """The candidate version of the kernel's source package (refreshing the
    lab's own package list for its suite first)."""
    spec = config.kernel_spec()
    opts = private_apt(spec["suite"])
    if spec["suite"]:
        run(["apt-get", *opts, "update", "-qq"], stdout=subprocess.DEVNULL)
    out = run(["apt-cache", *opts, "policy", spec["package"]], capture_output=True).stdout
    found = re.search(r"Candidate:\s*(\S+)", out)
    if not found or found.group(1) == "(none)":
        raise LabError(f"no {spec['package']} in the Debian mirror ({spec['suite'] or 'host sources'})")
    return found.group(1)


def kernel_path(version=None):
    """Where the kernel built from these inputs is cached: the source
    package's version, the config, the patches and the kernel's spec."""
    spec = config.kernel_spec()
    version = version or kernel_source_version()
    inputs = [(config.LAB / "kernel/uml.config").read_bytes(), *(p.read_bytes() for p in kernel_patches())]
    key = digest(*inputs, json.dumps(spec, sort_keys=True), version)
    return config.CACHE / f"kernel-{config.KERNEL}-{key}" / "linux"


def build_kernel():
    with build_lock():
        return _build_kernel()


def _fetch_kernel_source(work, version):
    """The source tarball from the Debian package, unpacked without
    installing it (apt-get download + dpkg-deb -x)."""
    spec = config.kernel_spec()
    run(["apt-get", *private_apt(spec["suite"]), "download", f"{spec['package']}={version}"], cwd=work,
        stdout=subprocess.DEVNULL)  # fmt: skip
    deb = next(work.glob(f"{spec['package']}_*.deb"))
    run(["dpkg-deb", "-x", str(deb), str(work / "pkg")])
    deb.unlink()
    return next((work / "pkg/usr/src").glob(f"{spec['package']}.tar.*"))


def _build_kernel():
    ensure_host_packages(config.HOST_PACKAGES)
    spec = config.kernel_spec()
    version = kernel_source_version()
    target = kernel_path(version)
    if target.exists():
        say(f"kernel: cached {target}")
        return target
    t0 = time.monotonic()
    work = target.parent / "src"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    say(f"kernel: fetching {spec['package']} {version}")
    tarball = _fetch_kernel_source(work, version)
    run(["tar", "xf", str(tarball), "-C", str(work)])
    tree = work / spec["package"]
    for patch in kernel_patches():
        say(f"kernel: applying {patch.name}")
        run(["patch", "-p1", "-s", "-i", str(patch)], cwd=tree)
    run(["make", "ARCH=um", "defconfig"], cwd=tree, stdout=subprocess.DEVNULL)
    with open(tree / ".config", "a") as fh:
        for line in (config.LAB / "kernel/uml.config").read_text().splitlines():
            if line.startswith("CONFIG_") and line.endswith("=n"):
                fh.write(f"# {line[:-2]} is not set\n")
            elif line.startswith("CONFIG_"):
                fh.write(line + "\n")
    run(["make", "ARCH=um", "olddefconfig"], cwd=tree, stdout=subprocess.DEVNULL)
    say(f"kernel: compiling {config.KERNEL} (about 4 minutes on 2 cores), log in {work}/build.log")
    with open(work / "build.log", "w") as log:
        proc = subprocess.Popen(["make", "ARCH=um", f"-j{os.cpu_count() + 1}", "linux"], cwd=tree,
                                stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        _progress(proc, work / "build.log", lambda line: line.strip().startswith("CC"))
    if proc.returncode != 0:
        raise LabError(f"kernel build failed: see {work}/build.log")
    shutil.copy2(tree / "linux", target)
    shutil.rmtree(work)
    say(f"kernel: built in {time.monotonic() - t0:.0f} s -> {target}")
    figures.record("kernel_build_s", time.monotonic() - t0)
    return target


# ---------------------------------------------------------------- image


def overlay_files(root):
    """Every file under ROOT as (path relative to ROOT, executable, contents),
    sorted: what the overlay puts into the image."""
    return sorted((p.relative_to(root).as_posix(), bool(p.stat().st_mode & 0o111), p.read_bytes())
                  for p in root.rglob("*") if p.is_file())  # fmt: skip


def image_key(release, packages, requirements, overlay, recipe):
    """The image's cache key: a hash of everything the image is made from.
    REQUIREMENTS is the pinned requirements file's bytes, OVERLAY as from
    overlay_files(), RECIPE the number that stands for the build steps."""
    files = [[path, executable, hashlib.sha256(data).hexdigest()] for path, executable, data in overlay]
    return digest(f"recipe {recipe}", release, json.dumps(list(packages)), hashlib.sha256(requirements).hexdigest(),
                  json.dumps(files))  # fmt: skip


def image_path():
    key = image_key(config.RELEASE, config.IMAGE_PACKAGES, config.SALT_REQUIREMENTS.read_bytes(),
                    overlay_files(config.IMAGE_OVERLAY), config.IMAGE_RECIPE)  # fmt: skip
    return config.CACHE / f"image-{key}" / "rootfs.img"


def build_image():
    with build_lock():
        return _build_image()


def _build_image():
    target = image_path()
    if target.exists():
        say(f"image: cached {target}")
        return target
    ensure_host_packages(config.HOST_PACKAGES)
    t0 = time.monotonic()
    root = target.parent / "root"
    shutil.rmtree(target.parent, ignore_errors=True)
    root.mkdir(parents=True)
    mirror = host_mirror()
    release, packages, requirements = config.RELEASE, config.IMAGE_PACKAGES, config.SALT_REQUIREMENTS
    say(f"image: debootstrap {release} (minbase, about a minute)")
    log = open(target.parent / "build.log", "w")
    run(["debootstrap", "--variant=minbase", release, str(root), mirror], stdout=log, stderr=subprocess.STDOUT)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", LC_ALL="C")
    policy = root / "usr/sbin/policy-rc.d"  # no service starts inside the chroot
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    (root / "etc/apt/sources.list").write_text(f"deb {mirror} {release} main\ndeb {mirror} {release}-updates main\n")
    with _chroot_mounts(root):
        say(f"image: installing {len(packages)} packages (nginx, mpich, nfs, ssh, python...)")
        run(["chroot", str(root), "apt-get", "update", "-qq"], env=env, stdout=log, stderr=subprocess.STDOUT)
        first = [p for p in packages if p not in config.IMAGE_SLURM_PACKAGES]
        later = [p for p in packages if p in config.IMAGE_SLURM_PACKAGES]
        for step in (first, later):  # munge's account after rpcbind's `_rpc` (config.IMAGE_SLURM_PACKAGES)
            if step:
                run(["chroot", str(root), "apt-get", "install", "-y", "-qq", "--no-install-recommends", *step],
                    env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        say("image: salt venv on the image's own Python, every package pinned")
        shutil.copy2(requirements, root / "tmp/requirements.txt")
        # pip trusts what this host trusts (a TLS-intercepting proxy's CA included)
        shutil.copy2(_host_ca_bundle(), root / "tmp/host-ca.crt")
        # a clean environment: the host's own pip and CA settings name paths
        # the chroot does not have (or has with other contents)
        pip_env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LC_ALL": "C", "PIP_CONFIG_FILE": "/dev/null",
                   "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_CERT": "/tmp/host-ca.crt",
                   "SSL_CERT_FILE": "/tmp/host-ca.crt", "REQUESTS_CA_BUNDLE": "/tmp/host-ca.crt",
                   **{k: v for k, v in os.environ.items() if k.lower() in ("http_proxy", "https_proxy", "no_proxy")}}  # fmt: skip
        run(["chroot", str(root), "python3", "-m", "venv", "/opt/salt"], env=pip_env, stdout=log, stderr=subprocess.STDOUT)
        run(["chroot", str(root), "/opt/salt/bin/pip", "install", "-q", "--no-deps", "-r", "/tmp/requirements.txt"],
            env=pip_env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        res = run(["chroot", str(root), "/opt/salt/bin/pip", "check"], env=pip_env, capture_output=True, check=False)
        if res.returncode != 0:
            raise LabError(f"image: {requirements.name} does not pin a consistent set:\n{res.stdout}")
        for tmp in ("requirements.txt", "host-ca.crt"):
            (root / "tmp" / tmp).unlink()
        run(["chroot", str(root), "apt-get", "clean"], env=env)
    policy.unlink()
    # lab hosts boot offline: no sources to refresh, no nameserver to wait on
    (root / "etc/apt/sources.list").write_text("")
    for tool in (root / "opt/salt/bin").glob("salt*"):
        (root / "usr/local/bin" / tool.name).symlink_to(f"/opt/salt/bin/{tool.name}")
    shutil.copytree(config.IMAGE_OVERLAY, root, dirs_exist_ok=True)
    _configure_systemd(root)
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()  # each host makes its own at first boot
    # munge's postinst made a key: every host of the image would share it.
    # The cluster's key comes from the salt-master (pillar/munge.sls), to
    # the master and the compute nodes only.
    (root / "etc/munge/munge.key").unlink(missing_ok=True)
    (root / "etc/machine-id").write_text("")
    (root / "etc/fstab").write_text("/dev/ubda / ext4 defaults 0 1\n")
    say("image: making the ext4 image")
    run(["mkfs.ext4", "-q", "-F", "-L", "saltlab", "-d", str(root), str(target), "3G"])
    shutil.rmtree(root)
    say(f"image: built in {time.monotonic() - t0:.0f} s -> {target}")
    figures.record("image_build_s", time.monotonic() - t0)
    return target


def _host_ca_bundle():
    for path in (os.environ.get("PIP_CERT"), os.environ.get("SSL_CERT_FILE"), "/etc/ssl/certs/ca-certificates.crt"):
        if path and Path(path).is_file():
            return path
    raise LabError("no CA bundle on this host for pip in the image (set PIP_CERT)")


@contextlib.contextmanager
def _chroot_mounts(root):
    mounts = [("proc", root / "proc", ["-t", "proc"]), ("sysfs", root / "sys", ["-t", "sysfs"]),
              ("/dev", root / "dev", ["--bind"]), ("/dev/pts", root / "dev/pts", ["--bind"])]  # fmt: skip
    shutil.copy2("/etc/resolv.conf", root / "etc/resolv.conf")
    done = []
    try:
        for src, dst, opts in mounts:
            run(["mount", *opts, src, str(dst)])
            done.append(dst)
        yield
    finally:
        for dst in reversed(done):
            run(["umount", "-l", str(dst)], check=False)


def _configure_systemd(root):
    wants = root / "etc/systemd/system/sysinit.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    (wants / "saltlab-boot.service").symlink_to("/etc/systemd/system/saltlab-boot.service")
    # consoles are null channels; no hardware to probe; services the states own start disabled
    masked = ["getty@tty1.service", "serial-getty@ttyS0.service", "console-getty.service",
              "systemd-udevd.service", "systemd-udev-trigger.service", "systemd-timesyncd.service",
              "apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_reap.service",
              "systemd-networkd-wait-online.service"]  # fmt: skip
    for unit in masked:
        link = root / "etc/systemd/system" / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    # (os.walk: these links point into the image, so they dangle from here)
    for dirpath, _, files in os.walk(root / "etc/systemd/system"):
        for unit in {"nginx.service", "nfs-server.service", "munge.service", "slurmctld.service",
                     "slurmd.service"} & set(files):  # fmt: skip
            Path(dirpath, unit).unlink()
    (root / "etc/systemd/system.conf.d").mkdir(exist_ok=True)
    (root / "etc/systemd/system.conf.d/saltlab.conf").write_text(
        "[Manager]\nDefaultTimeoutStopSec=15s\nShowStatus=no\n"
    )
