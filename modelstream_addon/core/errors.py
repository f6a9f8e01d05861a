"""Typed errors with messages a user can act on.

Nothing here may ever hold the API key: messages are built from the service's reply,
the HTTP status and our own text only.
"""

from __future__ import annotations

OFFLINE_MESSAGE = ("Online access is off: enable Edit > Preferences > System > Network > "
                   "Allow Online Access (or start Blender with --online-mode).")


class ModelStreamError(Exception):
    """Base error. `retryable` tells the engine whether trying again can help."""

    retryable = False
    hint = ""

    def __init__(self, message, *, status=None, code=None, param=None, trace_id=None,
                 task_id=None):
        self.detail = message
        self.status = status
        self.code = code
        self.param = param
        self.trace_id = trace_id
        self.task_id = task_id
        super().__init__(message)

    def __str__(self):
        parts = [self.detail]
        if self.hint:
            parts.append(self.hint)
        refs = []
        if self.task_id:
            refs.append(f"task {self.task_id}")
        if self.trace_id:
            refs.append(f"trace {self.trace_id}")
        if refs:
            parts.append("(" + ", ".join(refs) + ")")
        return " ".join(parts)


class ConfigError(ModelStreamError):
    """Settings are missing or wrong; nothing was sent."""


class InvalidRequestError(ModelStreamError):
    """The request was refused as invalid (HTTP 400 / code 1004)."""

    def __init__(self, message, **kw):
        super().__init__(message, **kw)
        if self.param and self.param not in message:
            self.detail = f"{message} (field: {self.param})"


class AuthenticationError(ModelStreamError):
    hint = ("Check the API key: set MODELSTREAM_API_KEY or Edit > Preferences > Add-ons > "
            "ModelStream > API Key.")


class PaymentRequiredError(ModelStreamError):
    hint = "Your ModelStream quota or credit is used up: top up your account."


class ForbiddenError(ModelStreamError):
    hint = ("The key is frozen, your IP is not allowed, or the key has no access to this "
            "model: check your ModelStream account.")


class NotFoundError(ModelStreamError):
    hint = ("Check the task id and the base URL; a task can only be read with the key "
            "that created it.")


class RateLimitError(ModelStreamError):
    retryable = True
    hint = "Too many requests or tasks at once: wait and try again."

    def __init__(self, message, *, retry_after=None, **kw):
        super().__init__(message, **kw)
        self.retry_after = retry_after


class ServiceError(ModelStreamError):
    retryable = True
    hint = "The service or its upstream failed: try again later."


class ConnectionFailedError(ModelStreamError):
    """The request provably never reached the service (refused, DNS failure)."""

    retryable = True
    hint = "Check the base URL, your network, proxy and firewall."


class RequestUncertainError(ModelStreamError):
    """The request may have reached the service: a create must not be resent."""

    hint = ("The task may have been created: check your ModelStream task list before "
            "trying again.")


class NotSentError(ModelStreamError):
    """The request failed before anything was sent (a bad header or body): nothing was
    created, so nothing can have been charged."""

    hint = "Nothing was sent, so nothing was charged."


class ReadTimeoutError(ModelStreamError):
    """A read timed out after the request was sent."""

    retryable = True
    hint = "The service is slow to answer: try again, or raise the read timeout."


class PromptCharactersError(InvalidRequestError):
    hint = ("The prompt has characters the service does not accept: remove emoji and "
            "special symbols and try again.")


class ContentPolicyError(ModelStreamError):
    hint = "The prompt or image was refused by the content policy: change it and try again."


class TaskFailedError(ModelStreamError):
    """The task reached a final status other than success."""


class DownloadError(ModelStreamError):
    def __init__(self, message, *, retryable=False, **kw):
        super().__init__(message, **kw)
        self.retryable = retryable


class UploadUnavailableError(ModelStreamError):
    """The service relays only the task endpoints: send images inline instead."""


class CancelledError(ModelStreamError):
    """The user stopped waiting."""
