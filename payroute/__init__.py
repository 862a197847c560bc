"""payroute: a reinforcement-learning simulator for payment routing and pricing."""

__version__ = "0.1.0"


def _register() -> None:
    from payroute.registration import register_all

    register_all()


_register()
