"""
Functional-test stand-in for Salt's ``mine`` module: ``mine.get`` answers
from the JSON file named by the ``saltcluster_fake_mine`` option, so the real
states render against synthetic membership without a master.  Integration
and lab tests use the real mine.
"""

import json

import salt.utils.files

__virtualname__ = "mine"


def __virtual__():
    return __virtualname__


def get(tgt, fun, tgt_type="glob", exclude_minion=False):
    with salt.utils.files.fopen(__opts__["saltcluster_fake_mine"]) as fh:
        data = json.load(fh)
    return {minion: entries[fun] for minion, entries in data.items() if fun in entries}


def update(clear=False, mine_functions=None):
    return True
