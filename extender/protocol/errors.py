"""What every part of the protocol shares: its error, Kubernetes' length limits, the checks
of names and labels, and reading a JSON body."""
from __future__ import annotations

from typing import Any, Mapping

import orjson

from extender.core import quantity


class ProtocolError(ValueError):
    """A request the extender cannot read: answered 400 with this message, which names the
    field path and quotes at most a short prefix of the bad value."""


# Kubernetes' own lengths (k8s.io/apimachinery/pkg/util/validation): a DNS-1123 subdomain
# (pod and node names) is at most 253 characters, a DNS-1123 label (namespaces) and a label
# value 63, a qualified label key a 253-character prefix, "/", and a 63-character name.
MAX_NAME = 253
MAX_LABEL = 63
MAX_LABEL_KEY = 253 + 1 + 63
MAX_UID = 128  # a UUID is 36; generous for other UID shapes, still bounded
MAX_CANDIDATES = 20_000
"""Most candidates in one request (NodeNames or Nodes.items). Kubernetes supports clusters of
5,000 nodes; 20,000 leaves room for larger ones while bounding the work of one request."""


def kind(value: Any) -> str:
    """A JSON type name for messages (never a Python one)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "an unexpected value"


def check_name(value: str, field: str, limit: int = MAX_NAME) -> None:
    if len(value) > limit:
        raise ProtocolError(f"'{field}' is longer than {limit} characters: {quantity.prefix(value)}")


def check_labels(labels: Mapping[str, Any], field: str) -> None:
    for key, value in labels.items():
        if not isinstance(value, str):
            raise ProtocolError(f"'{field}' values must be strings: {quantity.prefix(key)} is {kind(value)}")
        if len(key) > MAX_LABEL_KEY:
            raise ProtocolError(f"'{field}' has a key longer than {MAX_LABEL_KEY} characters: {quantity.prefix(key)}")
        if len(value) > MAX_LABEL:
            raise ProtocolError(f"'{field}.{key[:40]}{'...' if len(key) > 40 else ''}' is longer than {MAX_LABEL} characters: "
                                f"{quantity.prefix(value)}")


def fold(body: Any, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ProtocolError(f"{what} must be a JSON object, got {kind(body)}")
    return {str(k).lower(): v for k, v in body.items()}


def loads(data: bytes) -> Any:
    if not data:
        raise ProtocolError("empty request body: expected a JSON object")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"malformed JSON: {str(exc)[:120]}") from exc
