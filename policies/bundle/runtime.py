"""A verified bundle at work: batched ``logits``, ``action_probs`` and ``act`` on onnxruntime, and the policy
bound into the payment world for its decision kind.

Invalid inputs are refused, never guessed at: an observation with the wrong number of features, a NaN or an
infinity, or an action mask row with no allowed action raises :class:`~payroute.errors.PayrouteError`
naming the row and feature. A finite value outside its feature's declared ``[low, high]`` is passed to the
network unchanged (neither clipped nor refused: a payment larger than any seen in training is still a payment);
the network must still give finite logits and an allowed action, which ``payroute review`` checks
(:mod:`payroute.policies.review.constraints`).

:meth:`BundlePolicy.bound` makes the policy the world's in-process policy for its decision kind, with an
:class:`ObservationBuilder` that turns ``(world, payload)`` into the observation the policy was trained on.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from payroute.envs.world.decisions import RISK_ACTIONS
from payroute.errors import PayrouteError
from payroute.policies.bundle.card import (
    BINDABLE_KINDS,
    LOGITS_OUTPUT,
    MASK_INPUT,
    OBS_INPUT,
    PolicyCard,
    check_observation_schema,
)
from payroute.policies.bundle.sandbox import GraphLimits
from payroute.policies.bundle.signing import Signature, TrustedKey


@runtime_checkable
class ObservationBuilder(Protocol):
    """Turns a decision's ``(world, payload)`` into the policy's observation vector (float, one row).

    A builder may carry ``feature_names`` (a list of str); :meth:`BundlePolicy.bound` then checks it against the
    card's observation schema when the policy is bound into a world.
    """

    def __call__(self, world: Any, payload: Any) -> np.ndarray: ...


class ActionMaskBuilder(Protocol):
    """Turns a decision's ``(world, payload)`` into the boolean mask of allowed actions (one row)."""

    def __call__(self, world: Any, payload: Any) -> np.ndarray: ...


def route_action_mask(world: Any, payload: Any) -> np.ndarray:
    """The eligible routes of a ``route`` decision (payload ``(transaction, eligible routes)``)."""
    _tx, eligible = payload
    mask = np.zeros(len(world.routes), dtype=bool)
    mask[[r.index for r in eligible]] = True
    return mask


def risk_action_mask(world: Any, payload: Any) -> np.ndarray:
    """Every risk action (allow, challenge, block) is always allowed."""
    return np.ones(len(RISK_ACTIONS), dtype=bool)


DEFAULT_MASKS: dict[str, ActionMaskBuilder] = {"route": route_action_mask, "risk": risk_action_mask}


