"""Scenarios: the pydantic schema of the payment world and the shipped YAML files."""

from payroute.envs.scenarios.loader import available_scenarios, load_scenario, scenario_summary
from payroute.envs.scenarios.schema import Scenario

__all__ = ["Scenario", "available_scenarios", "load_scenario", "scenario_summary"]
