"""payroute.agents: the learners. Networks, training credit and the environment as a trainer sees it
(:mod:`.training_env`), a small policy-gradient learner, and the adapters for RLlib (:mod:`.rllib`) and
Stable-Baselines3 (:mod:`.sb3`). Every non-learning policy lives below, in :mod:`payroute.envs.baselines`."""
