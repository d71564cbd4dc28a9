"""scripts/bootstrap with fake apt-get, dpkg-query and python on PATH: it
waits for apt's locks instead of failing when another apt runs, and two runs
at once build one venv instead of deleting each other's."""

import os
import subprocess
import textwrap

import pytest

from tests.conftest import REPO

LOCKED = "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 4242 (apt-get)"


def _script(path, body):
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(0o755)


@pytest.fixture
def fakes(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "log"
    log.touch()
    # one package is missing, unless FAKE_MISSING is empty
    _script(bindir / "dpkg-query", """\
        for last; do :; done
        [ "$last" = "${FAKE_MISSING-nginx-light}" ] && exit 1
        printf 'install ok installed'
        """)  # fmt: skip
    _script(bindir / "id", 'echo 0\n')
    # apt-get update fails on the lists lock while FAKE_LOCKED (a counter file) is above 0
    _script(bindir / "apt-get", f"""\
        echo "apt-get $*" >> {log}
        case " $* " in *" update "*)
          n=$(cat "$FAKE_LOCKED" 2>/dev/null || echo 0)
          if [ "$n" -gt 0 ]; then echo $((n - 1)) > "$FAKE_LOCKED"; echo "{LOCKED}" >&2; exit 100; fi;;
        esac
        exit 0
        """)  # fmt: skip
    # python -m venv DIR makes a pip that takes FAKE_PIP_SECONDS and fails if
    # its venv was deleted under it
    _script(bindir / "fakepython", f"""\
        if [ "$1" = --version ]; then echo "Python 3.11.2"; exit 0; fi
        dir=$3; mkdir -p "$dir/bin"
        cat > "$dir/bin/pip" <<EOF
        #!/bin/sh
        echo "pip \\$*" >> {log}
        touch "$dir/building"
        sleep ${{FAKE_PIP_SECONDS:-0}}
        [ -e "$dir/building" ] || {{ echo "venv deleted while pip ran" >&2; exit 1; }}
        EOF
        chmod 755 "$dir/bin/pip"
        """)  # fmt: skip
    env = dict(
        os.environ,
        PATH=f"{bindir}:{os.environ['PATH']}",
        PYTHON=str(bindir / "fakepython"),
        SALTCLUSTER_CACHE=str(tmp_path / "cache"),
        FAKE_LOCKED=str(tmp_path / "locked"),
    )
    return env, log


def bootstrap(env, **kw):
    return subprocess.Popen(
        [str(REPO / "scripts/bootstrap")], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw
    )


def run(env):
    proc = bootstrap(env)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def test_apt_waits_for_the_locks_of_another_apt(fakes, tmp_path):
    env, log = fakes
    (tmp_path / "locked").write_text("1")  # another apt holds the lists lock once
    rc, out, err = run(env)
    assert rc == 0, err
    apt = [line for line in log.read_text().splitlines() if line.startswith("apt-get")]
    assert [line for line in apt if " update" in line] and len([x for x in apt if " update" in x]) == 2
    (install,) = [line for line in apt if " install " in line]
    assert "-o DPkg::Lock::Timeout=" in install and "nginx-light" in install
    assert "waiting" in err


def test_apt_lock_wait_has_an_end(fakes, tmp_path):
    env, log = fakes
    (tmp_path / "locked").write_text("1000")
    env["SALTCLUSTER_APT_LOCK_TIMEOUT"] = "1"
    rc, out, err = run(env)
    assert rc != 0 and "Could not get lock" in err
    assert " install " not in log.read_text()


def test_concurrent_runs_build_one_venv(fakes):
    env, log = fakes
    env["FAKE_MISSING"] = ""
    env["FAKE_PIP_SECONDS"] = "2"
    first = bootstrap(env)
    second = bootstrap(env)
    results = [p.communicate(timeout=120) + (p.returncode,) for p in (first, second)]
    for out, err, rc in results:
        assert rc == 0, err
    venvs = {out.strip().splitlines()[-1] for out, _, _ in results}
    assert len(venvs) == 1
    (venv,) = venvs
    assert os.path.exists(os.path.join(venv, ".complete"))
    pips = [line for line in log.read_text().splitlines() if line.startswith("pip ")]
    assert len(pips) == 1, pips
