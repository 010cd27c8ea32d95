"""Timing helpers shared by the perf measurements: min-of-N and the machine's load."""

import os
import time


def load_average():
    """The 1-minute load average (`uptime`), recorded beside every timing: the CPU may be shared."""
    return round(os.getloadavg()[0], 2)


def interleaved(functions, repeats):
    """Times several `functions` (a dict name -> callable) in turns, `repeats` rounds.

    Interleaving puts every contender under the same background load, so
    their ratio is fairer than timing one after the other.

    Returns:
        dict name -> {"seconds": min, "all": [...], "load": [before, after]}.
    """
    results = {name: {"all": []} for name in functions}
    load_before = load_average()
    for _ in range(repeats):
        for name, function in functions.items():
            started = time.perf_counter()
            function()
            results[name]["all"].append(round(time.perf_counter() - started, 6))
    load_after = load_average()
    for result in results.values():
        result["seconds"] = min(result["all"])
        result["load"] = [load_before, load_after]
    return results
