// Scarab plugin for `schemas/feature-flag/v2.json`, world `migrator-plugin` of
// `scarab:plugin@0.2.0`: the validator, and the migration from version 1 and back.
// Build: `bash plugins/build-polyglot.sh js` (see ../README.md).
//
// componentize-js maps each exported interface to an exported object of the same name
// (`migrator`: camelCase for kebab-case names). For `result<string, string>`, returning a string
// is `ok`; throwing is `err`, and the host gets the thrown value's text.

import { isObject, validate } from '../feature-flag-rules.js';

const NOT_STICKY = 'cannot downgrade a non-sticky rollout: version 1 has no sticky setting';

export const validator = {
  validate(ctx, document) {
    return validate(ctx, document, 2);
  },
};

/** Parses a document to convert; the contract sends JSON text, and a config is an object. */
function parseObject(document, version) {
  let doc;
  try {
    doc = JSON.parse(document);
  } catch (e) {
    throw `the document is not JSON: ${e.message}`;
  }
  if (!isObject(doc)) {
    throw `a version ${version} feature flag is a JSON object, not ${Array.isArray(doc) ? 'an array' : JSON.stringify(doc)}`;
  }
  return doc;
}

/**
 * `doc` with the member `from` replaced by `to: value`, at the same place in key order.
 * (`Object.fromEntries` defines own properties, so even a `__proto__` member is kept.)
 */
function renameMember(doc, from, to, value) {
  return Object.fromEntries(Object.entries(doc).map(([k, v]) => (k === from ? [to, value] : [k, v])));
}

/** v1 → v2: `rollout_percent: n` becomes `rollout: {percent: n, sticky: true}`. */
export function upgrade(document) {
  const doc = parseObject(document, 1);
  if (!Object.hasOwn(doc, 'rollout_percent')) {
    // Nothing to move; the v2 schema reports the missing rollout.
    return JSON.stringify(doc);
  }
  if (Object.hasOwn(doc, 'rollout')) {
    throw 'the document has both rollout_percent and rollout: version 1 has no rollout field';
  }
  return JSON.stringify(
    renameMember(doc, 'rollout_percent', 'rollout', { percent: doc.rollout_percent, sticky: true }),
  );
}

/** v2 → v1: `rollout.percent` goes back to `rollout_percent`; a non-sticky rollout cannot. */
export function downgrade(document) {
  const doc = parseObject(document, 2);
  if (!Object.hasOwn(doc, 'rollout')) {
    return JSON.stringify(doc);
  }
  const rollout = doc.rollout;
  if (!isObject(rollout)) {
    throw `rollout is ${JSON.stringify(rollout)}, not an object: there is no percentage to move to rollout_percent`;
  }
  if (Object.hasOwn(doc, 'rollout_percent')) {
    throw 'the document has both rollout and rollout_percent: version 2 has no rollout_percent field';
  }
  if (rollout.sticky === false) {
    throw NOT_STICKY;
  }
  const extra = Object.keys(rollout).filter((k) => k !== 'percent' && k !== 'sticky');
  if (extra.length > 0) {
    throw `rollout has fields that version 1 cannot hold: ${extra.join(', ')}`;
  }
  if (!Object.hasOwn(rollout, 'percent')) {
    throw 'rollout has no percent: there is no percentage to move to rollout_percent';
  }
  return JSON.stringify(renameMember(doc, 'rollout', 'rollout_percent', rollout.percent));
}

export const migrator = {
  describe() {
    return { fromVersion: 1, downgrade: true };
  },
  upgrade(_ctx, document) {
    return upgrade(document);
  },
  downgrade(_ctx, document) {
    return downgrade(document);
  },
};
