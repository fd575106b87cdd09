"""Schemathesis hooks for .ci/schemathesis: where the contract makes a
request's outcome depend on something its schema cannot say. Each one is
explained in docs/conformance.md; none hides a response from a check."""

import hashlib
import json
import re
from collections.abc import MutableMapping

import schemathesis

VALID_KEY = re.compile(r"[\x21-\x7E]{1,255}\Z")
MAX_TAGS = 20
DECIMAL = re.compile(r"[0-9]+\Z")


def _fingerprint(body) -> str:
    try:
        text = json.dumps(body, sort_keys=True, ensure_ascii=True)
    except (TypeError, ValueError):
        text = repr(body)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


@schemathesis.hook
def filter_case(context, case):
    """Drops a body whose `tags` repeat tags to more than 20 items but hold
    at most 20 distinct ones: the contract counts tags after removing
    duplicates (so the server accepts it), which JSON Schema's `maxItems`
    cannot say."""
    body = case.body
    if isinstance(body, dict):
        tags = body.get("tags")
        if isinstance(tags, list) and len(tags) > MAX_TAGS:
            try:
                distinct = len({json.dumps(tag, sort_keys=True) for tag in tags})
            except (TypeError, ValueError):
                return True
            if distinct <= MAX_TAGS:
                return False
    return True


@schemathesis.hook
def before_call(context, case, kwargs):
    """A valid `Idempotency-Key` becomes the generated key plus a digest of
    the body: one key per distinct body, as a client uses them. (Generated
    keys repeat across cases, and the same key with another body is a 422 by
    the contract.) The same body keeps its key, so a replay is still a
    replay.

    A valid `wait` becomes 0: a long poll holds the request for up to 60 s
    when nothing happens, which no time budget affords."""
    headers = case.headers
    if isinstance(headers, MutableMapping):
        for name, value in list(headers.items()):
            if name.lower() == "idempotency-key" and isinstance(value, str) and VALID_KEY.match(value):
                headers[name] = f"{value[:238]}.{_fingerprint(case.body)}"
    query = case.query
    if isinstance(query, MutableMapping):
        wait = query.get("wait")
        # Generated as a number, or as its text by the coverage phase.
        if isinstance(wait, int) and not isinstance(wait, bool) and 0 <= wait <= 60:
            query["wait"] = 0
        elif isinstance(wait, str) and DECIMAL.match(wait) and int(wait) <= 60:
            query["wait"] = "0"
