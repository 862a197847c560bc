"""The scored benchmark: fixed tasks (a decision on a scenario, held-out evaluation seeds) and a normalised score
per task, 0 = the task's reference baseline, 100 = its oracle or best known bound (as D4RL normalises between
random and expert).

``payroute score POLICY --task T`` prints one; ``python -m payroute.policies.benchmark`` writes
``docs/benchmark.md``, the table of every baseline and every zoo bundle on every task. Tasks and their tops are
in :mod:`.tasks`; scoring in :mod:`.scoring`; the page in :mod:`.page`.
"""

from payroute.policies.benchmark.scoring import Score, score, task_values
from payroute.policies.benchmark.tasks import SEED_START, TASKS, Task, get_task

__all__ = ["SEED_START", "TASKS", "Score", "Task", "get_task", "score", "task_values"]
