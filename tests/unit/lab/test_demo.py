"""saltlab demo without a lab: mandel's PGM turned into a PNG (checked
byte by byte, decoded again with zlib), bad PGMs refused naming what is
wrong, the picture fetched from the master over ssh, and the summary: every
wait's rounds, timeout, reboot and failed state, printed on success and on
failure alike."""

import base64
import re
import struct
import subprocess
import sys
import zlib

import pytest
import yaml

from tests.conftest import REPO

if str(REPO / "lab") not in sys.path:
    sys.path.insert(0, str(REPO / "lab"))

from labkit import demo, figures, picture  # noqa: E402
from labkit.base import LabError  # noqa: E402


def _pgm(width, height, pixels=None):
    pixels = bytes((x * 7 + y * 13) % 256 for y in range(height) for x in range(width)) if pixels is None else pixels
    return f"P5\n{width} {height}\n255\n".encode() + pixels, pixels  # mandel.c's very header


def _chunks(png):
    """[(kind, body)] of a PNG, each chunk's CRC checked."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, at = [], 8
    while at < len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        kind, body = png[at + 4 : at + 8], png[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", png[at + 8 + length : at + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, kind
        chunks.append((kind, body))
        at += 12 + length
    assert at == len(png)
    return chunks


def _decode_grey(png):
    """(width, height, pixels) of an 8-bit greyscale PNG with filter 0 rows."""
    chunks = _chunks(png)
    kinds = [kind for kind, _ in chunks]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and set(kinds[1:-1]) == {b"IDAT"}
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, colour, compression, filtering, interlace) == (8, 0, 0, 0, 0)
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    assert len(raw) == height * (width + 1)
    rows = [raw[y * (width + 1) : (y + 1) * (width + 1)] for y in range(height)]
    assert all(row[0] == 0 for row in rows)  # filter type 0 on every row
    return width, height, b"".join(row[1:] for row in rows)


@pytest.mark.parametrize("width, height", [(1, 1), (7, 5), (640, 480)])
def test_pgm_becomes_a_png_with_the_same_pixels(width, height):
    pgm, pixels = _pgm(width, height)
    assert _decode_grey(picture.pgm_to_png(pgm)) == (width, height, pixels)


def test_pixels_that_look_like_whitespace_stay_pixels():
    """Exactly one whitespace byte ends the header: a first pixel of 10 or
    32 (newline, blank) is a pixel."""
    pgm, pixels = _pgm(4, 2, bytes([10, 32, 9, 13, 0, 255, 10, 10]))
    assert picture.parse_pgm(pgm) == (4, 2, pixels)
    assert _decode_grey(picture.pgm_to_png(pgm))[2] == pixels


@pytest.mark.parametrize(
    "data, named",
    [
        (b"", r"not a binary PGM: the file starts with b'', not P5"),
        (b"P6\n2 2\n255\n" + bytes(12), r"not a binary PGM: the file starts with b'P6', not P5"),
        (b"P2\n2 2\n255\n0 0 0 0\n", r"not a binary PGM: the file starts with b'P2', not P5"),
        (b"P5x\n2 2\n255\n" + bytes(4), r"not a binary PGM: magic b'P5x', not P5"),
        (b"P5\n2 2\n255", r"PGM header incomplete"),
        (b"P5\n2\n", r"PGM header incomplete"),
        (b"P5\n0 2\n255\n", r"PGM width '0' is not a positive whole number"),
        (b"P5\n2 -2\n255\n" + bytes(4), r"PGM height '-2' is not a positive whole number"),
        (b"P5\nwide 2\n255\n" + bytes(4), r"PGM width 'wide' is not a positive whole number"),
        (b"P5\n2 2\n65535\n" + bytes(8), r"PGM maxval 65535: only 255"),
        (b"P5\n2 2\n15\n" + bytes(4), r"PGM maxval 15: only 255"),
        (b"P5\n3 2\n255\n" + bytes(5), r"PGM of 3x2 needs 6 bytes of pixels, the file has 5"),
        (b"P5\n3 2\n255\n" + bytes(7), r"PGM of 3x2 needs 6 bytes of pixels, the file has 7"),
    ],
)
def test_a_bad_pgm_is_refused_naming_what_is_wrong(data, named):
    with pytest.raises(LabError, match=re.escape(named)):
        picture.pgm_to_png(data)


def test_the_demo_fetches_the_pgm_where_mpi_run_writes_it():
    """mandel.c writes mandel.pgm in its working directory, and mpi.run
    starts a job in the MPI user's home."""
    user = yaml.safe_load((REPO / "salt/cluster/parameters/defaults.yaml").read_text())["saltcluster"]["user"]
    assert demo.MANDEL_PGM == f"{user['home']}/mandel.pgm"
    assert '"mandel.pgm"' in (REPO / "salt/cluster/files/mpi/mandel.c").read_text()
    assert 'cwd=cfg["user"]["home"]' in (REPO / "salt/_modules/mpi.py").read_text()
    assert demo.MANDEL_PNG == figures.FIGURES.parent / "mandel.png"


