"""`run_perf`: every perf measurement in one run, written to perf.json and perf.md."""

import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time

from kfine.errors import KfineError
from kfine.io import atomic_file, write_json
from kfine.perf.timing import load_average


@dataclasses.dataclass(frozen=True)
class PerfSize:
    """How much work each measurement does.

    Attributes:
        batch_size: int. Sequences per train step (sequence length is the model's),
            for the LMs and for the fine-tuning methods alike.
        train_steps: int. Train steps per timed repeat.
        repeats: int. Timed rounds of generation and of the fine-tuning
            methods; each ratio is the median of the per-round ratios.
        training_repeats: int. Timed rounds of the train-step contenders
            (the ratios with targets: on a shared machine single rounds
            vary by 10-20%, and more of them steady the median).
        matmul_size: int. Side of the square float32 matmul that measures peak FLOP/s.
        alias_entities: int. Synthetic entities for linking (each a name and an alias).
        linking_words: int. Words of text to link.
        linking_repeats: int. Timed rounds of the linkers (each takes a
            fraction of a second, so more of them cost little and steady
            the median).
        kg_sizes: tuple of int. Triples of the synthetic KGs.
        generation_prompts: int. Prompts completed per timed repeat.
    """

    batch_size: int
    train_steps: int
    repeats: int
    training_repeats: int
    matmul_size: int
    alias_entities: int
    linking_words: int
    linking_repeats: int
    kg_sizes: tuple
    generation_prompts: int


FULL = PerfSize(
    batch_size=64,
    train_steps=4,
    repeats=3,
    training_repeats=7,
    matmul_size=2048,
    alias_entities=50_000,
    linking_words=100_000,
    linking_repeats=9,
    kg_sizes=(10_000, 100_000, 1_000_000),
    generation_prompts=64,
)
QUICK = PerfSize(
    batch_size=4,
    train_steps=1,
    repeats=1,
    training_repeats=1,
    matmul_size=128,
    alias_entities=500,
    linking_words=500,
    linking_repeats=1,
    kg_sizes=(300, 1_000, 3_000),
    generation_prompts=4,
)

# ratio -> (comparison, target): "min" means at least the target, "max" at most.
TARGETS = {
    "lm_vs_kerashub": ("min", 1.0),
    "injection_overhead": ("max", 1.15),
    "kerashub_lm_step_vs_kfine": ("min", 0.95),
    "kerashub_injection_overhead": ("max", 1.15),
    "mfu": ("min", 0.35),
    "linker_vs_flashtext": ("min", 1.0),
    "kg_scaling_slope": ("max", 1.1),
}


