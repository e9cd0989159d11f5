#!/usr/bin/env python3
"""Check stream entries against the rules Protean applies when it reads one.

Standard library only. Input on stdin: one JSON object per line,
{"stream": "<stream name>", "data": "<the entry's data field>"}. Every entry
is checked; each problem is printed as "<stream> <n>: <problem>", then a
summary line. Exit status 0 when every entry passes, 1 otherwise, 2 on
unusable input.

The rules are those of Protean's message format (its Message,
Metadata, MessageHeaders, MessageEnvelope, DomainMeta and EventStoreMeta
models, which forbid unknown members, and Message.deserialize):

- the data field is a JSON object holding "data" (an object) and
  "metadata" (an object), and nothing else;
- metadata holds at most headers, envelope, domain, event_store and
  extensions, each of the type Protean declares, with no unknown member;
- headers.id and headers.type are non-empty strings, the type is
  "<Domain>.<Name>.v<N>", headers.time and headers.deadline are ISO 8601
  date-times (or null);
- domain.kind is EVENT or COMMAND, domain.version is an integer (or the
  legacy "v<N>" string) equal to the type's N, domain.priority an integer;
- envelope.checksum, when present, is the SHA-256 hex of the payload as
  json.dumps(data, sort_keys=True, separators=(",", ":")) encodes it
  (ensure_ascii on, as by default): the check Message.deserialize makes.
"""

import datetime
import hashlib
import json
import re
import sys

TOP = {"data", "metadata"}
METADATA = {"headers", "envelope", "domain", "event_store", "extensions"}
HEADERS = {"id", "time", "type", "stream", "traceparent", "idempotency_key", "deadline"}
TRACEPARENT = {"trace_id", "parent_id", "sampled"}
ENVELOPE = {"specversion", "checksum"}
DOMAIN_STR = {"fqn", "kind", "origin_stream", "stream_category", "sequence_id", "correlation_id", "causation_id"}
DOMAIN = DOMAIN_STR | {"version", "asynchronous", "expected_version", "priority"}
EVENT_STORE = {"global_position", "position"}
TYPE_RE = re.compile(r"^(?P<domain>.+)\.(?P<name>[^.]+)\.v(?P<version>[1-9][0-9]*)$")
TIME_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|z|[+-]\d{2}(:?\d{2})?)?$"
)


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def checksum(payload):
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_time(where, v, problems):
    if v is None:
        return
    if not isinstance(v, str) or not TIME_RE.match(v):
        problems.append("%s is not an ISO 8601 date-time: %r" % (where, v))
        return
    # The standard library parses at most microseconds; a longer fraction
    # is cut to six digits, as Protean's model parser does.
    text = re.sub(r"(\.\d{6})\d+", r"\1", v.replace("z", "Z")).replace("Z", "+00:00")
    try:
        datetime.datetime.fromisoformat(text)
    except ValueError as e:
        problems.append("%s: %s" % (where, e))


def check_members(where, obj, allowed, problems):
    if not isinstance(obj, dict):
        problems.append("%s is not an object" % where)
        return False
    extra = sorted(set(obj) - allowed)
    if extra:
        problems.append("%s has members Protean does not know: %s" % (where, ", ".join(extra)))
    return True


def check_entry(raw):
    problems = []
    try:
        msg = json.loads(raw)
    except ValueError as e:
        return ["not JSON: %s" % e]
    if not check_members("the entry", msg, TOP, problems):
        return problems
    if "data" not in msg or "metadata" not in msg:
        return problems + ["missing data or metadata"]
    data, meta = msg["data"], msg["metadata"]
    if not isinstance(data, dict):
        problems.append("data is not an object")
    if not check_members("metadata", meta, METADATA, problems):
        return problems

    headers = meta.get("headers")
    if not check_members("metadata.headers", headers, HEADERS, problems):
        return problems
    for key in ("id", "type"):
        if not isinstance(headers.get(key), str) or not headers.get(key):
            problems.append("metadata.headers.%s is missing or not a string" % key)
    for key in ("stream", "idempotency_key"):
        if headers.get(key) is not None and not isinstance(headers[key], str):
            problems.append("metadata.headers.%s is not a string" % key)
    check_time("metadata.headers.time", headers.get("time"), problems)
    check_time("metadata.headers.deadline", headers.get("deadline"), problems)
    tp = headers.get("traceparent")
    if tp is not None and check_members("metadata.headers.traceparent", tp, TRACEPARENT, problems):
        if not isinstance(tp.get("trace_id"), str) or not isinstance(tp.get("parent_id"), str):
            problems.append("metadata.headers.traceparent needs trace_id and parent_id strings")
    match = TYPE_RE.match(headers.get("type") or "")
    if not match:
        problems.append("metadata.headers.type %r is not <Domain>.<Name>.v<N>" % headers.get("type"))

    env = meta.get("envelope")
    if env is not None and check_members("metadata.envelope", env, ENVELOPE, problems):
        if env.get("specversion") is not None and not isinstance(env["specversion"], str):
            problems.append("metadata.envelope.specversion is not a string")
        want = env.get("checksum")
        if want:
            got = checksum(data)
            if got != want:
                problems.append("checksum mismatch: envelope says %s, Protean computes %s" % (want, got))

    dom = meta.get("domain")
    if dom is not None and check_members("metadata.domain", dom, DOMAIN, problems):
        if dom.get("kind") not in ("EVENT", "COMMAND"):
            problems.append("metadata.domain.kind %r is not EVENT or COMMAND" % dom.get("kind"))
        for key in DOMAIN_STR:
            if dom.get(key) is not None and not isinstance(dom[key], str):
                problems.append("metadata.domain.%s is not a string" % key)
        version = dom.get("version", 1)
        if isinstance(version, str) and re.match(r"^[vV]?[0-9]+$", version):
            version = int(version.lstrip("vV"))
        if not is_int(version):
            problems.append("metadata.domain.version %r is not an integer" % (dom.get("version"),))
        elif match and version != int(match.group("version")):
            problems.append("metadata.domain.version %d differs from the type's v%s" % (version, match.group("version")))
        if "priority" in dom and not is_int(dom["priority"]):
            problems.append("metadata.domain.priority %r is not an integer" % (dom["priority"],))
        if "asynchronous" in dom and not isinstance(dom["asynchronous"], bool):
            problems.append("metadata.domain.asynchronous is not a boolean")
        if dom.get("expected_version") is not None and not is_int(dom["expected_version"]):
            problems.append("metadata.domain.expected_version is not an integer")

    es = meta.get("event_store")
    if es is not None and check_members("metadata.event_store", es, EVENT_STORE, problems):
        for key in EVENT_STORE:
            if es.get(key) is not None and not is_int(es[key]):
                problems.append("metadata.event_store.%s is not an integer" % key)
    if "extensions" in meta and not isinstance(meta["extensions"], dict):
        problems.append("metadata.extensions is not an object")
    return problems


def main():
    failed = total = 0
    for n, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            stream, raw = item["stream"], item["data"]
        except (ValueError, KeyError, TypeError) as e:
            print("input line %d is not {\"stream\": ..., \"data\": ...}: %s" % (n, e))
            return 2
        total += 1
        problems = check_entry(raw)
        if problems:
            failed += 1
            for p in problems:
                print("%s %d: %s" % (stream, n, p))
    print("%d entries checked, %d failed" % (total, failed))
    return 1 if failed or total == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
