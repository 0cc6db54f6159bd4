"""The emulator's state and rules, apart from HTTP and sockets (what moto calls a backend).

One :class:`Backend` owns the world, the fault engine, the token issuer, the current scenario and its
parameters, the fix actions a learner can apply, ARM's clock, hung requests and the request log. The HTTP
layers (``imds``, ``arm``, ``admin``, ``proxy``) parse a request, ask the backend and render its answer; the
server facade owns the listeners and follows the backend's :class:`Layout` (which listeners a scenario
needs). Nothing here imports werkzeug, a socket or the facade, so every rule can be driven directly.

Room to grow: a new service (Entra token endpoints, Microsoft Graph, Key Vault or Blob data planes) keeps its
state in the world and its rules here or in a module next to the world, and gets its own layer module.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mi_helpers.emulator.clock import SYSTEM_CLOCK, Clock
from mi_helpers.emulator.directory import Directory
from mi_helpers.emulator.endpoints import Endpoints
from mi_helpers.emulator.faults import FaultEngine
from mi_helpers.emulator.principals import ClientSecrets, operator
from mi_helpers.emulator.scenarios import (
    COMMON_DEFAULTS,
    Scenario,
    build_faults,
    build_world,
    get_scenario,
    new_assignment_faults,
    resolve_params,
)
from mi_helpers.emulator.tls import SigningMaterial, ensure_signing_key
from mi_helpers.emulator.tokens import TokenIssuer
from mi_helpers.emulator.world import World
from mi_helpers.validate import InputError

__all__ = ["FIX_ACTIONS", "Backend", "FixAction", "Layout", "RequestLog", "coerce_world"]

WorldSource = World | dict[str, Any] | str | os.PathLike[str] | None


def coerce_world(world: WorldSource) -> World:
    """A private copy of ``world``: the default world, a :class:`World`, its dict form or a YAML/JSON file."""
    if world is None:
        return World.default()
    if isinstance(world, World):
        return world.copy()
    if isinstance(world, dict):
        return World.from_dict(world)
    return World.load(os.fspath(world))


# ------------------------------------------------------------------------------------------- fix actions
@dataclass(frozen=True)
class FixAction:
    """A change a learner's fix makes: its name, the keyword arguments it takes and what it does."""

    name: str
    keywords: frozenset[str]
    run: Callable[[Backend, dict[str, Any]], str]
    summary: str


_UAMI_KEYWORDS = frozenset({"name", "resource_id", "client_id"})


def _clear_faults(backend: Backend, kw: dict[str, Any]) -> str:
    backend.clear_faults()
    return "stopped every fault (the world is unchanged)"


def _reset(backend: Backend, kw: dict[str, Any]) -> str:
    backend.set_scenario(backend.scenario, **backend.overrides())
    return f"reset to scenario {backend.scenario!r}"


#: Every fix action, by name; ``keywords`` are the only arguments each one accepts.
FIX_ACTIONS: Mapping[str, FixAction] = {
    a.name: a
    for a in (
        FixAction(
            "enable-system-identity",
            frozenset(),
            lambda b, kw: b.world.enable_system_identity(),
            "turn on the host VM's system-assigned identity",
        ),
        FixAction(
            "disable-system-identity",
            frozenset(),
            lambda b, kw: b.world.disable_system_identity(),
            "turn off the host VM's system-assigned identity",
        ),
        FixAction(
            "attach-user-identity",
            _UAMI_KEYWORDS,
            lambda b, kw: b.world.attach_user_identity(**kw),
            "attach a user-assigned identity to the host VM",
        ),
        FixAction(
            "detach-user-identity",
            _UAMI_KEYWORDS,
            lambda b, kw: b.world.detach_user_identity(**kw),
            "detach a user-assigned identity from the host VM",
        ),
        FixAction(
            "add-role-assignment",
            frozenset({"principal_id", "role", "scope"}),
            lambda b, kw: b.world.add_role_assignment(**kw),
            "grant a role to a principal at a scope",
        ),
        FixAction(
            "remove-role-assignment",
            frozenset({"principal_id", "role", "scope", "id"}),
            lambda b, kw: b.world.remove_role_assignment(**kw),
            "remove matching role assignments",
        ),
        FixAction("clear-faults", frozenset(), _clear_faults, "stop every fault, keep the world"),
        FixAction("reset", frozenset(), _reset, "start the current scenario over"),
    )
}


def _check_fix(action: str, kw: dict[str, Any]) -> FixAction:
    fix = FIX_ACTIONS.get(action) if isinstance(action, str) else None
    if fix is None:
        raise InputError("action", f"unknown fix {action!r} (allowed: {', '.join(FIX_ACTIONS)})", action)
    bad = [k for k in kw if k not in fix.keywords]
    if bad:
        allowed = ", ".join(sorted(fix.keywords)) or "none"
        raise InputError(bad[0], f"not an argument of fix {action!r} (allowed: {allowed})", kw[bad[0]])
    for k, v in kw.items():
        if v is not None and not isinstance(v, str):
            raise InputError(k, "must be a string", v)
    return fix


