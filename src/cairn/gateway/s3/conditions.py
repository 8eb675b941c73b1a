"""Conditional requests: If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since. Pure.

Theory of operation. `evaluate` decides, from the request's condition headers and the
object's ETag and Last-Modified, whether a GET/HEAD goes ahead, is `NotModified` (304) or
`PreconditionFailed` (412). The order is RFC 9110 §13.2.2's, with S3's documented
combinations falling out of it:

1. If-Match present: a mismatch is 412 (and If-Unmodified-Since is then not looked at, so
   If-Match true + If-Unmodified-Since false is 200, as S3 documents);
2. otherwise If-Unmodified-Since: modified after it is 412;
3. If-None-Match present: a match is 304 for GET/HEAD (and If-Modified-Since is then not
   looked at, so If-None-Match false + If-Modified-Since true is 304... only by rule 4);
4. otherwise If-Modified-Since: not modified since is 304.

CopyObject's `x-amz-copy-source-if-*` headers apply the same rules to the source, except
that every failure is 412 (`copy=True`). Times compare at whole seconds (HTTP dates have
no fractions); an unparsable date is ignored, as HTTP says. ETags compare strongly,
without quotes; `*` matches any existing object; lists are comma-separated.
"""

from __future__ import annotations

import email.utils
from collections.abc import Mapping

from cairn.gateway.s3.errors import S3Error
from cairn.meta.write_condition import WriteCondition

HEADERS = ("if-match", "if-none-match", "if-modified-since", "if-unmodified-since")
COPY_SOURCE_HEADERS = tuple(f"x-amz-copy-source-{name}" for name in HEADERS)


def _etags(value: str) -> list[str]:
    tags = []
    for item in value.split(","):
        tag = item.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        tags.append(tag.strip('"'))
    return tags


def etag_matches(value: str, etag: str) -> bool:
    tags = _etags(value)
    return "*" in tags or etag in tags


def parse_http_date(value: str) -> float | None:
    try:
        parsed = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.timestamp()


def evaluate(
    conditions: Mapping[str, str], etag: str, last_modified_s: float, *, copy: bool = False
) -> None:
    """Raise `PreconditionFailed` or `NotModified`, or return to go ahead.

    `conditions` maps the four header names (lower case, without the copy-source prefix)
    to their values."""
    modified = int(last_modified_s)
    if_match = conditions.get("if-match")
    if if_match is not None:
        if not etag_matches(if_match, etag):
            raise S3Error(
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold",
            )
    else:
        since = conditions.get("if-unmodified-since")
        limit = parse_http_date(since) if since is not None else None
        if limit is not None and modified > limit:
            raise S3Error(
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold",
            )
    not_modified = "PreconditionFailed" if copy else "NotModified"
    if_none_match = conditions.get("if-none-match")
    if if_none_match is not None:
        if etag_matches(if_none_match, etag):
            raise S3Error(not_modified, "Not Modified" if not copy else "the source ETag matches")
    else:
        since = conditions.get("if-modified-since")
        limit = parse_http_date(since) if since is not None else None
        if limit is not None and modified <= limit:
            raise S3Error(
                not_modified, "Not Modified" if not copy else "the source is not modified"
            )


def request_conditions(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: headers[name] for name in HEADERS if name in headers}


def copy_source_conditions(headers: Mapping[str, str]) -> dict[str, str]:
    prefix = len("x-amz-copy-source-")
    return {name[prefix:]: headers[name] for name in COPY_SOURCE_HEADERS if name in headers}


def write_condition(headers: Mapping[str, str]) -> WriteCondition | None:
    """`If-None-Match: *` and `If-Match: "etag"` of a PUT, as S3 takes them (400 for an
    empty If-Match, 501 for an If-None-Match other than `*`, as S3 answers)."""
    none_match = headers.get("if-none-match")
    match = headers.get("if-match")
    if none_match is None and match is None:
        return None
    if none_match is not None and none_match.strip() != "*":
        raise S3Error("NotImplemented", "If-None-Match on a write supports only *")
    etag = None
    if match is not None:
        etag = match.strip()
        if etag != "*":
            etag = etag.removeprefix("W/").strip('"')
        if not etag:
            raise S3Error("InvalidArgument", "If-Match needs an ETag")
    return WriteCondition(if_none_match=none_match is not None, if_match=etag)
