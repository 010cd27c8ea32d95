"""Timing helpers shared by the perf measurements: min-of-N, in turns, with the machine's load."""

import os
import time


def load_average():
    """The 1-minute load average (`uptime`), recorded beside every timing: the CPU may be shared."""
    return round(os.getloadavg()[0], 2)


def interleaved(functions, repeats, before_each=None):
    """Times several `functions` (a dict name -> callable) in turns, `repeats` rounds.

    Interleaving puts every contender under the same background load, so
    their ratio is fairer than timing one after the other. Both wall-clock
    and process CPU seconds are kept: on a shared machine the CPU time of
    single-threaded work is what it would take on an idle core, while the
    wall time of multi-threaded work (a TensorFlow step) is what a user waits.
    The minimum over rounds is the least disturbed run. `before_each`, if
    given, runs untimed before every call (e.g. `gc.collect`, so that no
    contender pays for the garbage of the one before it).

    Returns:
        dict name -> {"seconds": min wall, "cpu_seconds": min CPU,
        "all": [wall...], "cpu_all": [CPU...], "load": [before, after]}.
    """
    results = {name: {"all": [], "cpu_all": []} for name in functions}
    load_before = load_average()
    for _ in range(repeats):
        for name, function in functions.items():
            if before_each is not None:
                before_each()
            wall, cpu = time.perf_counter(), time.process_time()
            function()
            results[name]["all"].append(round(time.perf_counter() - wall, 6))
            results[name]["cpu_all"].append(round(time.process_time() - cpu, 6))
    load_after = load_average()
    for result in results.values():
        result["seconds"] = min(result["all"])
        result["cpu_seconds"] = min(result["cpu_all"])
        result["load"] = [load_before, load_after]
    return results