# ------------------------------------------------------------------------------------------- request log
class RequestLog:
    """The most recent requests (oldest first), as the transport recorded them (tokens already redacted)."""

    def __init__(self, size: int = 2000) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=size)
        self._lock = threading.Lock()

    def record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._entries.append(entry)

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in self._entries]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


@dataclass(frozen=True)
class Layout:
    """The listeners the current scenario needs: IMDS open (or refusing), the proxy, the dead legacy port."""

    imds_listening: bool
    proxy: bool
    legacy_port: bool


# ------------------------------------------------------------------------------------------- the backend
class Backend:
    """World + faults + token issuer + scenario, and every rule that changes or reads them.

    ``clock`` is where time comes from (windows and buckets read ``clock.monotonic()``, tokens and ARM read
    ``clock.time()``); ``signing`` is the token-signing key (default: the per-user key of
    :func:`~mi_helpers.emulator.tls.ensure_signing_key`).
    """

    def __init__(
        self,
        scenario: str = "healthy",
        world: WorldSource = None,
        params: dict[str, Any] | None = None,
        *,
        clock: Clock | None = None,
        signing: SigningMaterial | None = None,
    ) -> None:
        self.clock: Clock = clock or SYSTEM_CLOCK
        self.base_world = coerce_world(world)
        self._scenario: Scenario = get_scenario(scenario)
        self._params: dict[str, Any] = resolve_params(self._scenario, params)
        #: One lock for every state change, the facade's listener changes included.
        self.lock = threading.RLock()
        self.issuer = TokenIssuer(
            signing or ensure_signing_key(), self.base_world.tenant.id, int(self._params["token_lifetime"])
        )
        self.engine = FaultEngine(clock=self.clock.monotonic)
        self.world: World = build_world(self._scenario, self.base_world, self._params)
        self.log = RequestLog()
        #: Which token ``resource`` names a service principal (the facade registers its service URLs).
        self.directory = Directory()
        self._faults_cleared = False
        self._layout_hooks: list[Callable[[Layout], None]] = []
        self.engine.replace(build_faults(self._scenario, self._params))
        #: Per-run client secrets of the world's applications (the operator's): never in the world or the log.
        self.secrets = ClientSecrets()
        #: ARM's long-running operations (Compute's operation status records), by operation ID.
        self.operations = Operations()
        #: Base URLs of the data-plane listeners (``keyvault``, ``blob``), set by the server facade when it
        #: opens them: ARM's vault and storage-account bodies name them (``vaultUri``, ``primaryEndpoints``).
        self.data_plane_urls: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"<Backend scenario={self.scenario!r}>"

    # ------------------------------------------------------------------ scenario
    @property
    def scenario(self) -> str:
        """Name of the current scenario."""
        return self._scenario.name

    @property
    def definition(self) -> Scenario:
        """The current scenario itself."""
        return self._scenario

    @property
    def params(self) -> dict[str, Any]:
        """The current scenario's resolved parameters (a copy)."""
        return dict(self._params)

    @property
    def faults_cleared(self) -> bool:
        return self._faults_cleared

    def layout(self) -> Layout:
        """The listeners the current scenario needs (IMDS comes back once faults are cleared)."""
        sc = self._scenario
        return Layout(sc.imds_listening or self._faults_cleared, sc.proxy, sc.legacy_port)

    def on_layout(self, hook: Callable[[Layout], None]) -> None:
        """Call ``hook(layout)`` (under :attr:`lock`) whenever the needed listeners may have changed."""
        self._layout_hooks.append(hook)

    def set_scenario(self, name: str, **params: Any) -> None:
        """Switch scenario: fresh world from the scenario's edit, faults re-armed, token cache emptied."""
        sc = get_scenario(name)
        resolved = resolve_params(sc, params)
        with self.lock:
            self._scenario, self._params = sc, resolved
            self._faults_cleared = False
            self.world = build_world(sc, self.base_world, resolved)
            self.issuer.lifetime = int(resolved["token_lifetime"])
            self.issuer.clear_cache()
            self.rearm()

    def rearm(self) -> None:
        """Apply the layout and the fault list the current scenario asks for (hung requests are released)."""
        with self.lock:
            layout = self.layout()
            for hook in self._layout_hooks:
                hook(layout)
            self.engine.replace([] if self._faults_cleared else build_faults(self._scenario, self._params))

    def clear_faults(self) -> None:
        """Stop every fault of the scenario (its world edit stays): what ``clear-faults`` does."""
        with self.lock:
            self._faults_cleared = True
            self.rearm()

    def overrides(self) -> dict[str, Any]:
        """The params that differ from the scenario's defaults (kept by ``reset``)."""
        defaults = {**COMMON_DEFAULTS, **self._scenario.defaults}
        return {k: v for k, v in self._params.items() if defaults.get(k) != v}

    def apply_fix(self, action: str, **kw: Any) -> dict[str, Any]:
        """Change the live world (or faults) as a learner's fix would; returns what happened."""
        fix = _check_fix(action, kw)
        with self.lock:  # a concurrent set_scenario replaces the world
            message = fix.run(self, kw)
        return {"action": action, "message": message, "scenario": self.scenario}

    def scenario_environment(self, endpoints: Endpoints) -> dict[str, str]:
        """Only the client-side variables the current scenario adds (a misconfigured client machine)."""
        build = self._scenario.client_env
        return {} if build is None else build(endpoints.scenario_context(), dict(self._params))

    def scenario_state(self, endpoints: Endpoints) -> dict[str, Any]:
        """Name, description, params, active faults and client-side extras of the current scenario."""
        return {
            "scenario": self.scenario,
            "description": self._scenario.description,
            "params": self.params,
            "faults": self.engine.describe(),
            "faults_cleared": self._faults_cleared,
            "imds_listening": endpoints.imds_listening,
            "scenario_environment": self.scenario_environment(endpoints),
        }

    # ------------------------------------------------------------------ time, ARM's clock, hung requests
    def arm_clock_skew(self) -> float:
        """Seconds ARM's clock runs ahead (``expired-token``); 0 once faults are cleared."""
        key = self._scenario.arm_clock_skew
        if key is None or self._faults_cleared:
            return 0.0
        return float(self._params.get(key) or 0)

    def arm_now(self) -> float:
        """ARM's current time (epoch seconds), skewed as the scenario says."""
        return self.clock.time() + self.arm_clock_skew()

    def hold(self) -> None:
        """Block a hung request until the scenario changes or the emulator stops (``imds-hang``)."""
        self.engine.released.wait()

    def release(self) -> None:
        """Free every hung request (the emulator is stopping)."""
        self.engine.release()

    # ------------------------------------------------------------------ reads and the log
    def world_dict(self) -> dict[str, Any]:
        """JSON-able description of the live world."""
        return self.world.to_dict()

    def jwks(self) -> dict[str, Any]:
        """The public token-signing keys."""
        return self.issuer.jwks()

    def record(self, entry: dict[str, Any]) -> None:
        """Add one request to the log (the transport calls this once per answered or dropped request)."""
        self.log.record(self._scrubbed(entry))

    def request_log(self) -> list[dict[str, Any]]:
        """Recent requests (oldest first); ``Authorization`` and tokens are redacted."""
        return self.log.entries()

    def clear_log(self) -> None:
        self.log.clear()

    # ------------------------------------------------------------------ the directory (Entra ID, Graph)
    def operator_credentials(self) -> tuple[str, str] | None:
        """``(client ID, secret)`` of the world's operator principal, or None for a world without one.

        On Azure you sign in as yourself with ``az login``; here the operator stands in for you. Its secret
        is made once per backend (per run) and survives scenario switches, which rebuild only the world.
        """
        op = operator(self.world)
        return None if op is None else (op.app_id, self.secrets.secret_for(op.app_id))

    def _scrubbed(self, entry: dict[str, Any]) -> dict[str, Any]:
        """A log entry in which no client secret appears (a client may put one in a query string)."""
        return {k: self.secrets.scrub(v) if isinstance(v, str) else v for k, v in entry.items()}

    # ------------------------------------------------------------------ ARM writes (protocol.md#arm-writes)
    def role_assignment_created(self, principal_id: str) -> None:
        """A role assignment was created through ARM: start what the scenario says about its propagation."""
        with self.lock:
            if self._faults_cleared:
                return
            for fault in new_assignment_faults(self._scenario, self._params, principal_id):
                self.engine.add(fault)


class Operations:
    """Status records of ARM's long-running operations, as a provider's operations URL reports them.

    The emulator carries a write out at once, so an operation is ``Succeeded`` from the start; the record
    exists so that clients poll the documented way (``Azure-AsyncOperation``) and get the documented body.
    The newest ``size`` are kept.
    """

    def __init__(self, size: int = 1000) -> None:
        self._records: dict[str, dict[str, Any]] = {}
        self._size = size
        self._lock = threading.Lock()

    def start(self, subscription: str, stamp: str) -> str:
        """Record a finished operation of ``subscription``; its ID (a GUID)."""
        op = str(uuid.uuid4())
        with self._lock:
            self._records[op] = {
                "subscription": subscription.lower(),
                "body": {"startTime": stamp, "endTime": stamp, "status": "Succeeded", "name": op},
            }
            while len(self._records) > self._size:
                self._records.pop(next(iter(self._records)))
        return op

    def status(self, subscription: str, op: str) -> dict[str, Any] | None:
        """The status body of operation ``op`` of ``subscription``, or None when there is none."""
        with self._lock:
            rec = self._records.get(op.lower())
            if rec is None or rec["subscription"] != subscription.lower():
                return None
            return dict(rec["body"])
