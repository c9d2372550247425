// Types of Ward's browser client (src/index.js, served by Ward at /bff/client.js).

/** What `GET /bff/user` says about the logged-in user, without the CSRF token. */
export interface User {
  /** The subject: the IdP's stable identifier of the user. */
  sub: string;
  /** ID-token/userinfo claims, as filtered by Ward's `[session] claims`. */
  claims: Record<string, unknown>;
  /** When the session idles out (unix seconds); each `getUser()` slides it. */
  expiresAt: number;
  /** When the session ends at the latest (unix seconds). */
  absoluteExpiresAt: number;
}

/** Which of the session's two limits comes first. */
export type ExpiryReason = 'idle' | 'absolute';

export interface SessionExpiringDetail {
  reason: ExpiryReason;
  /** Unix seconds. */
  expiresAt: number;
  /** Seconds left when the event fired. */
  secondsLeft: number;
}

export interface SessionExpiredDetail {
  reason: ExpiryReason;
  expiresAt: number;
}

export interface LogoutDetail {
  /** `true` when another tab of this origin logged out (the event is then cancelable). */
  otherTab: boolean;
}

export interface SessionEventMap {
  expiring: CustomEvent<SessionExpiringDetail>;
  expired: CustomEvent<SessionExpiredDetail>;
  logout: CustomEvent<LogoutDetail>;
}

export interface SessionEvents extends EventTarget {
  addEventListener<K extends keyof SessionEventMap>(
    type: K,
    listener: (event: SessionEventMap[K]) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  removeEventListener<K extends keyof SessionEventMap>(
    type: K,
    listener: (event: SessionEventMap[K]) => void,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
}

/** The clock and timers expiry events run on (milliseconds). */
export interface Clock {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(id: unknown): void;
}

export interface ClientOptions {
  /** How long before the expiry `expiring` fires (seconds, default 120). */
  warnBeforeSeconds?: number;
  /** Replaces `Date.now`/`setTimeout`/`clearTimeout` (tests). */
  clock?: Clock;
}

/** Where the client reports `expiring`, `expired` and `logout`. */
export const sessionEvents: SessionEvents;

export function configure(options?: ClientOptions): void;

/** The logged-in user, or `null` without a session; throws on any other answer. */
export function getUser(): Promise<User | null>;

/** Navigates to Ward's login, which comes back to `returnUrl` (a local path; default: here). */
export function login(returnUrl?: string): void;

/** Wipes the vault, ends the session at Ward, tells the other tabs, navigates to `logoutUrl`. */
export function logout(): Promise<void>;

/** `fetch` for routes behind Ward: the CSRF header on unsafe methods, a `401` starts a login. */
export function bffFetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;

/** Encrypted records of JSON values in IndexedDB, under a key the page cannot export. */
export interface Vault {
  put(name: string, value: unknown): Promise<void>;
  get<T = unknown>(name: string): Promise<T | undefined>;
  delete(name: string): Promise<void>;
  names(): Promise<string[]>;
  close(): void;
}

/** Opens the vault of user `sub`; a vault of another user is wiped first. */
export function openVault(sub: string): Promise<Vault>;
/** Offline (no `sub` known): opens the vault as it is, `null` when there is none. */
export function openVault(): Promise<Vault | null>;

/** Deletes the vault: key and records. */
export function wipeVault(): Promise<void>;
