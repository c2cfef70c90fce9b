"""Scarab plugin for `schemas/feature-flag/v1.json`: world `validator-plugin` of
`scarab:plugin@0.2.0`. Build: `bash plugins/build-polyglot.sh python` (see ../README.md).

componentize-py generates the package `wit_world` from the WIT at build time; this module
provides one class per exported interface, named after it (`validator` → `Validator`).
"""

from wit_world import exports
from wit_world.imports.types import Context, Violation

import feature_flag_rules


class Validator(exports.Validator):
    def validate(self, ctx: Context, document: str) -> list[Violation]:
        return [
            Violation(path=path, message=message, code=code)
            for path, message, code in feature_flag_rules.check_document(ctx.key, document, 1)
        ]
