"""Service errors the emulator answers with (HTTP status from the model, ``x-amzn-ErrorType`` header, JSON message)."""

from __future__ import annotations

import re

# The model's ``Message`` shape: pattern ``[\w -:`]+`` (the range ' '..':' includes ``!"#$%&'()*+,-./`` and digits).
_MESSAGE_CHAR = re.compile(r"[\w -:`]")
MAX_MESSAGE = 2048


class ServiceError(Exception):
    """An AWS service error: ``code`` is the error shape name, e.g. ``ConflictException``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def validation(message: str) -> ServiceError:
    return ServiceError("ValidationException", message)


def conflict(message: str) -> ServiceError:
    return ServiceError("ConflictException", message)


def not_found(message: str) -> ServiceError:
    return ServiceError("ResourceNotFoundException", message)


def quota(message: str) -> ServiceError:
    return ServiceError("ServiceQuotaExceededException", message)


#: What HealthImaging answers to a stale ``latestVersionId``: ``ResourceNotFoundException`` (404) with this message,
#: as comic/grand-challenge.org's production code expects from UpdateImageSetMetadata (``cases/tasks.py``,
#: ``revert_image_set_to_initial_version``, 2025-10). The docs name no error for it; a 409 was this emulator's guess.
STALE_VERSION_MESSAGE = "Requested version(s) of ImageSet(s) is not the latest."
STALE_VERSION_ERRORS = ("ResourceNotFoundException", "ConflictException")


def stale_version(code: str, detail: str) -> ServiceError:
    """A stale ``latestVersionId``: the real 404 with its fixed message, or (``code="ConflictException"``) a 409."""
    if code == "ResourceNotFoundException":
        return not_found(STALE_VERSION_MESSAGE)
    return conflict(detail)


def valid_message(text: str) -> bool:
    """Whether ``text`` fits the model's ``Message`` shape (GetImageSet/ListImageSetVersions ``message``)."""
    return 0 < len(text) <= MAX_MESSAGE and all(_MESSAGE_CHAR.fullmatch(c) for c in text)


def sanitize_message(text: str) -> str:
    """Replace characters the ``Message`` shape does not allow, so that a message always validates."""
    cleaned = "".join(c if _MESSAGE_CHAR.fullmatch(c) else "_" for c in text)[:MAX_MESSAGE]
    return cleaned or "_"
