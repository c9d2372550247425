// The fixture page of e2e/runtime.spec.mjs and e2e/client.spec.mjs, served by Ward under
// `[static] trusted_types = ["fixture"]`. It is a nonced module script; it loads /loaded.js
// through a Trusted Types policy (allowed by 'strict-dynamic'), exposes Ward's client to the
// tests as `window.ward`, and shows the session and the vault's "notes" record.

import * as ward from '/bff/client.js';

window.ward = ward;

const element = (id) => document.getElementById(id);

// The only policy this page may create (the CSP lists "fixture"): script URLs of this page only.
const policy = trustedTypes.createPolicy('fixture', {
  createScriptURL(url) {
    if (url !== '/loaded.js') {
      throw new TypeError(`no script URL ${url}`);
    }
    return url;
  },
});
const script = document.createElement('script');
script.src = policy.createScriptURL('/loaded.js');
document.head.append(script);

// A logout in another tab: a page opened at #keep handles it (and shows it), others reload.
ward.sessionEvents.addEventListener('logout', (event) => {
  if (event.detail.otherTab && location.hash === '#keep') {
    event.preventDefault();
    document.body.dataset.logout = 'other-tab';
    element('status').textContent = 'Logged out in another tab.';
  }
});

async function showNotes(vault) {
  const notes = vault === null ? undefined : await vault.get('notes');
  element('vault-data').textContent = notes === undefined ? '(no notes)' : notes.text;
}

async function start() {
  let user;
  try {
    user = await ward.getUser();
  } catch {
    // Ward cannot be reached: offline mode, from the vault as it is.
    element('status').textContent = 'Offline.';
    await showNotes(await ward.openVault());
    document.body.dataset.ready = 'offline';
    return;
  }
  if (user === null) {
    element('status').textContent = 'Logged out.';
    document.body.dataset.ready = 'logged-out';
    return;
  }
  element('status').textContent = `Logged in as ${user.sub}.`;
  await showNotes(await ward.openVault(user.sub));
  document.body.dataset.ready = 'logged-in';
}

start();