def _answer(stdout="", rc=0, stderr=""):
    return subprocess.CompletedProcess("ssh", rc, stdout=stdout, stderr=stderr)


def test_fetch_mandel_writes_a_png_and_notes_where(tmp_path, monkeypatch):
    pgm, pixels = _pgm(64, 48)
    calls = []

    def ssh(name, command, timeout=None, capture=True, check=False):
        calls.append((name, command))
        return _answer(base64.encodebytes(pgm).decode())  # 76-column lines, as base64(1) writes

    monkeypatch.setattr(demo.remote, "ssh", ssh)
    monkeypatch.chdir(tmp_path)
    with figures.journal() as lines:
        path = demo.fetch_mandel(tmp_path / "sub" / ".." / "mandel.png")
    assert path == tmp_path / "mandel.png" and path.is_absolute()
    assert calls == [("master", f"base64 < {demo.MANDEL_PGM}")]
    assert _decode_grey(path.read_bytes()) == (64, 48, pixels)
    assert lines == [f"mandel picture: {path} (64x48 PNG of {demo.MANDEL_PGM} on the master)"]


@pytest.mark.parametrize(
    "answer, named",
    [
        (_answer("", 1, "sh: 1: cannot open /home/jobhandler/mandel.pgm: No such file\n"),
         "reading /home/jobhandler/mandel.pgm on the master failed: sh: 1: cannot open"),
        (_answer(base64.b64encode(b"P5\n4 4\n255\n" + bytes(3)).decode()),
         "/home/jobhandler/mandel.pgm on the master: PGM of 4x4 needs 16 bytes of pixels, the file has 3"),
        (_answer("UDUK=x"), "/home/jobhandler/mandel.pgm on the master: its base64 does not decode"),
    ],
)  # fmt: skip
def test_fetch_mandel_refuses_a_missing_or_bad_picture(tmp_path, monkeypatch, answer, named):
    monkeypatch.setattr(demo.remote, "ssh", lambda *a, **kw: answer)
    with pytest.raises(LabError, match=re.escape(named)):
        demo.fetch_mandel(tmp_path / "mandel.png")
    assert not (tmp_path / "mandel.png").exists()


def test_a_journal_collects_notes_only_while_open():
    figures.note("before: goes nowhere")
    with figures.journal() as outer:
        figures.note("one")
        with figures.journal() as inner:
            figures.note("two")
        figures.note("three")
    figures.note("after: goes nowhere")
    assert outer == ["one", "two", "three"] and inner == ["two"]


