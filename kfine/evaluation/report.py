"""Bench reports: the Markdown table and the hallucination-rate chart."""

import math

from kfine.evaluation.references import REFERENCES
from kfine.knowledge.task import SPLITS

METRIC_LABELS = {
    "accuracy": "acc",
    "hallucination_rate": "halluc.",
    "abstention_rate": "abstain",
    "invalid_entity_rate": "invalid",
    "perplexity": "ppl",
    "ms_per_token": "ms/token",
    "multiple_entities": "2 entities",
}


def _cell(row):
    if row is None or math.isnan(row["mean"]):
        return "–"
    digits = 1 if row["metric"] in ("perplexity", "ms_per_token", "multiple_entities") else 2
    # A reference row is exact (no seeds): no std to show.
    cell = f"{row['mean']:.{digits}f}" + (f" ± {row['std']:.{digits}f}" if row["n_seeds"] else "")
    if row.get("ci_low") is not None:
        cell += f" [{row['ci_low']:.{digits}f}, {row['ci_high']:.{digits}f}]"
    return cell


def results_table(rows):
    """A Markdown table: one line per method and split, one column per metric."""
    index = {(row["method"], row["split"], row["metric"]): row for row in rows}
    methods = list(dict.fromkeys(row["method"] for row in rows))
    # The reference rows first, so a reader sees what knowing nothing scores before any method.
    methods = [method for method in methods if method in REFERENCES] + [
        method for method in methods if method not in REFERENCES]
    metrics = list(dict.fromkeys(row["metric"] for row in rows))
    header = "| method | split | n | " + " | ".join(METRIC_LABELS.get(m, m) for m in metrics) + " |"
    lines = [header, "|" + "---|" * (len(metrics) + 3)]
    for method in methods:
        for split in SPLITS:
            present = [index.get((method, split, metric)) for metric in metrics]
            if not any(present):
                continue
            count = next(row["n_prompts"] for row in present if row)
            lines.append(f"| {method} | {split} | {count} | " + " | ".join(_cell(row) for row in present) + " |")
    seeds = max((row["n_seeds"] for row in rows), default=0)
    lines.append("")
    lines.append(f"mean ± std over {seeds} seed(s) [95% bootstrap interval over the n prompts of the split]; "
                 "chance: a uniform pick among the subject's facts in the model KG; majority: the relation's most "
                 "frequent object (both exact, no seeds); 2 entities: completions naming a second entity.")
    return "\n".join(lines) + "\n"


def write_chart(rows, path):
    """Bar chart of hallucination rate by method and split, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kfine.io import atomic_file

    selected = [row for row in rows if row["metric"] == "hallucination_rate"]
    methods = list(dict.fromkeys(row["method"] for row in selected))
    splits = [split for split in SPLITS if any(row["split"] == split for row in selected)]
    width = 0.8 / max(len(methods), 1)
    figure, axes = plt.subplots(figsize=(7, 4))
    for offset, method in enumerate(methods):
        values = {row["split"]: row for row in selected if row["method"] == method}
        positions = [index + offset * width for index in range(len(splits))]
        means = [values[split]["mean"] if split in values else 0.0 for split in splits]
        stds = [values[split]["std"] if split in values else 0.0 for split in splits]
        axes.bar(positions, means, width, yerr=stds, label=method, capsize=3)
    axes.set_xticks([index + width * (len(methods) - 1) / 2 for index in range(len(splits))])
    axes.set_xticklabels(splits)
    axes.set_ylabel("hallucination rate")
    axes.set_ylim(0, 1)
    axes.legend()
    axes.set_title("Hallucination rate by method and split (mean ± std over seeds)")
    figure.tight_layout()
    with atomic_file(path, mode="wb") as stream:
        figure.savefig(stream, format="png")
    plt.close(figure)


def write_risk_coverage_chart(calibration, group, path):
    """Risk-coverage curves (share of answers hallucinated against share of prompts answered), one line
    per method, for `group` of a `calibration_report`; saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kfine.io import atomic_file

    figure, axes = plt.subplots(figsize=(7, 4))
    for method, groups in calibration.items():
        if group not in groups:
            continue
        curve = [point for point in groups[group]["risk_coverage"] if point["selective_risk"] is not None]
        auroc = groups[group]["auroc"]["mean"]
        axes.plot([point["coverage"] for point in curve], [point["selective_risk"] for point in curve],
                  marker=".", label=f"{method} (AUROC {'–' if auroc is None else f'{auroc:.2f}'})")
    axes.set_xlabel("coverage (share of prompts answered)")
    axes.set_ylabel("hallucinated share of answers")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.legend()
    axes.set_title(f"Risk-coverage on {group}: answering only above a confidence threshold")
    figure.tight_layout()
    with atomic_file(path, mode="wb") as stream:
        figure.savefig(stream, format="png")
    plt.close(figure)
