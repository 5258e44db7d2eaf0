"""
The learning-rate schedule and the budget of a run, shared by every trainer.

A run's schedule is a function of its progress in [0, 1] (tokens, steps or minutes spent,
whichever budget is nearest its end): linear warmup over the first `warmup` steps, then
cosine from lr down to min_lr.
"""
import math


def lr_at(step, progress, lr, min_lr, warmup):
    if step < warmup:
        return lr * (step + 1) / warmup
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * min(1.0, max(0.0, progress))))


def progress_of(step=0, max_steps=0, tokens=0, total_tokens=0, seconds=0.0, minutes=0.0):
    """The fraction of the run spent: the largest of the budgets that are set (0 = not set)."""
    parts = [0.0]
    if max_steps:
        parts.append(step / max_steps)
    if total_tokens:
        parts.append(tokens / total_tokens)
    if minutes:
        parts.append(seconds / (minutes * 60))
    return max(parts)
