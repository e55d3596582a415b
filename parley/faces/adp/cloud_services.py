"""Which cloud service and version owns each action: the table `POST /` dispatches by.

Tencent Cloud API 3.0 names a call by three things: the service (in the signature's
credential scope, `date/service/tc3_request`), the version (`X-TC-Version`) and the
action (`X-TC-Action`). One endpoint serves several services here (ADP clients in Private
mode send `lke`, `lkeap` and `adp` calls to the same URL), so the action is looked up
under the version and the service that signed for it; a signature scoped to a service
that does not own the action is refused, as Tencent refuses a scope for another product.

A service's actions are registered with its version:

    CLOUD_SERVICES.register("lkeap", "2024-05-22", {"ChatCompletions": chat_completions})
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.responses import Response

from parley.faces.adp.cloud_params import CloudApiError, Params
from parley.services import Services

READ_VERBS = ("Describe", "Get", "List")
"""Tencent names actions verb first; actions with these verbs read (DescribeStorageCredential
and GetWsToken grant something, but only for the request's own parameters)."""


def changes_state(action: str) -> bool:
    """Whether the action creates, changes, deletes or publishes something (any verb but a read's)."""
    return not action.startswith(READ_VERBS)


Action = Callable[[Params, Services], Awaitable["dict[str, Any] | Response"]]
"""An action's handler: the `Response` fields as a dict (put in the JSON envelope), or a
whole Response of its own (a streamed answer)."""


class CloudServices:
    def __init__(self) -> None:
        self._actions: dict[tuple[str, str], dict[str, Action]] = {}  # (service, version) -> actions

    def register(self, service: str, version: str, actions: Mapping[str, Action]) -> None:
        """Adds `actions` to `service` at `version` (an action registered twice is an error)."""
        table = self._actions.setdefault((service, version), {})
        clash = table.keys() & actions.keys()
        if clash:
            raise ValueError(f"{service} {version} already has {sorted(clash)}")
        table.update(actions)

    def versions(self) -> list[str]:
        return sorted({version for _, version in self._actions})

    def actions(self) -> list[str]:
        """Every action of every service, sorted (for the OpenAPI document)."""
        return sorted({action for table in self._actions.values() for action in table})

    def resolve(self, action: str, version: str, service: str | None) -> Action:
        """The handler of `action` at `version`, for a request signed for `service`.

        `service` is None when signatures are not checked: the first service that has the
        action at that version takes it. Raises CloudApiError: NoSuchVersion,
        InvalidAction, or AuthFailure.InvalidAuthorization when another service owns it.
        """
        owners = [name for (name, v), table in self._actions.items() if v == version and action in table]
        if service is not None and owners and service not in owners:
            raise CloudApiError(
                "AuthFailure.InvalidAuthorization",
                "The request `Authorization` header does not conform to tencentcloud standards: "
                f"`Service` in Credential not valid: {action} ({version}) belongs to {owners[0]}, not {service}.",
            )
        if owners:
            return self._actions[(service or owners[0], version)][action]
        if not any(v == version for _, v in self._actions):
            raise CloudApiError(
                "NoSuchVersion", f"The API version `{version}` does not exist; use one of {', '.join(self.versions())}."
            )
        raise CloudApiError("InvalidAction", f"The API `{action}` does not exist in version {version}.")