def device_description():
    """The machine the run measured: CPU model, core count, accelerators, library versions."""
    import keras
    import tensorflow as tf

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as stream:
            cpu = next(line.split(":", 1)[1].strip() for line in stream if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cpu_cores": os.cpu_count(),
        "gpus": [device.name for device in tf.config.list_physical_devices("GPU")],
        "platform": platform.platform(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def run_perf(pretrained, out_dir, quick=False, echo=print):
    """Runs every perf measurement and writes `out_dir/perf.json` and `out_dir/perf.md`.

    Args:
        pretrained: str. Directory of a model kfine pretrained with its own LM
            (`kfine pretrain`), whose architecture and vocabulary the training
            and generation measurements use.
        out_dir: str.
        quick: bool. Tiny sizes (seconds; the numbers mean little).
        echo: callable for progress lines.

    Returns:
        The dict written to perf.json: `{"ratios": {...}, "raw": {...}}`.
    """
    from kfine.datasets.geonames import build_geonames
    from kfine.models.loading import load_metadata, load_model
    from kfine.perf.generation import measure_generation
    from kfine.perf.keras_hub_training import measure_keras_hub_training
    from kfine.perf.kg_scaling import measure_kg_scaling
    from kfine.perf.linking import measure_linking
    from kfine.perf.methods import measure_methods
    from kfine.perf.training import measure_training

    size = QUICK if quick else FULL
    graph, templates = build_geonames()
    architecture = load_metadata(pretrained).get("architecture")
    if not isinstance(architecture, dict):
        raise KfineError(f"--model: {pretrained} is not a model kfine pretrained with its own LM; --perf times "
                         "kfine's own LM against keras-hub (keras-hub presets are timed in keras_hub_training): "
                         "leave --model out or give a `kfine pretrain` directory")
    language_model = load_model(pretrained)
    ratios = {}
    raw = {"size": "quick" if quick else "full", "device": device_description(), "load_at_start": load_average()}
    measurements = (
        ("training", lambda: measure_training(language_model, architecture, graph, templates, size)),
        ("keras_hub_training", lambda: measure_keras_hub_training(graph, templates, size)),
        ("linking", lambda: measure_linking(size)),
        ("kg_scaling", lambda: measure_kg_scaling(graph, size)),
        ("generation", lambda: measure_generation(language_model, graph, templates, size)),
        ("methods", lambda: measure_methods(language_model, graph, templates, size)),
    )
    for name, measure in measurements:
        started = time.perf_counter()
        found, raw[name] = measure()
        ratios.update(found)
        echo(f"{name}: {time.perf_counter() - started:.1f} s (load {load_average()})")
    raw["load_at_end"] = load_average()
    results = {"ratios": ratios, "raw": raw}
    os.makedirs(out_dir, exist_ok=True)
    write_json(os.path.join(out_dir, "perf.json"), results)
    with atomic_file(os.path.join(out_dir, "perf.md")) as stream:
        stream.write(perf_table(results) + "\n")
    return results


def run_perf_runs(pretrained, out_dir, runs, quick=False, echo=print):
    """Runs `kfine bench --perf` `runs` times, each in a fresh process; writes the medians.

    Run K writes `out_dir/run-K/perf.json` and `perf.md`; `out_dir/perf.json`
    holds the median of each ratio (`{"ratios": medians, "raw": {"runs":
    [each run's ratios and load]}}`) and `out_dir/perf.md` a table of the
    medians beside every run's value. Fresh processes, so that no run
    inherits another's heap, caches or compiled functions.

    Args:
        pretrained: str. As for `run_perf`.
        out_dir: str.
        runs: int. How many runs.
        quick: bool. As for `run_perf`.
        echo: callable for progress lines.

    Returns:
        The dict written to `out_dir/perf.json`.

    Raises:
        KfineError: a run failed (its output was shown as it ran).
    """
    from kfine.errors import KfineError

    per_run = []
    for index in range(1, runs + 1):
        run_dir = os.path.join(out_dir, f"run-{index}")
        echo(f"run {index} of {runs}: {run_dir}")
        command = [sys.executable, "-m", "kfine.cli", "bench", "--perf", "--model", pretrained, "--out", run_dir]
        if subprocess.run(command + (["--quick"] if quick else [])).returncode != 0:
            raise KfineError(f"kfine bench --perf run {index} of {runs} failed; see its output above")
        with open(os.path.join(run_dir, "perf.json"), encoding="utf-8") as stream:
            run = json.load(stream)
        per_run.append(
            {"out": run_dir, "ratios": run["ratios"], "load": [run["raw"]["load_at_start"], run["raw"]["load_at_end"]]}
        )
    names = list(per_run[0]["ratios"])
    medians = {name: statistics.median(run["ratios"][name] for run in per_run) for name in names}
    results = {"ratios": medians, "raw": {"runs": per_run, "device": device_description()}}
    write_json(os.path.join(out_dir, "perf.json"), results)
    with atomic_file(os.path.join(out_dir, "perf.md")) as stream:
        stream.write(median_table(results) + "\n")
    return results


def median_table(results):
    """A markdown table of the median ratios, each run's value beside them, and the targets."""
    runs = results["raw"]["runs"]
    lines = [
        "| measurement | median | "
        + " | ".join(f"run {index}" for index in range(1, len(runs) + 1))
        + " | target | met |",
        "|---|---|" + "---|" * len(runs) + "---|---|",
    ]
    for name, value in results["ratios"].items():
        target = TARGETS.get(name)
        each = " | ".join(f"{run['ratios'][name]:.3f}" for run in runs)
        lines.append(f"| {name} | {value:.3f} | {each} | {_target_text(target)} | {_met_text(value, target)} |")
    device = results["raw"]["device"]
    loads = ", ".join(f"{run['load'][0]}-{run['load'][1]}" for run in runs)
    lines += ["", f"Median of {len(runs)} runs, each in a fresh process (every run's figures: run-K/perf.md). "
                  f"Device: {device['cpu']}, {device['cpu_cores']} cores, GPUs: {device['gpus'] or 'none'}; "
                  f"TensorFlow {device['tensorflow']}, Keras {device['keras']}; load average per run {loads}."]
    return "\n".join(lines)


def perf_table(results):
    """A markdown table of the ratios with their targets, and the main raw figures."""
    ratios, raw = results["ratios"], results["raw"]
    lines = ["| measurement | value | target | met |", "|---|---|---|---|"]
    for name, value in ratios.items():
        target = TARGETS.get(name)
        lines.append(f"| {name} | {value:.3f} | {_target_text(target)} | {_met_text(value, target)} |")
    training = raw["training"]
    lines += ["", "| throughput | value |", "|---|---|"]
    for name, value in training["tokens_per_second"].items():
        lines.append(f"| train tokens/s, {name} | {value:,.0f} |")
    lines.append(f"| peak float32 matmul GFLOP/s ({training['matmul_size']}^2) | "
                 f"{training['peak_matmul_flops_per_second'] / 1e9:.1f} |")
    lines.append(f"| kfine LM train GFLOP/s | {training['achieved_flops_per_second'] / 1e9:.1f} |")
    for name, value in raw["keras_hub_training"]["tokens_per_second"].items():
        lines.append(f"| train tokens/s, keras-hub GPT-2 preset, {name} | {value:,.0f} |")
    for name, value in raw["linking"]["tokens_per_second"].items():
        lines.append(f"| linking tokens/s, {name} ({raw['linking']['surface_forms']:,} surface forms) | {value:,.0f} |")
    for run in raw["kg_scaling"]["sizes"]:
        lines.append(f"| KG {run['num_triples']:,} triples: load+index+encode CPU s (wall s), peak bytes/triple | "
                     f"{run['total_cpu_seconds']:.2f} ({run['total_seconds']:.2f}), {run['bytes_per_triple']:,.0f} |")
    generation = raw["generation"]
    lines.append(f"| greedy generation tokens/s | {generation['greedy_tokens_per_second']:,.1f} |")
    lines.append(f"| KG-constrained greedy generation tokens/s | {generation['constrained_tokens_per_second']:,.1f} |")
    methods = raw["methods"]
    for name, seconds in methods["step_seconds"].items():
        lines.append(f"| train step ms, {name} ({methods['batch_size']} x {methods['sequence_length']}) | "
                     f"{seconds * 1000:,.1f} |")
    device = raw["device"]
    lines += ["", f"Device: {device['cpu']}, {device['cpu_cores']} cores, GPUs: {device['gpus'] or 'none'}; "
                  f"TensorFlow {device['tensorflow']}, Keras {device['keras']}; "
                  f"load average {raw['load_at_start']} at start, {raw['load_at_end']} at end."]
    return "\n".join(lines)


def _met_text(value, target):
    """"yes" or "no" for a ratio with a target, "" for one without."""
    if target is None:
        return ""
    return "yes" if _meets(value, target) else "no"


def _meets(value, target):
    comparison, bound = target
    return value >= bound if comparison == "min" else value <= bound


def _target_text(target):
    if target is None:
        return ""
    comparison, bound = target
    return f"{'>=' if comparison == 'min' else '<='} {bound}"
