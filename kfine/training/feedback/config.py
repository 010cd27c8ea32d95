"""`FeedbackConfig`: how the fact-check feedback rounds run."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class FeedbackConfig:
    """How the feedback rounds run.

    Args:
        rounds: int. Sample -> check -> train rounds.
        samples_per_prompt: int. Sampled completions of each training prompt per round.
        epochs_per_round: int. Passes over the references per round.
        unlikelihood_weight: float. Weight of the unlikelihood loss.
        preference_weight: float. Weight of the DPO loss (0 turns it off).
        beta: float. DPO temperature.
        top_k: int. Sampling keeps the `top_k` most likely tokens.
        temperature: float. Sampling temperature.
        learning_rate: float. AdamW learning rate of the rounds.
        batch_size: int. References per step (and refuted samples, pairs).
    """

    rounds: int = 3
    samples_per_prompt: int = 4
    epochs_per_round: int = 2
    unlikelihood_weight: float = 1.0
    preference_weight: float = 0.0
    beta: float = 0.5
    top_k: int = 10
    temperature: float = 1.0
    learning_rate: float = 3e-4
    batch_size: int = 32

    def __post_init__(self):
        for name in ("rounds", "samples_per_prompt", "epochs_per_round", "top_k", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive int. Received: {name}={value!r}")
        for name in ("unlikelihood_weight", "preference_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"`{name}` must be >= 0. Received: {name}={getattr(self, name)!r}")
        for name in ("beta", "temperature", "learning_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"`{name}` must be > 0. Received: {name}={getattr(self, name)!r}")


# The quick configuration keeps a bench seed within minutes of the baseline's on a CPU.
QUICK_FEEDBACK = FeedbackConfig(rounds=2, samples_per_prompt=2, epochs_per_round=2)
FULL_FEEDBACK = FeedbackConfig()
