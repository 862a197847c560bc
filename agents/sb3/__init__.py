"""Stable-Baselines3 adapters: PPO, MaskablePPO, DQN and A2C on the single-agent environments."""
