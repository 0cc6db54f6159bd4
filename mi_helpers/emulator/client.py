"""``AdminClient``: drive an emulator in another process (e.g. the one ``mi-helpers lab`` started) over HTTP.

Same method names as :class:`~mi_helpers.emulator.Emulator`. Proxies from the environment are never used
(the admin API is on loopback, and a scenario may set ``HTTP_PROXY`` on purpose).
"""

from __future__ import annotations

import os
from typing import Any

import requests

from mi_helpers.constants import EnvironmentVariables as Env
from mi_helpers.validate import InputError

__all__ = ["AdminApiError", "AdminClient"]


class AdminApiError(RuntimeError):
    """The admin API refused a request; ``status`` and the server's ``body`` are kept.

    (The server side's wire error is :class:`mi_helpers.emulator.errors.AdminError`.)
    """

    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        msg = body.get("message") if isinstance(body, dict) else None
        super().__init__(f"emulator admin API answered {status}: {msg or body}")


class AdminClient:
    """HTTP client of the admin API at ``admin_url`` (``http://127.0.0.1:PORT/_emulator``)."""

    def __init__(self, admin_url: str, key: str, timeout: float = 10.0) -> None:
        if not isinstance(admin_url, str) or not admin_url.startswith(("http://", "https://")):
            raise InputError(
                "admin_url",
                "must be the emulator's admin URL, e.g. http://127.0.0.1:PORT/_emulator",
                admin_url,
            )
        if not isinstance(key, str) or not key:
            raise InputError("key", f"the admin key ({Env.MI_HELPERS_EMULATOR_KEY}) is required", None)
        self.admin_url = admin_url.rstrip("/")
        self._key = key
        self.timeout = timeout
        self._session = requests.Session()
        self._session.trust_env = False  # no proxies, no netrc: loopback only
        self._session.proxies = {"http": "", "https": ""}
        self._session.headers["X-Emulator-Key"] = key

    def __repr__(self) -> str:
        return f"AdminClient({self.admin_url!r}, key=…)"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> AdminClient:
        """Build from ``MI_HELPERS_EMULATOR_ADMIN`` and ``MI_HELPERS_EMULATOR_KEY``."""
        env = os.environ if environ is None else environ
        url = env.get(Env.MI_HELPERS_EMULATOR_ADMIN, "")
        key = env.get(Env.MI_HELPERS_EMULATOR_KEY, "")
        if not url:
            raise InputError(
                Env.MI_HELPERS_EMULATOR_ADMIN,
                "is not set (start `mi-helpers emulator` or `mi-helpers lab`)",
                None,
            )
        if not key:
            raise InputError(
                Env.MI_HELPERS_EMULATOR_KEY,
                f"is not set (it comes with {Env.MI_HELPERS_EMULATOR_ADMIN})",
                None,
            )
        return cls(url, key)

    def close(self) -> None:
        self._session.close()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        resp = self._session.request(method, f"{self.admin_url}/{path}", json=body, timeout=self.timeout)
        try:
            data = resp.json()
        except ValueError:
            data = resp.text
        if resp.status_code >= 400:
            if resp.status_code == 400 and isinstance(data, dict) and data.get("error") == "invalid_input":
                message = str(data.get("message", ""))
                field, _, rest = message.partition(": ")
                raise InputError(field or "input", rest or message)
            raise AdminApiError(resp.status_code, data)
        return data

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "health")
        return result

    @property
    def scenario(self) -> str:
        return str(self._call("GET", "scenario")["scenario"])

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._call("GET", "scenario")["params"])

    def scenario_state(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "scenario")
        return result

    def scenarios(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "scenarios")["scenarios"])

    def set_scenario(self, name: str, **params: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._call("PUT", "scenario", {"scenario": name, "params": params})
        return result

    def apply_fix(self, action: str, **kw: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "fix", {"action": action, **kw})
        return result

    def world_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "world")
        return result

    def request_log(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "requests")["requests"])

    def clear_log(self) -> None:
        self._call("DELETE", "requests")

    def environment(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in self._call("GET", "environment").items()}

    @property
    def admin_key(self) -> str:
        return self._key

    @property
    def imds_url(self) -> str:
        return str(self.health()["imds_url"])

    @property
    def arm_url(self) -> str:
        return str(self.health()["arm_url"])

    @property
    def ca_bundle(self) -> str:
        """The CA bundle the emulator advertises (its ``REQUESTS_CA_BUNDLE`` without scenario extras)."""
        return str(self.health()["ca_bundle"])
