// Ward's browser client (/bff/client.js = clients/js/src/index.js) in Chromium, on the fixture
// site e2e/site/: the offline vault (a non-extractable key, only ciphertext in IndexedDB, the
// record name bound as associated data, readable offline after a reload, wiped for another
// user and at logout) and a logout in one tab reaching the others. Run by
// crates/ward/tests/browser_runtime.rs:
//
//   WARD_URL=http://localhost:<port> node e2e/client.spec.mjs

import assert from 'node:assert/strict';

import { USER, WARD_URL, isWard, logIn, runInChromium, step } from './harness.mjs';

/** A value that must never appear in IndexedDB in clear. */
const SECRET_NOTE = 'PLAINTEXT-MARKER order 4711 for the vault';

/** Everything the vault's database holds, read raw (not through the client). */
function readRawVault() {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open('ward-vault');
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const db = open.result;
      const tx = db.transaction(['meta', 'records']);
      const meta = tx.objectStore('meta').get('key');
      const names = tx.objectStore('records').getAllKeys();
      const records = tx.objectStore('records').getAll();
      tx.oncomplete = async () => {
        db.close();
        const key = meta.result.key;
        let exported;
        try {
          await crypto.subtle.exportKey('raw', key);
          exported = 'exported';
        } catch (error) {
          exported = error.name;
        }
        const latin1 = (buffer) => String.fromCharCode(...new Uint8Array(buffer));
        resolve({
          key: { type: key.constructor.name, extractable: key.extractable, algorithm: key.algorithm.name,
            usages: key.usages, exported },
          names: names.result,
          records: records.result.map((r) => ({
            v: r.v,
            ivLength: r.iv.length,
            iv: Array.from(r.iv).join(','),
            bytes: latin1(r.data),
          })),
        });
      };
    };
  });
}

async function vaultHoldsOnlyCiphertext(page) {
  step('put a record twice: fresh IVs, only ciphertext stored, the key cannot be exported');
  await page.evaluate(async (text) => {
    const vault = await window.ward.openVault((await window.ward.getUser()).sub);
    await vault.put('copy', { text });
    await vault.put('notes', { text });
  }, SECRET_NOTE);
  const raw = await page.evaluate(readRawVault);
  assert.deepEqual(raw.key, {
    type: 'CryptoKey', extractable: false, algorithm: 'AES-GCM', usages: ['encrypt', 'decrypt'],
    exported: 'InvalidAccessError',
  });
  assert.deepEqual(raw.names, ['copy', 'notes']);
  for (const record of raw.records) {
    assert.equal(record.v, 1);
    assert.equal(record.ivLength, 12, 'a 96-bit IV');
    assert.ok(!record.bytes.includes('PLAINTEXT-MARKER'), 'the value is not stored in clear');
    assert.ok(!record.bytes.includes('4711'));
  }
  assert.notEqual(raw.records[0].iv, raw.records[1].iv, 'each record has its own IV');
  assert.notEqual(raw.records[0].bytes, raw.records[1].bytes, 'same value, different ciphertext');
  const dump = await page.evaluate(async () => JSON.stringify(await indexedDB.databases()));
  assert.ok(!dump.includes('PLAINTEXT-MARKER'));

  step('a record moved to another name fails authentication (the name is the AAD)');
  const moved = await page.evaluate(async () => {
    await new Promise((resolve, reject) => {
      const open = indexedDB.open('ward-vault');
      open.onsuccess = () => {
        const tx = open.result.transaction('records', 'readwrite');
        const store = tx.objectStore('records');
        store.get('copy').onsuccess = (event) => store.put(event.target.result, 'moved');
        tx.oncomplete = () => { open.result.close(); resolve(); };
        tx.onerror = () => reject(tx.error);
      };
    });
    const vault = await window.ward.openVault((await window.ward.getUser()).sub);
    try {
      await vault.get('moved');
      return 'decrypted';
    } catch (error) {
      return error.message;
    } finally {
      await vault.delete('moved');
      await vault.delete('copy');
    }
  });
  assert.equal(moved, 'vault record "moved" failed authentication');
}

