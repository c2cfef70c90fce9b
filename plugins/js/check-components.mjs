// Offline check of the built feature-flag components, in any language, without a Scarab host:
// each component is transpiled to JavaScript + core wasm with jco and run in Node.
//
//   node plugins/js/check-components.mjs [COMPONENT.wasm ...]
//
// (default: the four target/wasm32-wasip2/plugin/feature_flag_{py,js}_v{1,2}.wasm). For each
// component it runs every sample of schemas/feature-flag/v<N>.examples.json through `validate`
// and compares the plugin's violations (path and code, as a multiset) with the samples' `plugin`
// violations; for a v2 component it also checks `describe`, that `upgrade` of every v1 sample
// gives the matching v2 sample and `downgrade` gives it back, and that a non-sticky rollout
// refuses to downgrade with the documented message.
//
// `scarab plugin check` is the real test (it runs the component in Scarab's own runtime); this
// one also exercises the migrator, which `plugin check` does not call. WASI imports, for the
// build variants that have them, are served by @bytecodealliance/preview2-shim.
//
// Prints `N passed, N failed` and exits 1 when anything failed.

import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, symlinkSync, existsSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { isDeepStrictEqual } from 'node:util';

// componentize-py's core modules use extended constant expressions, which V8 enables by
// default from 11.4 (Node 22); Node 20 needs a flag: run again with it.
const [v8Major, v8Minor] = process.versions.v8.split('.').map(Number);
const FLAG = '--experimental-wasm-extended-const';
if ((v8Major < 11 || (v8Major === 11 && v8Minor < 4)) && !process.execArgv.includes(FLAG)) {
  const { spawnSync } = await import('node:child_process');
  const r = spawnSync(process.execPath, [...process.execArgv, FLAG, ...process.argv.slice(1)], {
    stdio: 'inherit',
  });
  process.exit(r.status ?? 1);
}

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const pluginDir = join(root, 'target/wasm32-wasip2/plugin');
const work = join(root, 'target/polyglot-build/transpiled');

const components = process.argv.slice(2).length
  ? process.argv.slice(2).map((p) => resolve(p))
  : ['py_v1', 'py_v2', 'js_v1', 'js_v2'].map((n) => join(pluginDir, `feature_flag_${n}.wasm`));

// Transpiled modules import @bytecodealliance/preview2-shim: let them find plugins/js's.
mkdirSync(work, { recursive: true });
if (!existsSync(join(work, 'node_modules'))) {
  symlinkSync(join(here, 'node_modules'), join(work, 'node_modules'));
}

let passed = 0;
let failed = 0;
function check(label, ok, detail = '') {
  if (ok) {
    passed += 1;
  } else {
    failed += 1;
    console.log(`FAIL ${label}${detail ? `: ${detail}` : ''}`);
  }
}

const NOT_STICKY = 'cannot downgrade a non-sticky rollout: version 1 has no sticky setting';

function examples(version) {
  return JSON.parse(readFileSync(join(root, `schemas/feature-flag/v${version}.examples.json`), 'utf8'));
}

/** `result` error payload of a transpiled export (jco wraps it in ComponentError). */
function call(fn) {
  try {
    return { ok: fn() };
  } catch (e) {
    if (e && typeof e === 'object' && 'payload' in e) {
      return { err: e.payload };
    }
    return { trap: String(e?.stack ?? e) };
  }
}

const key = (violations) =>
  violations.map((v) => `${v.path} ${v.code}`).sort();

