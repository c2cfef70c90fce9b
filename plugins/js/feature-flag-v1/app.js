// Scarab plugin for `schemas/feature-flag/v1.json`, world `validator-plugin` of
// `scarab:plugin@0.2.0`. Build: `bash plugins/build-polyglot.sh js` (see ../README.md).
//
// componentize-js maps the WIT export `validator` to the exported object `validator`, whose
// `validate(ctx, document)` gets the `context` record as `{key, schemaName, schemaVersion}` and
// returns the `list<violation>` as an array of `{path, message, code}` (`code` may be
// undefined for `none`). Returning is `ok`; throwing would be `err`.

import { validate } from '../feature-flag-rules.js';

export const validator = {
  validate(ctx, document) {
    return validate(ctx, document, 1);
  },
};
