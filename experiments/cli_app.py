"""The ``payroute`` Typer application and what its command modules share: the app, shared options, and the
handler that turns a :class:`~payroute.errors.PayrouteError` into a one-line message and exit code 2."""

from __future__ import annotations

import functools
from typing import Annotated

import typer

from payroute.errors import PayrouteError
from payroute.experiments.console import print_error

app = typer.Typer(
    name="payroute",
    help="payroute: a reinforcement-learning simulator for payment routing, risk, pricing and treasury.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# options several commands share
RayAddress = Annotated[
    str | None,
    typer.Option(help="Run the worlds on this Ray cluster (HOST:PORT) instead of local processes."),
]
MlflowUri = Annotated[
    str | None, typer.Option(help="Register the bundle's ONNX model, card and ML-BOM (and the review) at this "
                             "MLflow tracking URI (docs/review.md).")
]  # fmt: skip
scenarios_app = typer.Typer(
    help="List the shipped scenarios, or show one resolved.", invoke_without_command=True
)
app.add_typer(scenarios_app, name="scenarios")


def user_errors(fn):
    """Turn a :class:`PayrouteError` into a short message and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except PayrouteError as exc:
            print_error("error:", exc)
            raise typer.Exit(code=2) from None

    return wrapper
