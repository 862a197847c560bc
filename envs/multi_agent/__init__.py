"""The multi-agent environments: the payment ecosystem (any set of roles learning on one episode,
:mod:`.ecosystem`, RLlib's multi-agent API) and its PettingZoo AEC form (:mod:`.pettingzoo_env`).
"""
