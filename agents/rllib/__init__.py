"""RLlib adapters (new API stack): the trainer, the RL modules, the multi-agent envs and their configs."""
