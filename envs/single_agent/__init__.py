"""The single-agent environments: one role on the episode core, every other decision bound to a baseline.

``payroute/Routing-v0`` (:mod:`.routing`), ``payroute/Risk-v0`` (:mod:`.risk`), ``payroute/Pricing-v0``
(:mod:`.pricing`) and ``payroute/Treasury-v0`` (:mod:`.treasury`); each class docstring is the manual.
"""
