"""saltlab demo: build, boot, two highstates, the MPI programs (mandel's
picture brought home as a PNG), the load balancer from inside and outside
the cluster, and a summary of what happened: each wait with its rounds,
every timeout, frozen guest, reboot and failed state, printed whether the
demo succeeds or fails."""

import base64
import binascii
import subprocess
import time

from labkit import config, figures, ops, picture, probes, remote
from labkit.base import LabError, need_root, say

PROGRAMS = (("cpi", ["np=4"]), ("hellow", ["np=4"]), ("mandel", ["np=4"]))
LB_REQUESTS = 6  # enough answers to see strict round robin over two nodes
# mandel writes mandel.pgm in its working directory, and mpi.run runs a job
# in the MPI user's home (saltcluster:user:home, salt/cluster/parameters/
# defaults.yaml) on the master
MANDEL_PGM = "/home/jobhandler/mandel.pgm"
# the picture, as a PNG, next to figures.json
MANDEL_PNG = figures.FIGURES.parent / "mandel.png"
CURL_TIMED_OUT = 28  # curl's exit status when --max-time ran out
SSH_FAILED = 255


def demo():
    """Run the demo; raise LabError at the first failure.  The summary is
    printed either way, from the journal the steps and the layers below
    them note into (figures.journal)."""
    need_root()
    t0 = time.monotonic()
    with figures.journal() as summary:
        step = "build"
        try:
            ops.build()
            step = "up"
            ops.up()
            for label in ("first highstate", "second highstate"):
                step = label
                _highstate(label, label.replace(" ", "_") + "_s")
            for prog, extra in PROGRAMS:
                step = f"mpi.run {prog}"
                if prog == "mandel":
                    _forget_mandel()
                _mpi_run(prog, extra)
            step = "mandel picture"
            path = fetch_mandel()
            print(f"mandel picture: {path}")
            for origin, url in (("master", "http://gateway/whoami"), ("client", config.lb_url())):
                step = f"load balancer from {origin}"
                _load_balancer(origin, url)
            step = "lab memory"
            figures.note(f"lab memory: {probes.memory_mb():.0f} MB peak resident (sum of the hosts' UML kernels)")
        except subprocess.TimeoutExpired as exc:
            figures.note(f"FAILED at {step}: {_timed_out(exc)}")
            raise LabError(f"{step}: {_timed_out(exc)}") from exc
        except LabError as exc:
            figures.note(f"FAILED at {step}: {(str(exc).splitlines() or [''])[0][:300]}")
            raise
        except subprocess.CalledProcessError as exc:
            figures.note(f"FAILED at {step}: exit {exc.returncode} of {' '.join(map(str, exc.cmd))[:300]}")
            raise
        except BaseException as exc:
            figures.note(f"STOPPED at {step}: {type(exc).__name__}{f': {exc}' if str(exc) else ''}"[:300])
            raise
        finally:
            print("\n== saltlab demo summary")
            for line in summary:
                print(f"  {line}")
            print(f"  total {time.monotonic() - t0:.0f} s; figures in {figures.FIGURES}", flush=True)
    return 0


def _timed_out(exc):
    """What a subprocess.TimeoutExpired was: for an ssh, the remote command
    and the host's address."""
    cmd = exc.cmd if isinstance(exc.cmd, (list, tuple)) else [exc.cmd]
    if len(cmd) >= 2 and str(cmd[-2]).startswith("root@"):
        what = f"`{cmd[-1]}` on {str(cmd[-2])[5:]}"
    else:
        what = f"`{' '.join(map(str, cmd))}`"
    return f"{what[:300]} gave no answer in {exc.timeout} s"


def _highstate(label, metric):
    """One highstate, the operator's very command (`salt '*' state.apply`),
    its failed states each a line of the summary; LabError if one failed."""
    say(f"{label}: salt '*' state.apply")
    secs, changed, failed = ops.highstate(everyone=True)
    figures.note(f"{label}: {changed} changes, {len(failed)} failed in {secs:.0f} s (one attempt)")
    for line in failed:
        figures.note(f"  failed: {line}")
    if failed:
        raise LabError(f"{label}: {len(failed)} failed:\n  " + "\n  ".join(failed))
    figures.record(metric, secs)


def _mpi_run(prog, extra):
    say(f"salt master mpi.run {prog} {' '.join(extra)}")
    ret = ops.mpi_run(prog, *extra)
    if not isinstance(ret, dict) or ret.get("retcode") != 0:
        if not isinstance(ret, dict) or "retcode" not in ret:
            what = f"no result from the master: {ret!r}"[:300]
        else:
            said = (ret.get("stderr") or ret.get("stdout") or "").strip().splitlines()[-1:] or ["no output"]
            what = f"retcode {ret['retcode']}{' (timed out)' if ret.get('timed_out') else ''}: {said[0][:200]}"
        figures.note(f"mpi.run {prog}: {what} (one attempt)")
        raise LabError(f"mpi.run {prog} failed: {ret}")
    print(ret["stdout"].rstrip())
    figures.note(f"mpi.run {prog}: retcode 0 in {ret['duration']:.2f} s on {', '.join(ret['hosts'])} (one attempt)")


def _forget_mandel():
    """Remove a picture left by an earlier run: the one fetched is this run's."""
    res = remote.ssh("master", f"rm -f {MANDEL_PGM}", timeout=config.QUERY_TIMEOUT)
    if res.returncode != 0:
        said = (res.stderr.strip() or f"exit {res.returncode}").splitlines()[-1]
        raise LabError(f"removing an old {MANDEL_PGM} on the master failed: {said}")


def fetch_mandel(target=None):
    """mandel's picture from the master (MANDEL_PGM, base64 over ssh),
    checked and written to TARGET (default MANDEL_PNG) as a PNG; its
    absolute path."""
    res = remote.ssh("master", f"base64 < {MANDEL_PGM}", timeout=config.QUERY_TIMEOUT)
    if res.returncode != 0:
        said = (res.stderr.strip() or f"exit {res.returncode}").splitlines()[-1]
        raise LabError(f"reading {MANDEL_PGM} on the master failed: {said}")
    try:
        pgm = base64.b64decode(res.stdout)
    except (binascii.Error, ValueError) as exc:
        raise LabError(f"{MANDEL_PGM} on the master: its base64 does not decode: {exc}") from exc
    try:
        width, height, pixels = picture.parse_pgm(pgm)
    except LabError as exc:
        raise LabError(f"{MANDEL_PGM} on the master: {exc}") from exc
    path = (target or MANDEL_PNG).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(picture.png_grey(width, height, pixels))
    figures.note(f"mandel picture: {path} ({width}x{height} PNG of {MANDEL_PGM} on the master)")
    return path


def _load_balancer(origin, url):
    answers = []
    for i in range(1, LB_REQUESTS + 1):
        res = remote.ssh(origin, f"curl -s --max-time {config.CURL_TIMEOUT} {url}", timeout=config.CURL_SSH_TIMEOUT)
        if res.stdout.strip():
            answers.append(res.stdout.split()[0])
            continue
        answers.append("(no answer)")
        if res.returncode == CURL_TIMED_OUT:
            why = f"timed out (curl --max-time {config.CURL_TIMEOUT})"
        elif res.returncode == SSH_FAILED:
            why = f"ssh to {origin} failed"
        else:
            why = f"no answer (curl exit {res.returncode})"
        figures.note(f"load balancer from {origin}: request {i} of {LB_REQUESTS}: {why}")
    say(f"gateway from {origin}: {' '.join(answers)}")
    figures.note(f"load balancer from {origin}: {' '.join(answers)}")
