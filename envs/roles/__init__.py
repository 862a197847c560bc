"""What each decision-maker of the payment world sees, may do and is paid: one class per role.

| role        | decides                                 | observation                          | action                   |
|-------------|-----------------------------------------|--------------------------------------|--------------------------|
| router      | which eligible route carries a payment  | Routing-v0's features (per payment)  | ``Discrete(n_routes)``   |
| risk        | allow / challenge / block a payment     | Risk-v0's features (per payment)     | ``Discrete(3)``          |
| pricer      | fee multipliers per segment x family    | the last pricing period, calendar    | ``Box`` of multipliers   |
| treasury    | transfers and intraday credit lines     | accounts, queues, forecasts          | ``Box`` of fractions     |
| fraudster   | attack intensity and amounts by pattern | its own attacks of the last period   | ``Box`` per pattern      |

Spaces and feature names come from the scenario alone; :meth:`Role.bind` attaches a role to each episode's
world. The single-agent environments (:mod:`payroute.envs.single_agent`) put one role on the episode core
(:mod:`payroute.envs.episode`); the ecosystem (:mod:`payroute.envs.multi_agent`) puts several on one episode.
"""

from payroute.envs.roles.base import Role
from payroute.envs.roles.fraudster import FraudsterRole
from payroute.envs.roles.pricer import PricerRole
from payroute.envs.roles.risk import RiskRole
from payroute.envs.roles.router import DECLINE_ACTION, RouterRole
from payroute.envs.roles.treasurer import TreasurerRole

ROLE_CLASSES: dict[str, type[Role]] = {
    "router": RouterRole,
    "risk": RiskRole,
    "pricer": PricerRole,
    "treasury": TreasurerRole,
    "fraudster": FraudsterRole,
}
"""Role name (:data:`payroute.vocabulary.ROLES`) -> its class."""

__all__ = [
    "DECLINE_ACTION",
    "ROLE_CLASSES",
    "FraudsterRole",
    "PricerRole",
    "RiskRole",
    "Role",
    "RouterRole",
    "TreasurerRole",
]