class Lab:
    """The demo's world without a lab: ops and remote answered from here,
    nothing started; what the steps did is noted as the real layers do."""

    def __init__(self, tmp_path, monkeypatch):
        self.highstates = [(80.4, 190, []), (24.6, 0, [])]
        self.mpi = {}
        self.curl = {}  # (origin, request number): (rc, stdout)
        self.pgm, self.pixels = _pgm(32, 24)
        self.commands = []
        self.requests = {}
        monkeypatch.setattr(demo, "need_root", lambda: None)
        monkeypatch.setattr(figures, "FIGURES", tmp_path / "figures.json")
        monkeypatch.setattr(demo, "MANDEL_PNG", tmp_path / "mandel.png")
        monkeypatch.setattr(demo.ops, "build", lambda: 0)
        monkeypatch.setattr(demo.ops, "up", self.up)
        monkeypatch.setattr(demo.ops, "highstate", self.highstate)
        monkeypatch.setattr(demo.ops, "mpi_run", self.mpi_run)
        monkeypatch.setattr(demo.remote, "ssh", self.ssh)
        monkeypatch.setattr(demo.probes, "memory_mb", lambda: 2310.0)

    def highstate(self, everyone=False):
        assert everyone, "the demo runs the operator's command: salt '*' state.apply"
        return self.highstates.pop(0)

    def up(self):
        figures.note("up: booted gateway, master, node1, node2, client, each from a fresh disk")
        figures.note("node1: frozen (ssh ran nothing in 20 s)")
        figures.note("node1: rebooted, fresh (killed, its disk dropped, booted again)")
        figures.note("minions: test.ping round 7 got no answer in 90 s; waiting on")
        return 0

    def mpi_run(self, prog, *args):
        ret = self.mpi.get(prog) or {"retcode": 0, "stdout": f"{prog} ran\n", "stderr": "", "duration": 1.5,
                                     "hosts": ["node1", "node2"], "timed_out": False}  # fmt: skip
        if isinstance(ret, Exception):
            raise ret
        return ret

    def ssh(self, name, command, timeout=None, capture=True, check=False):
        self.commands.append((name, command))
        if command.startswith("base64 < "):
            return _answer(base64.b64encode(self.pgm).decode())
        if command.startswith("curl "):
            n = self.requests[name] = self.requests.get(name, 0) + 1
            rc, out = self.curl.get((name, n), (0, f"node{n % 2 + 1} 10.5.5.x\n"))
            return _answer(out, rc)
        return _answer()


@pytest.fixture
def lab(tmp_path, monkeypatch):
    return Lab(tmp_path, monkeypatch)


def _summary(out):
    assert "\n== saltlab demo summary\n" in out
    return [line.strip() for line in out.split("\n== saltlab demo summary\n", 1)[1].splitlines()]


def test_the_summary_lists_every_attempt_timeout_and_reboot(lab, capsys):
    lab.curl[("client", 3)] = (28, "")
    lab.curl[("master", 2)] = (255, "")
    assert demo.demo() == 0
    out = capsys.readouterr().out
    png = demo.MANDEL_PNG.resolve()
    assert f"mandel picture: {png}\n" in out
    assert _decode_grey(png.read_bytes()) == (32, 24, lab.pixels)
    summary = _summary(out)
    assert summary[:-1] == [
        "up: booted gateway, master, node1, node2, client, each from a fresh disk",
        "node1: frozen (ssh ran nothing in 20 s)",
        "node1: rebooted, fresh (killed, its disk dropped, booted again)",
        "minions: test.ping round 7 got no answer in 90 s; waiting on",
        "first highstate: 190 changes, 0 failed in 80 s (one attempt)",
        "second highstate: 0 changes, 0 failed in 25 s (one attempt)",
        "mpi.run cpi: retcode 0 in 1.50 s on node1, node2 (one attempt)",
        "mpi.run hellow: retcode 0 in 1.50 s on node1, node2 (one attempt)",
        "mpi.run mandel: retcode 0 in 1.50 s on node1, node2 (one attempt)",
        f"mandel picture: {png} (32x24 PNG of {demo.MANDEL_PGM} on the master)",
        "load balancer from master: request 2 of 6: ssh to master failed",
        "load balancer from master: node2 (no answer) node2 node1 node2 node1",
        "load balancer from client: request 3 of 6: timed out (curl --max-time 5)",
        "load balancer from client: node2 node1 (no answer) node1 node2 node1",
        "lab memory: 2310 MB peak resident (sum of the hosts' UML kernels)",
    ]
    assert re.fullmatch(r"total \d+ s; figures in .*figures\.json", summary[-1])
    # the old picture goes before mandel runs, the new one is fetched after
    master = [c for n, c in lab.commands if n == "master" and not c.startswith("curl")]
    assert master == [f"rm -f {demo.MANDEL_PGM}", f"base64 < {demo.MANDEL_PGM}"]
    assert set(figures.load()) == {"first_highstate_s", "second_highstate_s"}


