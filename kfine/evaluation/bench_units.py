"""The finished units of a bench run, kept on disk so a killed run resumes.

A unit is one (method, seed): fine-tuning and evaluation, minutes each. Each
finished unit is written atomically to `OUT/units/METHOD/SEED.json`; a rerun
with the same arguments skips it. `OUT/units/config.json` records the
arguments: a run with other arguments into the same folder is refused, since
mixing its units would mix two experiments.
"""

import json
import os

from kfine.errors import KfineError
from kfine.io import write_json

UNITS_DIR = "units"
CONFIG_FILE = "config.json"


class BenchUnits:
    """Reads and writes the finished (method, seed) units of the bench run in `out_dir`.

    Args:
        out_dir: str. The bench's output folder.
        config: dict. The run's arguments (JSON); must equal those of the
            units already in `out_dir`, if any.

    Raises:
        KfineError: `out_dir` holds units of a run with other arguments.
    """

    def __init__(self, out_dir, config):
        self.directory = os.path.join(out_dir, UNITS_DIR)
        config_path = os.path.join(self.directory, CONFIG_FILE)
        if os.path.exists(config_path):
            with open(config_path, encoding="utf-8") as stream:
                earlier = json.load(stream)
            if earlier != config:
                changed = sorted(key for key in {*earlier, *config} if earlier.get(key) != config.get(key))
                raise KfineError(
                    f"--out {out_dir}: holds a bench run with other arguments ({', '.join(changed)} differ); "
                    "give another --out, or delete it to start over"
                )
        else:
            write_json(config_path, config)

    def path(self, method, seed):
        return os.path.join(self.directory, method, f"{seed}.json")

    def load(self, method, seed):
        """The unit's outcome if an earlier run finished it, else None."""
        path = self.path(method, seed)
        if not os.path.exists(path):
            return None
        with open(path, encoding="utf-8") as stream:
            return json.load(stream)

    def save(self, method, seed, unit):
        write_json(self.path(method, seed), unit)
