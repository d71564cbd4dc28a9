"""
Functional-test stand-in for Salt's ``mine`` module: ``mine.get`` answers
from the JSON file named by the ``saltcluster_fake_mine`` option (``{minion:
{entry: data}}``, as the master's mine cache holds it; tests.support.mine's
``published`` writes it), so the real states render against synthetic
membership without a master.  Integration and lab tests use the real mine.
"""

import json

import salt.utils.files

from tests.support.mine import mine_get

__virtualname__ = "mine"


def __virtual__():
    return __virtualname__


def get(tgt, fun, tgt_type="glob", exclude_minion=False):
    """As Salt's: one entry gives ``{minion: data}``; a list of entries (or
    a comma string of several) gives ``{entry: {minion: data}}``."""
    with salt.utils.files.fopen(__opts__["saltcluster_fake_mine"]) as fh:
        return mine_get(json.load(fh), fun)


def update(clear=False, mine_functions=None):
    return True
