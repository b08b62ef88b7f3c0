"""The node's errors, each carrying the HTTP status and the OpenAI-style error object it is answered with."""

from __future__ import annotations

from typing import Any

from bme.errors import BmeError


class NodeError(BmeError):
    """An error the node answers with an OpenAI-style error object (`{"error": {...}}`)."""

    status_code = 500
    error_type = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def body(self) -> dict[str, Any]:
        """The JSON body OpenAI clients expect for an error."""
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }

    def headers(self) -> dict[str, str]:
        """Extra response headers (e.g. Retry-After)."""
        return {}


class InvalidRequest(NodeError):
    """The request is malformed or breaks a limit (400)."""

    status_code = 400
    error_type = "invalid_request_error"


class PromptTooLarge(InvalidRequest):
    """The prompt, or prompt plus completion, exceeds what the node accepts (400)."""

    code = "context_length_exceeded"


class Unauthorized(NodeError):
    """The request does not carry a valid credential of the trusted relayer (401)."""

    status_code = 401
    error_type = "authentication_error"
    code = "invalid_api_key"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'BME-Relayer realm="bme-node"'}


class ModelNotFound(NodeError):
    """The requested model is not served by this node (404)."""

    status_code = 404
    error_type = "invalid_request_error"
    code = "model_not_found"


class PayloadTooLarge(NodeError):
    """The request body exceeds the node's byte limit (413)."""

    status_code = 413
    error_type = "invalid_request_error"
    code = "request_too_large"


class ServerBusy(NodeError):
    """Every slot is busy and the queue is full, or the wait in the queue ran out (503)."""

    status_code = 503
    error_type = "server_error"
    code = "server_busy"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class ModelUnavailable(NodeError):
    """The model runtime crashed or is restarting, so the request did not run (to the end) (503).

    The message says what happened to the runtime (e.g. the signal that killed it), so that a client, and
    the relayer's log, learn more than "Server disconnected".
    """

    status_code = 503
    error_type = "server_error"
    code = "model_unavailable"

    def __init__(self, message: str, *, retry_after_s: int = 2) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class ModelRuntimeFailed(NodeError):
    """The model runtime could not start, or kept crashing on restart: the node cannot serve and stops.

    Its message is one line naming the cause (the signal, the exit code or the error), for `bme operator
    serve` to print before it exits non-zero.
    """


class RequestTimeout(NodeError):
    """The completion did not finish within the node's request timeout (504)."""

    status_code = 504
    error_type = "timeout_error"
    code = "timeout"


class UpstreamError(NodeError):
    """The upstream server failed, was unreachable, or answered without what the node needs (502)."""

    status_code = 502
    error_type = "upstream_error"
    code = "upstream_error"


class UpstreamRejected(NodeError):
    """The upstream server refused the request with a 4xx; its status and message are passed on."""

    error_type = "invalid_request_error"

    def __init__(
        self, message: str, *, status_code: int, code: str | None = None, param: str | None = None
    ) -> None:
        super().__init__(message, param=param, code=code)
        self.status_code = status_code
