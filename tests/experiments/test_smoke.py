from tests.helpers.worlds import run_world


def test_a_day_of_the_small_world_ends_every_transaction_and_balances(small_scenario):
    world = run_world(small_scenario, seed=1)
    assert world.arrivals > 1000
    assert world.in_flight == 0
    assert sum(world.terminal.values()) == world.arrivals
    assert world.ledger.total() == 0
