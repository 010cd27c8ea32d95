"""`Verdict`: what a fact checker says about one sentence."""

import dataclasses

SUPPORTED, REFUTED, NOT_IN_KG = "supported", "refuted", "not in the KG"
LABELS = (SUPPORTED, REFUTED, NOT_IN_KG)


@dataclasses.dataclass(frozen=True)
class Verdict:
    """A checker's judgement of one sentence.

    Attributes:
        sentence: str. The sentence judged.
        label: str. `"supported"`, `"refuted"` or `"not in the KG"` (the
            checker can neither confirm nor refute it).
        probability: float or None. P(supported); None when the checker
            gives no probability (`"not in the KG"` from the KG checker).
        subject: str or None. The claim's subject, when the checker parsed one.
        relation: str or None. Its relation.
        answer: str or None. The claimed object as written (normalized).
        entity: str or None. The KG entity the claimed object names, if any.
    """

    sentence: str
    label: str
    probability: float | None
    subject: str | None = None
    relation: str | None = None
    answer: str | None = None
    entity: str | None = None
