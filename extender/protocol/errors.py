"""What every part of the protocol shares: its error, Kubernetes' length limits, the checks
of names and labels, and reading a JSON body."""
from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

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


# Kubernetes' grammars (k8s.io/apimachinery/pkg/util/validation): object names of pods and
# nodes are DNS-1123 subdomains, namespaces DNS-1123 labels; a label key is an optional
# DNS-1123 subdomain prefix and "/" before a name part, a label value a name part or empty.
_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN = rf"{_LABEL}(?:\.{_LABEL})*"
_QUALIFIED = r"[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?"
DNS_SUBDOMAIN = re.compile(_SUBDOMAIN)
DNS_LABEL = re.compile(_LABEL)
_LABEL_KEY = re.compile(rf"(?:(?P<prefix>{_SUBDOMAIN})/)?(?P<name>{_QUALIFIED})")
_LABEL_VALUE = re.compile(rf"(?:{_QUALIFIED})?")
_LIST_CHARS = re.compile(r"[-a-z0-9.\n]*")  # a whole list at once, then its separators (C scans)
_LIST_BREAKS = ("\n\n", "\n-", "-\n", "\n.", ".\n", "..", ".-", "-.")
_GRAMMAR = {MAX_NAME: (DNS_SUBDOMAIN, "a DNS-1123 subdomain (lower-case letters, digits, '-' and '.')"),
            MAX_LABEL: (DNS_LABEL, "a DNS-1123 label (lower-case letters, digits and '-')")}


def check_name(value: str, field: str, limit: int = MAX_NAME) -> None:
    """Kubernetes' length of the field; with `limit` MAX_NAME (pod and node names) or MAX_LABEL
    (namespaces) its grammar too (a UID's MAX_UID: the length only)."""
    if len(value) > limit:
        raise ProtocolError(f"'{field}' is longer than {limit} characters: {quantity.prefix(value)}")
    grammar = _GRAMMAR.get(limit)
    if grammar is not None and not grammar[0].fullmatch(value):
        raise ProtocolError(f"'{field}' is not {grammar[1]}: {quantity.prefix(value)}")


def check_names(names: Iterable[str], field: str) -> None:
    """Every name a DNS-1123 subdomain of at most MAX_NAME characters (a candidate list: one
    regular-expression scan of the joined list; the first bad one is named on failure)."""
    listed = list(names)
    if not listed:
        return
    if max(map(len, listed)) <= MAX_NAME:
        text = "\n" + "\n".join(listed) + "\n"  # each name alphanumeric at both ends, no empty label
        if text.count("\n") == len(listed) + 1 and _LIST_CHARS.fullmatch(text) \
                and not any(bad in text for bad in _LIST_BREAKS):
            return
    for i, name in enumerate(listed):
        check_name(name, f"{field}[{i}]")


def check_labels(labels: Mapping[str, Any], field: str) -> None:
    """Kubernetes' rules for label keys and values (lengths and grammar)."""
    for key, value in labels.items():
        if not isinstance(value, str):
            raise ProtocolError(f"'{field}' values must be strings: {quantity.prefix(key)} is {kind(value)}")
        if len(key) > MAX_LABEL_KEY:
            raise ProtocolError(f"'{field}' has a key longer than {MAX_LABEL_KEY} characters: {quantity.prefix(key)}")
        match = _LABEL_KEY.fullmatch(key)
        if match is None or len(match["name"]) > MAX_LABEL or len(match["prefix"] or "") > MAX_NAME:
            raise ProtocolError(f"'{field}' has a key that is not a Kubernetes label key ([prefix/]name, name "
                                f"at most {MAX_LABEL} of letters, digits, '-', '_', '.'): {quantity.prefix(key)}")
        where = f"'{field}.{key[:40]}{'...' if len(key) > 40 else ''}'"
        if len(value) > MAX_LABEL:
            raise ProtocolError(f"{where} is longer than {MAX_LABEL} characters: {quantity.prefix(value)}")
        if not _LABEL_VALUE.fullmatch(value):
            raise ProtocolError(f"{where} is not a Kubernetes label value (empty, or letters, digits, '-', "
                                f"'_', '.' between alphanumerics): {quantity.prefix(value)}")


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