def test_failed_states_of_the_second_highstate_are_listed_and_fail_the_demo(lab, capsys):
    lab.highstates[1] = (30.2, 2, ["node1: hostfile: Source file salt://x not found", "node2: no return"])
    with pytest.raises(LabError, match=r"second highstate: 2 failed:\n  node1: hostfile: .*\n  node2: no return"):
        demo.demo()
    summary = _summary(capsys.readouterr().out)
    assert summary[4:-1] == [
        "first highstate: 190 changes, 0 failed in 80 s (one attempt)",
        "second highstate: 2 changes, 2 failed in 30 s (one attempt)",
        "failed: node1: hostfile: Source file salt://x not found",
        "failed: node2: no return",
        "FAILED at second highstate: second highstate: 2 failed:",
    ]
    assert summary[-1].startswith("total ")
    assert "second_highstate_s" not in figures.load()


def test_a_failed_first_highstate_stops_the_demo_with_its_states_listed(lab, capsys):
    lab.highstates[0] = (99.0, 3, ["master: no return"])
    with pytest.raises(LabError, match="first highstate: 1 failed"):
        demo.demo()
    summary = _summary(capsys.readouterr().out)
    assert "failed: master: no return" in summary and "FAILED at first highstate: first highstate: 1 failed:" in summary
    assert not any(line.startswith(("second highstate", "mpi.run")) for line in summary)


def test_a_timeout_becomes_a_lab_error_and_a_line_of_the_summary(lab, monkeypatch, capsys):
    cmd = ["ip", "netns", "exec", "saltlab", "ssh", "root@10.5.5.10", "salt --out=json '*' state.apply"]

    def highstate(everyone=False):
        raise subprocess.TimeoutExpired(cmd, 1800)

    monkeypatch.setattr(demo.ops, "highstate", highstate)
    said = "`salt --out=json '*' state.apply` on 10.5.5.10 gave no answer in 1800 s"
    with pytest.raises(LabError, match=re.escape(f"first highstate: {said}")):
        demo.demo()
    assert _summary(capsys.readouterr().out)[-2] == f"FAILED at first highstate: {said}"


def test_a_timed_out_mpi_job_is_listed_and_fails_the_demo(lab, capsys):
    lab.mpi["hellow"] = {"retcode": 124, "stdout": "", "stderr": "", "duration": 60.0, "hosts": ["node1"],
                         "timed_out": True, "killed": {"localhost": 2}}  # fmt: skip
    with pytest.raises(LabError, match="mpi.run hellow failed"):
        demo.demo()
    summary = _summary(capsys.readouterr().out)
    assert "mpi.run cpi: retcode 0 in 1.50 s on node1, node2 (one attempt)" in summary
    assert "mpi.run hellow: retcode 124 (timed out): no output (one attempt)" in summary
    assert summary[-2].startswith("FAILED at mpi.run hellow: mpi.run hellow failed: {'retcode': 124")
    assert not any("mandel" in line for line in summary)


def test_a_master_without_an_answer_for_mpi_run_is_listed(lab, capsys):
    lab.mpi["cpi"] = "Minion did not return. [No response]"
    with pytest.raises(LabError, match="mpi.run cpi failed"):
        demo.demo()
    assert ("mpi.run cpi: no result from the master: 'Minion did not return. [No response]' (one attempt)"
            in _summary(capsys.readouterr().out))  # fmt: skip


def test_a_missing_picture_fails_the_demo_after_the_jobs(lab, capsys):
    lab.pgm = b"P5\n32 24\n255\n" + bytes(10)
    with pytest.raises(LabError, match="the file has 10"):
        demo.demo()
    summary = _summary(capsys.readouterr().out)
    assert "mpi.run mandel: retcode 0 in 1.50 s on node1, node2 (one attempt)" in summary
    assert summary[-2] == (f"FAILED at mandel picture: {demo.MANDEL_PGM} on the master: "
                           "PGM of 32x24 needs 768 bytes of pixels, the file has 10")  # fmt: skip
    assert not demo.MANDEL_PNG.exists()


def test_an_interrupted_demo_still_prints_what_happened(lab, monkeypatch, capsys):
    def up():
        figures.note("up: every host was running")
        raise KeyboardInterrupt

    monkeypatch.setattr(demo.ops, "up", up)
    with pytest.raises(KeyboardInterrupt):
        demo.demo()
    summary = _summary(capsys.readouterr().out)
    assert summary[:2] == ["up: every host was running", "STOPPED at up: KeyboardInterrupt"]
