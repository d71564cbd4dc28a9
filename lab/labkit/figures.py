"""What the lab measures about itself (figures.json in the cache: build
times, boot times, the first highstate, peak memory), and the results table
the benchmarks print and write."""

import contextlib
import json
import statistics

from labkit import config

FIGURES = config.CACHE / "figures.json"


def load():
    """Every figure recorded so far: {metric: value}."""
    return json.loads(FIGURES.read_text()) if FIGURES.exists() else {}


def record(metric, value):
    data = load()
    data[metric] = round(value, 2)
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    FIGURES.write_text(json.dumps(data, indent=1))


# What happened during a run, line by line, for a summary (the demo's):
# remote and ops note each wait's rounds, every timeout (above all those a
# wait swallows and goes on after), every frozen guest and reboot, and the
# caller that wants them reads them from `journal()`.  With no journal
# open, a note goes nowhere.
_JOURNALS = []


@contextlib.contextmanager
def journal():
    """A list that collects every `note` made while the block runs, in order."""
    lines = []
    _JOURNALS.append(lines)
    try:
        yield lines
    finally:
        _JOURNALS[:] = [j for j in _JOURNALS if j is not lines]


def note(line):
    """Add LINE to every open journal."""
    for lines in _JOURNALS:
        lines.append(line)


class Table:
    """Rows of (metric, samples, unit, ratio text, target text)."""

    def __init__(self):
        self.rows = []

    def add(self, metric, samples, unit="s", ratio="-", target="-"):
        self.rows.append((metric, list(samples), unit, ratio, target))
        xs = list(samples)
        print(f"  {metric}: median {statistics.median(xs):.3f} {unit} over {len(xs)} ({ratio}; {target})", flush=True)

    def markdown(self):
        lines = [
            "| metric | median | min | max | runs | unit | ratio | target |",
            "| --- | ---: | ---: | ---: | ---: | --- | --- | --- |",
        ]
        for metric, xs, unit, ratio, target in self.rows:
            lines.append(
                f"| {metric} | {statistics.median(xs):.3f} | {min(xs):.3f} | {max(xs):.3f} | {len(xs)} "
                f"| {unit} | {ratio} | {target} |"
            )
        return "\n".join(lines)


def verdict(ok):
    return "met" if ok else "MISSED"
