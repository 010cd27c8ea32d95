"""Timing helpers shared by the perf measurements: contenders in turns, compared round by round."""

import os
import statistics
import time


def load_average():
    """The 1-minute load average (`uptime`), recorded beside every timing: the CPU may be shared."""
    return round(os.getloadavg()[0], 2)


def interleaved(functions, repeats, before_each=None):
    """Times several `functions` (a dict name -> callable) in turns, `repeats` rounds.

    Interleaving puts every contender under the same background load, so
    their ratio is fairer than timing one after the other. Each round
    starts one contender later than the round before, so that no contender
    always follows the same one or holds the same place in every round.
    Both wall-clock and process CPU seconds are kept: on a shared machine
    the CPU time of single-threaded work is what it would take on an idle
    core, while the wall time of multi-threaded work (a TensorFlow step) is
    what a user waits. `before_each`, if given, runs untimed before every
    call (e.g. `gc.collect`, so that no contender pays for the garbage of
    the one before it). Compare contenders with `paired_ratio`.

    Returns:
        dict name -> {"all": [wall per round...], "cpu_all": [CPU per round...],
        "seconds": median wall, "cpu_seconds": median CPU,
        "min_seconds": min wall, "min_cpu_seconds": min CPU, "load": [before, after]}.
    """
    names = list(functions)
    results = {name: {"all": [], "cpu_all": []} for name in names}
    load_before = load_average()
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            if before_each is not None:
                before_each()
            wall, cpu = time.perf_counter(), time.process_time()
            functions[name]()
            results[name]["all"].append(round(time.perf_counter() - wall, 6))
            results[name]["cpu_all"].append(round(time.process_time() - cpu, 6))
    load_after = load_average()
    for result in results.values():
        result["seconds"] = statistics.median(result["all"])
        result["cpu_seconds"] = statistics.median(result["cpu_all"])
        result["min_seconds"] = min(result["all"])
        result["min_cpu_seconds"] = min(result["cpu_all"])
        result["load"] = [load_before, load_after]
    return results


def paired_ratio(timings, numerator, denominator, cpu=False):
    """The median over rounds of `numerator`'s time over `denominator`'s time in the same round.

    Each round's two times were taken seconds apart, so a slow or fast
    spell of a shared machine bends both alike. The ratio of the two
    minima (`min_ratio`) instead compares each contender's luckiest round,
    and a fast spell that covers one contender's round and not the
    other's moves it; on the 2-core development machine that made it
    scatter up to twice as much between runs (see the README's
    performance section).

    Args:
        timings: the dict `interleaved` returns.
        numerator: str. Contender name.
        denominator: str. Contender name.
        cpu: bool. Compare CPU seconds rather than wall-clock seconds.
    """
    key = "cpu_all" if cpu else "all"
    return statistics.median(a / b for a, b in zip(timings[numerator][key], timings[denominator][key]))


def min_ratio(timings, numerator, denominator, cpu=False):
    """`numerator`'s fastest round over `denominator`'s fastest round (the estimator before `paired_ratio`)."""
    key = "min_cpu_seconds" if cpu else "min_seconds"
    return timings[numerator][key] / timings[denominator][key]
