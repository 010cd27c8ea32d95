"""TensorBoard summaries of a feedback round."""

import tensorflow as tf

from kfine.factcheck.verdict import REFUTED

# Sample sentences written per round, refuted ones first.
SAMPLES_LOGGED = 12


def write_round(writer, round_index, stats, samples, verdicts, probabilities):
    """Writes a round's statistics, the checker's probabilities and a table of samples with their verdicts.

    Args:
        writer: `tf.summary` file writer.
        round_index: int. The step of every summary.
        stats: dict of scalars.
        samples: list of `(prompt, sentence, completion_ids)`.
        verdicts: list of `Verdict`, one per sample.
        probabilities: float32 array. The checker's P(supported) where it gives one.
    """
    with writer.as_default():
        for name, value in stats.items():
            tf.summary.scalar(f"feedback/{name}", value, step=round_index)
        if len(probabilities):
            tf.summary.histogram("checker/probabilities", probabilities, step=round_index)
        lines = ["| sentence | verdict | P(supported) |", "|---|---|---|"]
        refuted_first = sorted(zip(samples, verdicts), key=lambda pair: pair[1].label != REFUTED)
        lines += [f"| {sentence} | {verdict.label} | {verdict.probability} |"
                  for (_, sentence, _), verdict in refuted_first[:SAMPLES_LOGGED]]
        tf.summary.text("feedback/samples", "\n".join(lines), step=round_index)
    writer.flush()
