"""payroute: a reinforcement-learning simulator for payment routing and pricing."""

__version__ = "0.1.0"
