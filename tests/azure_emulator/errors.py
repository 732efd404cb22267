"""ARM's error shape: `{"error": {"code": ..., "message": ...}}`, raised as `ArmError` anywhere in a handler."""

from __future__ import annotations

import json

from aiohttp import web


class ArmError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}
        self.details: list[dict] | None = None
        self.additional_info: list[dict] | None = None

    def response(self) -> web.Response:
        if self.details is None and self.additional_info is None:
            return error_response(self.status, self.code, self.message, self.headers)
        error = {"code": self.code, "message": self.message, "details": self.details or [],
                 "additionalInfo": self.additional_info or []}
        return json_response({"error": error}, status=self.status, headers=self.headers)

    def body(self) -> dict:
        """The ARM error object (for a Failed operation's status body)."""
        error = {"code": self.code, "message": self.message}
        if self.details is not None:
            error["details"] = self.details
        return error


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return json_response({"error": {"code": code, "message": message}}, status=status, headers=headers)


def json_response(body, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=json.dumps(body).encode(), content_type="application/json",
                        headers=headers or {})


def not_found(path: str) -> ArmError:
    from .ids import ArmPath

    p = ArmPath.parse(path)
    if len(p.segs) == 4 and p.resource_group:
        return ArmError(404, "ResourceGroupNotFound", f"Resource group '{p.resource_group}' could not be found.")
    low = [s.lower() for s in p.segs]
    at = max((i for i, s in enumerate(low) if s == "providers"), default=None)
    shown = "/".join(p.segs[at + 1:]) if at is not None else p.name
    return ArmError(404, "ResourceNotFound",
                    f"The Resource '{shown}' under resource group '{p.resource_group}' was not found. For more "
                    f"details please go to https://aka.ms/ARMResourceNotFoundFix")


def bad_request(code: str, message: str) -> ArmError:
    return ArmError(400, code, message)


def conflict(code: str, message: str) -> ArmError:
    return ArmError(409, code, message)


def aml_error(status: int, code: str, message: str, generic: str = "UserError",
              generic_message: str | None = None) -> ArmError:
    """An Azure ML management-front-end error: a generic code at the top, the specific one in `details`
    (recording 02 #1: 404 `UserError` / "The specified resource was not found." with `ModelNotFound` in details,
    `additionalInfo` naming the component, header `x-ms-response-type: error`)."""
    err = ArmError(status, generic, generic_message or message, headers={"x-ms-response-type": "error"})
    err.details = [{"code": code, "message": message, "details": [], "additionalInfo": []}]
    err.additional_info = [{"type": "ComponentName", "info": {"value": "managementfrontend"}}]
    return err
