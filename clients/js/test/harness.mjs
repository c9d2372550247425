// The platform a test of the client runs on: `fetch`, `location` and `BroadcastChannel`
// replaced by recorders, a manual clock, and storage APIs that throw when touched (the client
// must never use them). Each `freshClient()` is a new instance of src/index.js: a new tab.

import { readFileSync } from 'node:fs';

const SOURCE = readFileSync(new URL('../src/index.js', import.meta.url), 'utf8');
export const ORIGIN = 'https://app.example';
export const TOKEN = 'csrf-token-value';
/** The manual clock's start: unix seconds. */
export const NOW = 1_800_000_000;
let loads = 0;

/** A clock whose time moves only when a test says so; timers fire in order as it passes. */
export class ManualClock {
  #now;
  #timers = new Map();
  #nextId = 1;

  constructor(nowMs) {
    this.#now = nowMs;
  }

  now() {
    return this.#now;
  }

  setTimeout(callback, ms) {
    const id = this.#nextId++;
    this.#timers.set(id, { at: this.#now + ms, callback });
    return id;
  }

  clearTimeout(id) {
    this.#timers.delete(id);
  }

  /** Moves the time on by `ms`, firing each timer that falls due on the way. */
  advance(ms) {
    const end = this.#now + ms;
    for (;;) {
      const due = [...this.#timers].filter(([, t]) => t.at <= end).sort(([, a], [, b]) => a.at - b.at);
      if (due.length === 0) {
        break;
      }
      const [id, timer] = due[0];
      this.#timers.delete(id);
      this.#now = Math.max(this.#now, timer.at);
      timer.callback();
    }
    this.#now = end;
  }

  pending() {
    return this.#timers.size;
  }
}

/** Tabs of one origin: the BroadcastChannel every client instance of a test shares. */
function fakeBroadcastChannel(bus) {
  return class FakeBroadcastChannel extends EventTarget {
    constructor(name) {
      super();
      this.name = name;
      bus.push(this);
    }

    postMessage(data) {
      bus.sent.push(structuredClone(data));
      for (const other of bus) {
        if (other !== this && other.name === this.name) {
          other.dispatchEvent(new MessageEvent('message', { data: structuredClone(data) }));
        }
      }
    }
  };
}

function json(status, body) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'Content-Type': 'application/json' },
  });
}

/** `GET /bff/user` of a logged-in alice: idle expiry in 30 min, absolute in 8 h. */
export const loggedIn = (overrides = {}) => () => json(200, {
  sub: 'alice',
  claims: { name: 'Test alice' },
  csrfToken: TOKEN,
  expiresAt: NOW + 1800,
  absoluteExpiresAt: NOW + 8 * 3600,
  ...overrides,
});

/** Installs a fresh platform; returns what the test inspects and steers. */
export function installPlatform() {
  const world = {
    calls: [],
    navigations: [],
    reloads: 0,
    routes: { 'GET /bff/user': loggedIn() },
    bus: Object.assign([], { sent: [] }),
    clock: new ManualClock(NOW * 1000),
    json,
  };
  globalThis.location = {
    origin: ORIGIN,
    href: `${ORIGIN}/orders/7?tab=items#top`,
    pathname: '/orders/7',
    search: '?tab=items',
    hash: '#top',
    assign: (url) => world.navigations.push(url),
    reload: () => {
      world.reloads += 1;
    },
  };
  globalThis.fetch = async (input, init = {}) => {
    const request = input instanceof Request
      ? new Request(input, init)
      : new Request(new URL(input, ORIGIN), init);
    const url = new URL(request.url);
    const key = `${request.method} ${url.origin === ORIGIN ? url.pathname : url.href}`;
    world.calls.push({ key, headers: request.headers, credentials: init.credentials });
    const route = world.routes[key];
    return route ? route() : json(200, { ok: true });
  };
  globalThis.BroadcastChannel = fakeBroadcastChannel(world.bus);
  for (const name of ['localStorage', 'sessionStorage', 'document']) {
    Object.defineProperty(globalThis, name, {
      configurable: true,
      get() {
        throw new Error(`the client touched ${name}`);
      },
    });
  }
  return world;
}

/** A fresh instance of the client (a distinct URL is a distinct module) on `world`'s clock. */
export async function freshClient(world, options = {}) {
  loads += 1;
  const url = `data:text/javascript,${encodeURIComponent(`${SOURCE}\n// load ${loads}`)}`;
  const client = await import(url);
  client.configure({ clock: world.clock, ...options });
  return client;
}
