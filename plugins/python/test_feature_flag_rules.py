"""Native tests of the shared rules (no WebAssembly, no componentize-py needed):

    python3 plugins/python/test_feature_flag_rules.py

Runs every sample of schemas/feature-flag/v{1,2}.examples.json through the rules and compares
the plugin violations (path and code) with the samples' `plugin` violations, and checks the
migration both ways. The built components are checked by `scarab plugin check` and by
plugins/js/check-components.mjs.
"""

import json
import os
import unittest

import feature_flag_rules as rules

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def examples(version):
    with open(os.path.join(ROOT, "schemas", "feature-flag", f"v{version}.examples.json")) as f:
        return json.load(f)


class Examples(unittest.TestCase):
    def test_samples_get_exactly_their_plugin_violations(self):
        for version in (1, 2):
            ex = examples(version)
            for group in ("valid", "invalid"):
                for sample in ex[group]:
                    with self.subTest(version=version, sample=sample["name"]):
                        got = rules.check_document(
                            sample["key"], json.dumps(sample["value"]), version)
                        want = [(v["path"], v["code"]) for v in sample.get("violations", [])
                                if v["source"] == "plugin"]
                        self.assertEqual(sorted((p, c) for p, _, c in got), sorted(want))
                        for _, message, _ in got:
                            self.assertTrue(message)

    def test_upgrade_gives_the_v2_sample_and_downgrade_gives_it_back(self):
        v1, v2 = examples(1), examples(2)
        for group in ("valid", "invalid"):
            for old, new in zip(v1[group], v2[group]):
                with self.subTest(sample=old["name"]):
                    up = rules.upgrade(json.dumps(old["value"]))
                    self.assertEqual(json.loads(up), new["value"])
                    self.assertEqual(json.loads(rules.downgrade(up)), old["value"])

    def test_rule_messages(self):
        [(path, message, code)] = rules.rollout_while_disabled(
            False, 30, "rollout_percent", "/rollout_percent")
        self.assertEqual(path, "/rollout_percent")
        self.assertEqual(
            message,
            "rollout_percent is 30 but the flag is disabled: set it to 0 or enable the flag")
        self.assertEqual(rules.rollout_while_disabled(False, 30.0, "p", "/p")[0][1][:7], "p is 30")
        self.assertEqual(rules.rollout_while_disabled(True, 30, "p", "/p"), [])
        self.assertEqual(rules.rollout_while_disabled(False, True, "p", "/p"), [])
        self.assertEqual(rules.rollout_while_disabled("false", 30, "p", "/p"), [])
        self.assertEqual(rules.key_outside_flags(""), [])
        self.assertEqual(rules.key_outside_flags("flags/a"), [])
        self.assertEqual(rules.key_outside_flags("flags")[0][0], "")
        self.assertEqual(rules.allow_deny_overlap(["a"], "a"), [])
        self.assertEqual([p for p, _, _ in rules.allow_deny_overlap(["a", "b"], ["b", "c", "a"])],
                         ["/deny/0", "/deny/2"])

    def test_mistyped_documents_get_no_violation_and_no_exception(self):
        for version in (1, 2):
            for doc in ("[]", "null", "7", '"x"', '{"rollout": []}', '{"rollout": {"percent": "9"}}',
                        '{"enabled": false, "rollout_percent": null, "rollout": null}',
                        '{"allow": {"a": 1}, "deny": ["a"]}'):
                with self.subTest(version=version, doc=doc):
                    self.assertEqual(rules.check_document("flags/x", doc, version), [])

    def test_migration_errors(self):
        with self.assertRaisesRegex(rules.MigrationError, "^" + rules.NOT_STICKY + "$"):
            rules.downgrade('{"enabled": true, "rollout": {"percent": 40, "sticky": false}}')
        for bad in ("[]", '"x"', '{"rollout": 7}', '{"rollout": {"percent": 1, "sticky": true, "x": 1}}'):
            with self.subTest(doc=bad), self.assertRaises(rules.MigrationError):
                rules.downgrade(bad)
        with self.assertRaises(rules.MigrationError):
            rules.upgrade("[]")
        with self.assertRaises(rules.MigrationError):
            rules.upgrade('{"rollout_percent": 1, "rollout": {}}')
        self.assertEqual(
            list(json.loads(rules.upgrade(
                '{"description": "d", "enabled": false, "rollout_percent": 0, "deny": []}'))),
            ["description", "enabled", "rollout", "deny"])


if __name__ == "__main__":
    unittest.main()
