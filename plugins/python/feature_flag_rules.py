"""The `feature-flag` rules that version 1 and version 2 share.

Imported by both plugins (`feature-flag-v1/app.py`, `feature-flag-v2/app.py`); the build passes
this directory to componentize-py with `-p`, so each component carries its own copy. Plain
Python with no generated bindings, so that it can be tested with any Python 3.

A violation is returned as a `(path, message, code)` tuple; the plugins turn them into the
generated `Violation` records. Every rule skips itself when its inputs are missing or mistyped:
the plugin also sees documents that failed the JSON Schema, and the schema reports those.
"""

import json
import math


def is_number(v):
    """A finite JSON number (a Python bool is an int, but JSON's true is not a number; 1e400
    parses as infinity, which the JavaScript plugin skips too)."""
    if isinstance(v, bool):
        return False
    return isinstance(v, int) or (isinstance(v, float) and math.isfinite(v))


def show_number(n):
    """`30` for both 30 and 30.0, as JSON (and JavaScript) would print them."""
    if isinstance(n, float) and n.is_integer():
        return str(int(n))
    return str(n)


def rollout_while_disabled(enabled, percent, percent_name, percent_path):
    """Rule 1, `rollout-while-disabled`: a disabled flag must roll out to 0 percent."""
    if enabled is not False or not is_number(percent) or not percent > 0:
        return []
    return [(
        percent_path,
        f"{percent_name} is {show_number(percent)} but the flag is disabled: "
        "set it to 0 or enable the flag",
        "rollout-while-disabled",
    )]


def allow_deny_overlap(allow, deny):
    """Rule 2, `allow-deny-overlap`: one violation per user of `deny` also in `allow`."""
    if not isinstance(allow, list) or not isinstance(deny, list):
        return []
    allowed = {u for u in allow if isinstance(u, str)}
    return [
        (
            f"/deny/{index}",
            f"user {json.dumps(user, ensure_ascii=False)} is in both allow and deny: "
            "remove it from one of them",
            "allow-deny-overlap",
        )
        for index, user in enumerate(deny)
        if isinstance(user, str) and user in allowed
    ]


def key_outside_flags(key):
    """Rule 3, `key-outside-flags`: a non-empty key must start with `flags/`."""
    if not isinstance(key, str) or key == "" or key.startswith("flags/"):
        return []
    return [(
        "",
        f"key {json.dumps(key, ensure_ascii=False)} is outside flags/: "
        "feature flags must be stored under flags/",
        "key-outside-flags",
    )]


def check_feature_flag(key, doc, version):
    """All three rules over a parsed document; `version` 1 or 2 says where the percent is."""
    out = []
    if isinstance(doc, dict):
        if version == 1:
            out += rollout_while_disabled(
                doc.get("enabled"), doc.get("rollout_percent"),
                "rollout_percent", "/rollout_percent")
        elif isinstance(doc.get("rollout"), dict):
            out += rollout_while_disabled(
                doc.get("enabled"), doc["rollout"].get("percent"),
                "rollout.percent", "/rollout/percent")
        out += allow_deny_overlap(doc.get("allow"), doc.get("deny"))
    out += key_outside_flags(key)
    return out


def check_document(key, document, version):
    """Parses the JSON text (always JSON, says the contract) and checks it. A parse failure,
    which the host never sends, is a violation rather than an `err` (kept for plugin bugs)."""
    try:
        doc = json.loads(document)
    except ValueError as e:
        return [("", f"the document is not JSON: {e}", "not-json")]
    return check_feature_flag(key, doc, version)


class MigrationError(Exception):
    """A document that cannot be converted; the plugin returns its text as `err`."""


def _parse_object(document, version):
    try:
        doc = json.loads(document)
    except ValueError as e:
        raise MigrationError(f"the document is not JSON: {e}")
    if not isinstance(doc, dict):
        raise MigrationError(
            f"a version {version} feature flag is a JSON object, not {json.dumps(doc)}")
    return doc


def _rename_member(doc, old, new, value):
    """`doc` with member `old` replaced by `new: value`, at the same place in key order."""
    return {(new if k == old else k): (value if k == old else v) for k, v in doc.items()}


def _dump(doc):
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def upgrade(document):
    """v1 → v2: `rollout_percent: n` becomes `rollout: {"percent": n, "sticky": true}`."""
    doc = _parse_object(document, 1)
    if "rollout_percent" not in doc:
        return _dump(doc)  # nothing to move; the v2 schema reports the missing rollout
    if "rollout" in doc:
        raise MigrationError(
            "the document has both rollout_percent and rollout: version 1 has no rollout field")
    return _dump(_rename_member(
        doc, "rollout_percent", "rollout", {"percent": doc["rollout_percent"], "sticky": True}))


NOT_STICKY = "cannot downgrade a non-sticky rollout: version 1 has no sticky setting"


def downgrade(document):
    """v2 → v1: `rollout.percent` goes back to `rollout_percent`; a non-sticky rollout cannot."""
    doc = _parse_object(document, 2)
    if "rollout" not in doc:
        return _dump(doc)
    rollout = doc["rollout"]
    if not isinstance(rollout, dict):
        raise MigrationError(
            f"rollout is {json.dumps(rollout)}, not an object: "
            "there is no percentage to move to rollout_percent")
    if "rollout_percent" in doc:
        raise MigrationError(
            "the document has both rollout and rollout_percent: "
            "version 2 has no rollout_percent field")
    if rollout.get("sticky") is False:
        raise MigrationError(NOT_STICKY)
    extra = [k for k in rollout if k not in ("percent", "sticky")]
    if extra:
        raise MigrationError(f"rollout has fields that version 1 cannot hold: {', '.join(extra)}")
    if "percent" not in rollout:
        raise MigrationError(
            "rollout has no percent: there is no percentage to move to rollout_percent")
    return _dump(_rename_member(doc, "rollout", "rollout_percent", rollout["percent"]))
