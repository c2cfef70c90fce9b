"""Scarab plugin for `schemas/feature-flag/v2.json`: world `migrator-plugin` of
`scarab:plugin@0.2.0`, the validator and the migration from version 1 and back.
Build: `bash plugins/build-polyglot.sh python` (see ../README.md).

componentize-py generates the package `wit_world` from the WIT at build time; this module
provides one class per exported interface (`Validator`, `Migrator`). A `result<_, string>` is
`ok` when the method returns and `err` when it raises `componentize_py_types.Err(text)`; any
other exception traps the component, so every failure is turned into `Err` here.
"""

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.migrator import Migration
from wit_world.imports.types import Context, Violation

import feature_flag_rules
from feature_flag_rules import MigrationError


class Validator(exports.Validator):
    def validate(self, ctx: Context, document: str) -> list[Violation]:
        return [
            Violation(path=path, message=message, code=code)
            for path, message, code in feature_flag_rules.check_document(ctx.key, document, 2)
        ]


class Migrator(exports.Migrator):
    def describe(self) -> Migration:
        return Migration(from_version=1, downgrade=True)

    def upgrade(self, ctx: Context, document: str) -> str:
        try:
            return feature_flag_rules.upgrade(document)
        except MigrationError as e:
            raise Err(str(e))

    def downgrade(self, ctx: Context, document: str) -> str:
        try:
            return feature_flag_rules.downgrade(document)
        except MigrationError as e:
            raise Err(str(e))
