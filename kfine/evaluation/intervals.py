"""Bootstrap confidence intervals over prompts.

Every seed of a bench run answers the same prompts, so the std over seeds
shows training noise only; how much a rate would move on other prompts of
the same split is what the bootstrap over prompts shows.
"""

import numpy as np

BOOTSTRAP_SAMPLES = 1000


def bootstrap_interval(values, confidence=0.95, samples=BOOTSTRAP_SAMPLES, seed=0):
    """Percentile interval of the mean of `values` when its prompts are resampled.

    Args:
        values: array of shape `(seeds, prompts)` (or `(prompts,)`): a
            per-prompt score (1.0 correct, 0.0 not; or an expected value) for
            each seed. Prompt `j` is the same prompt in every seed, so whole
            columns are resampled together.
        confidence: float in (0, 1).
        samples: int. Bootstrap resamples.
        seed: int. Seed of the resampling.

    Returns:
        `(low, high)` as floats; `(nan, nan)` when there is no prompt.
    """
    values = np.atleast_2d(np.asarray(values, dtype="float64"))
    if values.shape[1] == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    columns = rng.integers(values.shape[1], size=(samples, values.shape[1]))
    means = values.mean(axis=0)[columns].mean(axis=1)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)
