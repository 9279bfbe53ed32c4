"""Model selection: one pre-registered rule for every method, carried across stages.

Rule (``RULE``): the model is the checkpoint with the highest macro PR-AUC on the clean
rows of the validation split, over every validation of every stage that trains the FE
and LP (1 and 3), with stage 1's best carried into stage 3; ties keep the earlier one.
Noisy validation rows carry target-domain labels, which unsupervised adaptation may not
use, so they never select; what selecting on them would have chosen is recorded beside
the rule's choice (``selection.json``), for comparison only.

Early stopping is separate: a stage stops after ``patience`` validations without gain
over that stage's own best.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["RULE", "Choice", "Selection"]

RULE = ("highest clean-validation macro PR-AUC over all validations of stages 1 and 3, stage 1's best "
        "carried into stage 3; ties keep the earlier checkpoint")


@dataclass
class Choice:
    score: float = float("-inf")
    stage: int = 0
    step: int = -1
    global_step: int = -1

    def beaten_by(self, score: float) -> bool:
        return score > self.score


@dataclass
class Selection:
    """The rule's choice, the noisy-validation shadow choice, and each stage's early-stop state."""

    best: Choice = field(default_factory=Choice)
    noisy_best: Choice = field(default_factory=Choice)
    stage_best: float = float("-inf")
    stale: int = 0
    validations: int = 0

    def start_stage(self) -> None:
        self.stage_best, self.stale = float("-inf"), 0

    def update(self, clean_score: float, noisy_score: float | None, stage: int, step: int,
               global_step: int) -> tuple[bool, bool]:
        """Record one validation; ``(new best by the rule, new best on noisy validation)``."""
        self.validations += 1
        improved = self.best.beaten_by(clean_score)
        if improved:
            self.best = Choice(clean_score, stage, step, global_step)
        noisy_improved = noisy_score is not None and self.noisy_best.beaten_by(noisy_score)
        if noisy_improved:
            self.noisy_best = Choice(noisy_score, stage, step, global_step)
        if clean_score > self.stage_best:
            self.stage_best, self.stale = clean_score, 0
        else:
            self.stale += 1
        return improved, noisy_improved

    def report(self) -> dict:
        """What ``selection.json`` says: the rule, its choice and the shadow choice."""
        def described(choice: Choice) -> dict | None:
            return None if choice.step < 0 else {"stage": choice.stage, "step": choice.step,
                                                 "global_step": choice.global_step, "score": choice.score}

        return {"rule": RULE, "metric": "valid clean macro PR-AUC", "chosen": described(self.best),
                "validations": self.validations,
                "noisy_valid_would_choose": described(self.noisy_best),
                "noisy_valid_note": "noisy validation rows carry target labels: reported, never used to select"}