for (const wasm of components) {
  const name = basename(wasm, '.wasm');
  const version = Number(/_v(\d+)$/.exec(name)?.[1] ?? 1);
  if (!existsSync(wasm)) {
    check(name, false, `${wasm} does not exist (run plugins/build-polyglot.sh)`);
    continue;
  }
  const out = join(work, name);
  rmSync(out, { recursive: true, force: true });
  execFileSync(join(here, 'node_modules/.bin/jco'),
    ['transpile', wasm, '-o', out, '--name', 'component', '--quiet', '--no-typescript'],
    { stdio: 'inherit' });
  let mod;
  try {
    mod = await import(pathToFileURL(join(out, 'component.js')).href);
  } catch (e) {
    check(`${name}: instantiate`, false, String(e?.stack ?? e));
    continue;
  }
  const validator = mod.validator ?? mod['scarab:plugin/validator@0.2.0'];
  const migrator = mod.migrator ?? mod['scarab:plugin/migrator@0.2.0'];
  const ex = examples(version);
  const started = performance.now();
  let calls = 0;
  for (const [group, valid] of [['valid', true], ['invalid', false]]) {
    for (const sample of ex[group]) {
      const ctx = { key: sample.key, schemaName: 'feature-flag', schemaVersion: version };
      const r = call(() => validator.validate(ctx, JSON.stringify(sample.value)));
      calls += 1;
      const label = `${name}: ${group} sample ${JSON.stringify(sample.name)}`;
      if (!('ok' in r)) {
        check(label, false, JSON.stringify(r));
        continue;
      }
      const want = valid ? [] : sample.violations.filter((v) => v.source === 'plugin');
      check(label, isDeepStrictEqual(key(r.ok), key(want)),
        `got ${JSON.stringify(r.ok)}, want ${JSON.stringify(want)}`);
      for (const v of r.ok) {
        check(`${label}: message`, typeof v.message === 'string' && v.message.length > 0);
      }
    }
  }
  const perCall = (performance.now() - started) / calls;
  console.log(`${name}: ${calls} validate calls, ${perCall.toFixed(2)} ms each (transpiled, in Node)`);

  if (version !== 2) {
    check(`${name}: exports no migrator`, migrator === undefined);
    continue;
  }
  check(`${name}: describe`,
    isDeepStrictEqual(migrator.describe(), { fromVersion: 1, downgrade: true }),
    JSON.stringify(migrator.describe()));
  const up = { key: '', schemaName: 'feature-flag', schemaVersion: 2 };
  const down = { key: '', schemaName: 'feature-flag', schemaVersion: 1 };
  const v1 = examples(1);
  const v2 = examples(2);
  for (const group of ['valid', 'invalid']) {
    v1[group].forEach((sample, i) => {
      const label = `${name}: migrate v1 ${group} sample ${JSON.stringify(sample.name)}`;
      const text = JSON.stringify(sample.value);
      const u = call(() => migrator.upgrade({ ...up, key: sample.key }, text));
      if (!('ok' in u)) {
        check(`${label}: upgrade`, false, JSON.stringify(u));
        return;
      }
      const upgraded = JSON.parse(u.ok);
      check(`${label}: upgrade`, isDeepStrictEqual(upgraded, v2[group][i].value),
        `got ${u.ok}, want ${JSON.stringify(v2[group][i].value)}`);
      const d = call(() => migrator.downgrade({ ...down, key: sample.key }, u.ok));
      check(`${label}: downgrade gives it back`,
        'ok' in d && isDeepStrictEqual(JSON.parse(d.ok), sample.value), JSON.stringify(d));
    });
  }
  const nonSticky = JSON.stringify({ enabled: true, rollout: { percent: 40, sticky: false } });
  const refused = call(() => migrator.downgrade(down, nonSticky));
  check(`${name}: non-sticky downgrade refused`, refused.err === NOT_STICKY, JSON.stringify(refused));
  for (const bad of ['[1,2]', '"flag"', '{"enabled":true,"rollout":7}']) {
    const r = call(() => migrator.downgrade(down, bad));
    check(`${name}: downgrade ${bad} is an err, not a trap`, typeof r.err === 'string', JSON.stringify(r));
  }
  const r = call(() => migrator.upgrade(up, '[]'));
  check(`${name}: upgrade [] is an err, not a trap`, typeof r.err === 'string', JSON.stringify(r));
  const proto = '{"__proto__":{"x":1},"enabled":true,"rollout_percent":5}';
  const pu = call(() => migrator.upgrade(up, proto));
  const pd = 'ok' in pu ? call(() => migrator.downgrade(down, pu.ok)) : pu;
  check(`${name}: a __proto__ member survives the round trip`,
    'ok' in pd && isDeepStrictEqual(JSON.parse(pd.ok), JSON.parse(proto)), JSON.stringify([pu, pd]));
  const kept = { description: 'd', enabled: false, rollout_percent: 0, allow: ['a'], deny: ['b'] };
  const k = call(() => migrator.upgrade(up, JSON.stringify(kept)));
  check(`${name}: upgrade keeps key order`,
    'ok' in k && Object.keys(JSON.parse(k.ok)).join() === 'description,enabled,rollout,allow,deny',
    JSON.stringify(k));
}

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