/** The app shell as a service worker would have cached it: captured from Ward while online. */
async function captureShell() {
  const shell = new Map();
  for (const path of ['/', '/page.js', '/loaded.js', '/bff/client.js']) {
    const response = await fetch(`${WARD_URL}${path}`);
    assert.equal(response.status, 200, `GET ${path}`);
    shell.set(path, { status: 200, headers: Object.fromEntries(response.headers), body: await response.text() });
  }
  return shell;
}

async function readableOfflineAfterAReload(context, page) {
  step('Ward unreachable: a reload (app shell replayed, every other request fails) reads the vault');
  const shell = await captureShell();
  const offline = (route) => {
    const { pathname } = new URL(route.request().url());
    const cached = shell.get(pathname);
    return cached ? route.fulfill(cached) : route.abort('internetdisconnected');
  };
  await context.route(`${WARD_URL}/**`, offline);
  await page.reload();
  await page.locator('body[data-ready="offline"]').waitFor({ state: 'attached' });
  assert.equal(await page.locator('#vault-data').textContent(), SECRET_NOTE);
  await context.unroute(`${WARD_URL}/**`, offline);
  await page.reload();
  await page.locator('body[data-ready="logged-in"]').waitFor({ state: 'attached' });
  assert.equal(await page.locator('#vault-data').textContent(), SECRET_NOTE);
}

async function anotherUserFindsNothing(page) {
  step('the vault opened for another sub is wiped first');
  const names = await page.evaluate(async () => {
    const other = await window.ward.openVault('someone-else');
    const found = await other.names();
    other.close();
    return found;
  });
  assert.deepEqual(names, []);
  await page.evaluate(async (text) => {
    const vault = await window.ward.openVault((await window.ward.getUser()).sub);
    await vault.put('notes', { text });
  }, SECRET_NOTE);
}

async function logoutReachesEveryTab(newPage, tabA) {
  step('three tabs; tab A logs out');
  const tabB = await newPage(); // handles the event itself (#keep)
  const tabC = await newPage(); // lets the client reload it
  await tabB.goto(`${WARD_URL}/#keep`);
  await tabC.goto(`${WARD_URL}/`);
  for (const tab of [tabB, tabC]) {
    await tab.locator('body[data-ready="logged-in"]').waitFor({ state: 'attached' });
    assert.equal(await tab.locator('#vault-data').textContent(), SECRET_NOTE, 'the vault is open');
  }
  const reloaded = tabC.waitForEvent('load');
  await tabA.evaluate(() => window.ward.logout());
  await tabA.waitForURL((url) => !isWard(url.href) && url.pathname.startsWith('/session/end'));

  step('tab B got the logout event; tab C reloaded, logged out; the vault is gone');
  await tabB.locator('body[data-logout="other-tab"]').waitFor({ state: 'attached' });
  await reloaded;
  await tabC.locator('body[data-ready="logged-out"]').waitFor({ state: 'attached' });
  const databases = await tabB.evaluate(async () => (await indexedDB.databases()).map((d) => d.name));
  assert.ok(!databases.includes('ward-vault'), `the vault database is gone: ${databases}`);
  assert.equal(await tabB.evaluate(() => window.ward.openVault()), null, 'nothing to open offline');
  const status = await tabB.evaluate(async () => (await fetch('/bff/user')).status);
  assert.equal(status, 401, 'the session ended at Ward');
}

await runInChromium(async (context, newPage) => {
  const page = await newPage();
  await page.goto(`${WARD_URL}/`);
  await page.locator('body[data-ready="logged-out"]').waitFor({ state: 'attached' });
  await logIn(page);
  assert.equal(await page.locator('#status').textContent(), `Logged in as ${USER}.`);
  await vaultHoldsOnlyCiphertext(page);
  await readableOfflineAfterAReload(context, page);
  await anotherUserFindsNothing(page);
  await logoutReachesEveryTab(newPage, page);
});
