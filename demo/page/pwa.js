// The demo as a Progressive Web App: registers /sw.js (the app shell, offline) under Trusted
// Types. Ward's CSP says `require-trusted-types-for 'script'`, so the script URL given to
// navigator.serviceWorker.register must be a TrustedScriptURL, made by a policy the CSP names:
// `[static] trusted_types = ["ward-demo"]` in the demo's ward.toml. The policy allows one URL.

const WORKER_URL = '/sw.js';
const POLICY_NAME = 'ward-demo';

function workerUrl() {
  if (!globalThis.trustedTypes) {
    return WORKER_URL; // a browser without Trusted Types takes the plain string
  }
  const policy = globalThis.trustedTypes.createPolicy(POLICY_NAME, {
    createScriptURL(url) {
      if (url !== WORKER_URL) {
        throw new TypeError(`the ${POLICY_NAME} policy allows only ${WORKER_URL}`);
      }
      return url;
    },
  });
  return policy.createScriptURL(WORKER_URL);
}

/**
 * Registers the service worker (or checks it for an update); `onChange(text, controlling)`
 * hears how far it got. Resolves when it controls the page; rejects when it cannot register and
 * none controls the page yet (offline, a failed update check is no failure).
 */
export async function registerServiceWorker(onChange) {
  if (!('serviceWorker' in navigator)) {
    onChange('This browser has no service workers: no offline mode.', false);
    return;
  }
  const ready = () => onChange('Works offline: the service worker keeps the app shell.', true);
  if (navigator.serviceWorker.controller) {
    ready();
    await navigator.serviceWorker.register(workerUrl(), { scope: '/' }).catch(() => {});
    return;
  }
  const controlled = new Promise((resolve) => {
    navigator.serviceWorker.addEventListener('controllerchange', resolve, { once: true });
  });
  await navigator.serviceWorker.register(workerUrl(), { scope: '/' });
  onChange('Installing the offline app shell…', false);
  await controlled;
  ready();
}