class BundlePolicy:
    """A verified bundle, ready to act: batched ``logits``, ``action_probs`` and ``act`` on onnxruntime.

    Observations are ``(n, obs_dim)`` float arrays (or one ``(obs_dim,)`` row, answered unbatched); masks are
    ``(n, n_actions)`` booleans (or 0/1), ``None`` allowing every action. Masked actions get probability 0 and are
    never chosen.

    ``limits`` (a graph not signed by a trusted key): every call is stopped past ``limits.time_s`` and every
    tensor the graph allocates comes from its own arena of at most ``limits.memory_mb`` MiB; None runs the graph
    unlimited. ``trusted_keys`` are the keys it was verified against, so another process (a stress-suite worker)
    verifies it the same way (:func:`payroute.policies.compare.bundle_policy`).
    """

    def __init__(
        self,
        card: PolicyCard,
        onnx_bytes: bytes,
        source: Path,
        threads: int = 1,
        signature: Signature | None = None,
        limits: GraphLimits | None = None,
        trusted_keys: tuple[TrustedKey, ...] | None = None,
    ) -> None:
        self.card = card
        self.signature = signature or Signature("unsigned")  # who vouches for the card's claims
        self.limits = limits
        self.trusted_keys = trusted_keys
        self.source = source
        # sha256 of the checksums.sha256 it was verified against (pins every file but the signature); set by
        # the loader
        self.checksums_sha256: str | None = None
        self.decision_kind = card.decision_kind
        self.obs_dim = card.io.obs_dim
        self.n_actions = card.io.n_actions
        self.action_names = list(card.actions)
        self.feature_names = card.feature_names
        memory_mb = None if limits is None else limits.memory_mb
        try:
            self._session = new_session(onnx_bytes, threads, memory_mb)
            self._guard = None if limits is None else _CallGuard(limits)
        except Exception as err:  # onnxruntime raises its own types
            if memory_mb is not None and _out_of_arena(err):
                raise PayrouteError(
                    f"bundle {source.name}: policy.onnx needs more than the limit of {memory_mb:,} MiB of memory to "
                    "load (an untrusted graph's memory limit, integrity.memory_limit_mb); refusing to load"
                ) from None
            raise PayrouteError(
                f"bundle {source.name}: policy.onnx cannot be loaded by onnxruntime ({type(err).__name__}: "
                f"{' '.join(str(err).split())[:200]})"
            ) from None

    def __repr__(self) -> str:
        return (
            f"BundlePolicy({self.source.name}: {self.decision_kind}, {self.obs_dim} features, "
            f"{self.n_actions} actions)"
        )

    # ---------------------------------------------------------------- acting
    def run(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The graph's raw output for checked inputs (float32 ``(n, obs_dim)``, bool ``(n, n_actions)``)."""
        if self._guard is None:
            return run_session(self._session, obs, mask, self.source.name)
        return self._guard.run(self._session, obs, mask, self.source.name)

    def logits(self, obs: Any, mask: Any = None) -> np.ndarray:
        """Masked logits, float32 ``(n, n_actions)``; masked actions hold :data:`MASKED_LOGIT`."""
        obs2, mask2, single = self._inputs(obs, mask)
        out = self.run(obs2, mask2)
        return out[0] if single else out

    def action_probs(self, obs: Any, mask: Any = None) -> np.ndarray:
        """The policy's action probabilities (softmax of the masked logits), float64 ``(n, n_actions)``."""
        obs2, mask2, single = self._inputs(obs, mask)
        probs = _softmax(self.run(obs2, mask2), mask2)
        return probs[0] if single else probs

    def act(self, obs: Any, mask: Any = None, rng: np.random.Generator | None = None) -> np.ndarray:
        """Greedy actions (highest logit among allowed actions; ties go to the lowest index), or actions sampled
        from :meth:`action_probs` with ``rng`` when one is given. int64 ``(n,)``."""
        obs2, mask2, single = self._inputs(obs, mask)
        logits = self.run(obs2, mask2)
        if rng is None:
            actions = np.argmax(np.where(mask2, logits, -np.inf), axis=1)
        else:
            actions = _sample(_softmax(logits, mask2), rng)
        return actions[0] if single else actions

    # ---------------------------------------------------------------- in the world
    def bound(
        self,
        observation_builder: ObservationBuilder,
        *,
        mask_builder: ActionMaskBuilder | None = None,
        sample: bool = False,
    ) -> BoundBundlePolicy:
        """This policy as the world's in-process policy for its decision kind (``route`` or ``risk``).

        ``observation_builder(world, payload)`` gives the observation row; ``mask_builder`` the allowed actions
        (default: the eligible routes for ``route``, every action for ``risk``). ``sample=True`` draws actions
        from the policy's probabilities with the world's policy generator (and reports that probability as the
        propensity); otherwise the greedy action is taken with propensity 1.
        """
        if self.decision_kind not in BINDABLE_KINDS:
            raise PayrouteError(
                f"a {self.decision_kind!r} bundle cannot be bound into the world directly: its action is not one "
                f"discrete choice; bindable kinds: {list(BINDABLE_KINDS)}"
            )
        if not callable(observation_builder):
            raise PayrouteError(
                "observation_builder must be callable as builder(world, payload) -> np.ndarray"
            )
        return BoundBundlePolicy(
            self, observation_builder, mask_builder or DEFAULT_MASKS[self.decision_kind], sample
        )

    # ---------------------------------------------------------------- input checks
    def _inputs(self, obs: Any, mask: Any) -> tuple[np.ndarray, np.ndarray, bool]:
        obs = np.asarray(obs, dtype=np.float32)
        single = obs.ndim == 1
        if obs.ndim not in (1, 2) or obs.shape[-1] != self.obs_dim:
            raise PayrouteError(
                f"observation has shape {obs.shape}; this bundle expects (n, {self.obs_dim}) or "
                f"({self.obs_dim},): one value per feature ({', '.join(self.feature_names)})"
            )
        if single:
            obs = obs[None, :]
        finite = np.isfinite(obs)
        if not finite.all():
            row, col = np.argwhere(~finite)[0]
            raise PayrouteError(
                f"observation row {row} feature {self.feature_names[col]!r} is {obs[row, col]}; "
                "observations must be finite"
            )
        if mask is None:
            mask = np.ones((obs.shape[0], self.n_actions), dtype=bool)
        else:
            mask = np.asarray(mask)
            if single and mask.ndim == 1:
                mask = mask[None, :]
            if mask.shape != (obs.shape[0], self.n_actions):
                raise PayrouteError(
                    f"action mask has shape {mask.shape}; expected {(obs.shape[0], self.n_actions)} "
                    f"(one row per observation, one column per action: {', '.join(self.action_names)})"
                )
            if mask.dtype != np.bool_:
                if not np.isin(mask, (0, 1)).all():
                    raise PayrouteError("action mask must hold booleans or 0/1")
                mask = mask.astype(bool)
        empty = ~mask.any(axis=1)
        if empty.any():
            raise PayrouteError(f"action mask row {int(np.argmax(empty))} allows no action")
        return obs, mask, single


class BoundBundlePolicy:
    """A bundle answering one decision kind inside the payment world: ``decide(world, payload)``."""

    def __init__(
        self,
        policy: BundlePolicy,
        observation_builder: ObservationBuilder,
        mask_builder: ActionMaskBuilder,
        sample: bool,
    ) -> None:
        self.policy = policy
        self.kind = policy.decision_kind
        self.observation_builder = observation_builder
        self.mask_builder = mask_builder
        self.sample = sample
        self._rng: np.random.Generator | None = None

    def bind(self, world: Any) -> None:
        """Check the bundle against the world it joins: action names, and the builder's feature names.

        A builder (or mask builder) with a ``bind(world)`` method is bound first, so it can set up its
        per-world state (and its ``feature_names``) before the check."""
        for builder in (self.observation_builder, self.mask_builder):
            builder_bind = getattr(builder, "bind", None)
            if callable(builder_bind):
                builder_bind(world)
        expected = [r.name for r in world.routes] if self.kind == "route" else list(RISK_ACTIONS)
        if self.policy.action_names != expected:
            raise PayrouteError(
                f"bundle {self.policy.source.name} actions {self.policy.action_names} do not match this "
                f"world's {self.kind} actions {expected}"
            )
        names = getattr(self.observation_builder, "feature_names", None)
        if names is not None:
            check_observation_schema(self.policy.card, list(names), self.policy.source.name)
        self._rng = world.policy_rng(self.kind) if self.sample else None

    def decide(self, world: Any, payload: Any) -> tuple[int, float]:
        obs = self.observation_builder(world, payload)
        mask = self.mask_builder(world, payload)
        if self._rng is None:
            return int(self.policy.act(obs, mask)), 1.0
        probs = self.policy.action_probs(obs, mask)
        action = int(_sample(probs[None, :], self._rng)[0])
        return action, float(probs[action])


# ---------------------------------------------------------------------- numerics
_ARENA_LOCK = threading.Lock()  # registering an arena and creating the session that takes it are one step


def new_session(onnx_bytes: bytes, threads: int, memory_limit_mb: int | None = None) -> Any:
    """An onnxruntime CPU session; with ``memory_limit_mb``, one whose tensors (initializers, intermediate values,
    outputs) all come from an arena of its own capped at that many MiB.

    onnxruntime has no per-session memory cap on the CPU, but a session made with ``session.use_env_allocators``
    takes the shared arena registered in the environment when it is created and keeps it: registering a fresh
    arena with ``max_mem`` just before creating each limited session gives every untrusted graph its own capped
    arena. An allocation past the cap fails that call (:func:`_out_of_arena`); the process and other sessions are
    untouched. The arena keeps what it grew to (within the cap) for the next calls.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    if memory_limit_mb is None:
        return ort.InferenceSession(onnx_bytes, sess_options=opts, providers=["CPUExecutionProvider"])
    opts.log_severity_level = 4  # a refused allocation is reported by the PayrouteError, not logged
    opts.add_session_config_entry("session.use_env_allocators", "1")
    cpu = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
    # extend by what is asked (not the next power of two), so every request within the cap can be met
    arena = ort.OrtArenaCfg({"max_mem": int(memory_limit_mb) << 20, "arena_extend_strategy": 1})
    with _ARENA_LOCK:
        ort.create_and_register_allocator(cpu, arena)
        return ort.InferenceSession(onnx_bytes, sess_options=opts, providers=["CPUExecutionProvider"])


def _out_of_arena(err: BaseException) -> bool:
    """Whether onnxruntime failed because a capped arena refused an allocation."""
    text = str(err)
    return "bfc_arena" in text or "Available memory of" in text


def run_session(session: Any, obs: np.ndarray, mask: np.ndarray, name: str = "export") -> np.ndarray:
    """The logits of a batch; an onnxruntime failure or a misshapen answer is a PayrouteError naming the bundle."""
    try:
        out = session.run([LOGITS_OUTPUT], {OBS_INPUT: obs, MASK_INPUT: mask})[0]
    except Exception as err:  # onnxruntime raises its own types
        raise PayrouteError(
            f"bundle {name}: policy.onnx failed on a batch of {len(obs)} rows ({type(err).__name__}: "
            f"{' '.join(str(err).split())[:200]})"
        ) from None
    return _checked(np.asarray(out), obs, mask, name)


def _checked(out: np.ndarray, obs: np.ndarray, mask: np.ndarray, name: str) -> np.ndarray:
    if out.shape != (obs.shape[0], mask.shape[1]):
        raise PayrouteError(
            f"bundle {name}: policy.onnx answered a batch of {len(obs)} rows with logits of shape {out.shape}"
        )
    return out


class _CallGuard:
    """Every call of an untrusted graph, in this process, under its limits: a watchdog thread (one for all guards)
    sets onnxruntime's terminate flag on a call that runs past ``limits.time_s``, which stops it (a ``Loop`` too);
    an allocation past the session's arena cap (:func:`new_session`) fails the call, reported as such."""

    _all: weakref.WeakSet[_CallGuard] = weakref.WeakSet()
    _watchdog_pid: int | None = None  # the process whose watchdog runs (a forked worker starts its own)
    _start_lock = threading.Lock()

    def __init__(self, limits: GraphLimits) -> None:
        import onnxruntime as ort

        self.limit_s = limits.time_s
        self.memory_mb = limits.memory_mb
        self.options = ort.RunOptions()
        self.options.log_severity_level = 4
        self.lock = threading.Lock()
        self.started: float | None = None
        self.tripped = False
        _CallGuard._all.add(self)
        _CallGuard._ensure_watchdog()

    @staticmethod
    def _ensure_watchdog() -> None:
        with _CallGuard._start_lock:
            if _CallGuard._watchdog_pid != os.getpid():
                threading.Thread(
                    target=_CallGuard._watch, name="payroute-graph-watchdog", daemon=True
                ).start()
                _CallGuard._watchdog_pid = os.getpid()

    @staticmethod
    def _watch() -> None:
        while True:
            time.sleep(0.05)
            now = time.monotonic()
            for guard in list(_CallGuard._all):
                with guard.lock:
                    if guard.started is not None and now - guard.started > guard.limit_s:
                        guard.options.terminate = True
                        guard.tripped = True

    def run(self, session: Any, obs: np.ndarray, mask: np.ndarray, name: str) -> np.ndarray:
        if _CallGuard._watchdog_pid != os.getpid():  # a forked worker using its parent's policy
            _CallGuard._ensure_watchdog()
        with self.lock:
            self.options.terminate, self.tripped, self.started = False, False, time.monotonic()
        try:
            out = session.run([LOGITS_OUTPUT], {OBS_INPUT: obs, MASK_INPUT: mask}, self.options)[0]
        except Exception as err:  # onnxruntime raises its own types
            if self.tripped:
                raise PayrouteError(
                    f"bundle {name}: policy.onnx ran past the limit of {self.limit_s:g} s on a batch of {len(obs)} "
                    "rows (an unsigned graph's per-call limit, integrity.time_limit_s); stopped"
                ) from None
            if _out_of_arena(err):
                raise PayrouteError(
                    f"bundle {name}: policy.onnx ran past the limit of {self.memory_mb:,} MiB of memory on a batch "
                    f"of {len(obs)} rows (an untrusted graph's memory limit, integrity.memory_limit_mb); stopped"
                ) from None
            raise PayrouteError(
                f"bundle {name}: policy.onnx failed on a batch of {len(obs)} rows ({type(err).__name__}: "
                f"{' '.join(str(err).split())[:200]})"
            ) from None
        finally:
            with self.lock:
                self.started = None
        return _checked(np.asarray(out), obs, mask, name)


def _softmax(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    z = np.where(mask, logits.astype(np.float64), -np.inf)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _sample(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw per row by inverse CDF; masked actions have probability 0 and so are never drawn."""
    cdf = np.cumsum(probs, axis=1)
    u = rng.random((probs.shape[0], 1)) * cdf[:, -1:]
    actions = (cdf <= u).sum(axis=1)
    # guard against rounding at the top of the CDF landing on a trailing masked action
    last_allowed = probs.shape[1] - 1 - np.argmax(probs[:, ::-1] > 0, axis=1)
    return np.minimum(actions, last_allowed).astype(np.int64)


__all__ = [
    "DEFAULT_MASKS",
    "ActionMaskBuilder",
    "BoundBundlePolicy",
    "BundlePolicy",
    "ObservationBuilder",
    "new_session",
    "risk_action_mask",
    "route_action_mask",
    "run_session",
]
