// Tests of the package as published: what `npm pack` puts in it, no runtime dependencies, and
// types that declare exactly what the module exports. (That its version is Ward's, and that
// Ward serves src/index.js byte for byte, is checked on the Rust side: endpoints/client_js.rs.)

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const PACKAGE_DIR = new URL('..', import.meta.url);
const manifest = JSON.parse(readFileSync(new URL('package.json', PACKAGE_DIR), 'utf8'));

test('npm pack holds the module, its types, the manifest and the README, nothing else', () => {
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: PACKAGE_DIR,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const [packed] = JSON.parse(out);
  assert.deepEqual(packed.files.map((f) => f.path).sort(),
    ['README.md', 'package.json', 'src/index.d.ts', 'src/index.js']);
  assert.equal(packed.name, manifest.name);
  assert.equal(packed.version, manifest.version);
});

test('the package has no runtime dependencies and is an ES module', () => {
  for (const field of ['dependencies', 'peerDependencies', 'optionalDependencies', 'bundleDependencies']) {
    assert.equal(manifest[field], undefined, `package.json has no ${field}`);
  }
  assert.equal(manifest.type, 'module');
  assert.equal(manifest.exports['.'].default, './src/index.js');
  assert.equal(manifest.exports['.'].types, './src/index.d.ts');
  const source = readFileSync(new URL('src/index.js', PACKAGE_DIR), 'utf8');
  assert.doesNotMatch(source, /^\s*import\s/m, 'the module imports nothing (Ward serves it alone)');
});

test('index.d.ts declares exactly the runtime exports', async () => {
  installMinimalPlatform();
  const runtime = Object.keys(await import('../src/index.js')).sort();
  const types = readFileSync(new URL('src/index.d.ts', PACKAGE_DIR), 'utf8');
  const declared = [...types.matchAll(/^export (?:function|const) (\w+)/gm)].map((m) => m[1]);
  assert.deepEqual([...new Set(declared)].sort(), runtime);
  assert.deepEqual(runtime, [
    'bffFetch', 'configure', 'getUser', 'login', 'logout', 'openVault', 'sessionEvents', 'wipeVault',
  ]);
});

/** Loading the module opens the tabs channel: give it one that keeps nothing alive. */
function installMinimalPlatform() {
  globalThis.BroadcastChannel = class extends EventTarget {
    postMessage() {}
  };
}
