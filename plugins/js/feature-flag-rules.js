// The `feature-flag` rules that version 1 and version 2 share, imported by both plugins
// (`feature-flag-v1/app.js`, `feature-flag-v2/app.js`). componentize-js resolves relative
// imports at build time (it maps the directory it runs in), so each component carries its own
// copy.
//
// Every rule skips itself when its inputs are missing or mistyped: the plugin also sees
// documents that failed the JSON Schema, and the schema reports those.

/** A JSON number that is not NaN/infinite (JSON has none) and not a boolean. */
function isNumber(v) {
  return typeof v === 'number' && Number.isFinite(v);
}

function isObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * Rule 1, `rollout-while-disabled`: a disabled flag must roll out to 0 percent.
 * `percentName` is how the document names the percentage (`rollout_percent` in v1,
 * `rollout.percent` in v2) and `percentPath` its JSON Pointer.
 */
export function rolloutWhileDisabled(enabled, percent, percentName, percentPath) {
  if (enabled !== false || !isNumber(percent) || !(percent > 0)) {
    return [];
  }
  return [
    {
      path: percentPath,
      message: `${percentName} is ${percent} but the flag is disabled: set it to 0 or enable the flag`,
      code: 'rollout-while-disabled',
    },
  ];
}

/** Rule 2, `allow-deny-overlap`: one violation per user of `deny` who is also in `allow`. */
export function allowDenyOverlap(allow, deny) {
  if (!Array.isArray(allow) || !Array.isArray(deny)) {
    return [];
  }
  const allowed = new Set(allow.filter((u) => typeof u === 'string'));
  const out = [];
  deny.forEach((user, index) => {
    if (typeof user === 'string' && allowed.has(user)) {
      out.push({
        path: `/deny/${index}`,
        message: `user ${JSON.stringify(user)} is in both allow and deny: remove it from one of them`,
        code: 'allow-deny-overlap',
      });
    }
  });
  return out;
}

/** Rule 3, `key-outside-flags`: a non-empty key must start with `flags/`. */
export function keyOutsideFlags(key) {
  if (typeof key !== 'string' || key === '' || key.startsWith('flags/')) {
    return [];
  }
  return [
    {
      path: '',
      message: `key ${JSON.stringify(key)} is outside flags/: feature flags must be stored under flags/`,
      code: 'key-outside-flags',
    },
  ];
}

/**
 * All three rules over a parsed document. `version` is 1 (`/rollout_percent`) or 2
 * (`/rollout/percent`). A document that is not an object gets no plugin violation (the
 * schema's `type` reports it), except for the key rule, which does not look at the document.
 */
export function checkFeatureFlag(key, doc, version) {
  const out = [];
  if (isObject(doc)) {
    if (version === 1) {
      out.push(...rolloutWhileDisabled(doc.enabled, doc.rollout_percent, 'rollout_percent', '/rollout_percent'));
    } else if (isObject(doc.rollout)) {
      out.push(...rolloutWhileDisabled(doc.enabled, doc.rollout.percent, 'rollout.percent', '/rollout/percent'));
    }
    out.push(...allowDenyOverlap(doc.allow, doc.deny));
  }
  out.push(...keyOutsideFlags(key));
  return out;
}

/**
 * The body of `validator.validate` for `version`: parses the document (always JSON, says the
 * contract) and returns the violations. Throwing would be an `err`, which the contract keeps
 * for plugin bugs, so a parse failure (which the host never sends) is reported as a violation.
 */
export function validate(ctx, document, version) {
  let doc;
  try {
    doc = JSON.parse(document);
  } catch (e) {
    return [{ path: '', message: `the document is not JSON: ${e.message}`, code: 'not-json' }];
  }
  return checkFeatureFlag(ctx.key, doc, version);
}

export { isObject };
