// Talking to cloudcore's API with the bearer token the operator signed in with. The token lives
// in sessionStorage only: this tab, this origin, gone when the tab closes; never a cookie (no
// other site's request carries it) and never localStorage.
const KEY = 'gantry.token';

export function token() { return sessionStorage.getItem(KEY); }
export function setToken(t) { sessionStorage.setItem(KEY, t); }
export function clearToken() { sessionStorage.removeItem(KEY); }

// An API answer that was not 2xx: the Kubernetes Status (reason, message) when there is one.
export class ApiError extends Error {
  constructor(code, reason, message, path) {
    super(message);
    this.code = code;
    this.reason = reason;
    this.path = path;
  }
}

let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }

async function errorOf(res, path) {
  let reason = res.statusText, message = `${res.status} ${res.statusText}`;
  try {
    const body = await res.json();
    if (body && body.kind === 'Status') { reason = body.reason || reason; message = body.message || message; }
  } catch (_) { /* not JSON */ }
  return new ApiError(res.status, reason, message, path);
}

function headers(extra = {}, t = token()) {
  const h = { Accept: 'application/json', ...extra };
  if (t) h.Authorization = `Bearer ${t}`;
  return h;
}

// GET a JSON document. `t` overrides the stored token (the sign-in check).
export async function get(path, { signal, t } = {}) {
  let res;
  try {
    res = await fetch(path, { headers: headers({}, t ?? token()), signal, credentials: 'omit', cache: 'no-store' });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'NetworkError', `cloudcore did not answer (${e.message})`, path);
  }
  if (!res.ok) {
    const err = await errorOf(res, path);
    if (res.status === 401 && t === undefined) onUnauthorized(err);
    throw err;
  }
  return res.json();
}

// PATCH with a JSON merge patch (RFC 7386), the request `kubectl patch --type merge` sends;
// `type` another patch type (application/strategic-merge-patch+json).
export async function patch(path, body, type = 'application/merge-patch+json') {
  let res;
  try {
    res = await fetch(path, { method: 'PATCH', body: JSON.stringify(body), credentials: 'omit', cache: 'no-store',
      headers: headers({ 'Content-Type': type }) });
  } catch (e) {
    throw new ApiError(0, 'NetworkError', `cloudcore did not answer (${e.message})`, path);
  }
  if (!res.ok) {
    const err = await errorOf(res, path);
    if (res.status === 401) onUnauthorized(err);
    throw err;
  }
  return res.json();
}

// Reads a streamed response line by line (watch events, log lines) until it ends or `signal`
// aborts. Resolves when the stream ends; rejects with ApiError on an error answer.
export async function stream(path, onChunk, { signal } = {}) {
  let res;
  try {
    res = await fetch(path, { headers: headers(), signal, credentials: 'omit', cache: 'no-store' });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'NetworkError', `cloudcore did not answer (${e.message})`, path);
  }
  if (!res.ok) {
    const err = await errorOf(res, path);
    if (res.status === 401) onUnauthorized(err);
    throw err;
  }
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    onChunk(decoder.decode(value, { stream: true }));
  }
}

// A watch of JSON lines: `onEvent` per event; re-opened after it ends (with a growing pause
// after failures). `onState(ok, error)` says whether it is live. Stop with the returned function.
export function watchLines(path, onEvent, onState = () => {}) {
  const ctl = new AbortController();
  let stopped = false, failures = 0;
  (async () => {
    while (!stopped) {
      let buf = '';
      try {
        await stream(path, (chunk) => {
          failures = 0;
          onState(true);
          buf += chunk;
          let nl;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            if (line.trim()) onEvent(JSON.parse(line));
          }
        }, { signal: ctl.signal });
      } catch (e) {
        if (stopped || e.name === 'AbortError') return;
        failures++;
        onState(false, e);
        if (e.code === 401 || e.code === 403) return;
      }
      if (stopped) return;
      await new Promise((r) => setTimeout(r, Math.min(10000, 500 * 2 ** Math.min(failures, 5))));
    }
  })();
  return () => { stopped = true; ctl.abort(); };
}

// Keeps a view live from the API's watches, as client-go's informers do: `load()` reads the
// current state (GETs and lists) and returns the watches to open, [{path, resourceVersion,
// onEvent(type, object)}], each from the revision its read returned. When a watch ends (the
// server's timeout), fails, or sends an ERROR event (410 Gone: its start was compacted), every
// watch is closed and the view reads again, after a growing pause when it failed.
// `onState(ok, error, first)`: live or not; `first` is true for a failure of the very first read.
// 401 and 403 stop it (signing in again, or a token that may not see this, does not heal by
// retrying). Stop it with the returned function.
export function listWatch(load, onState = () => {}) {
  let stopped = false, failures = 0, loaded = false, ctl = null;
  (async () => {
    while (!stopped) {
      ctl = new AbortController();
      const signal = ctl.signal;
      try {
        const watches = await load(signal);
        if (stopped) return;
        loaded = true;
        failures = 0;
        onState(true);
        await Promise.race(watches.map((w) => watchOnce(w, signal)));
      } catch (e) {
        if (stopped || e.name === 'AbortError') return;
        failures++;
        onState(false, e, !loaded);
        if (e.code === 401 || e.code === 403 || (!loaded && e.code === 404)) return;
      } finally {
        ctl.abort();
      }
      if (stopped) return;
      await new Promise((r) => setTimeout(r, failures ? Math.min(10000, 500 * 2 ** Math.min(failures, 5)) : 100));
    }
  })();
  return () => { stopped = true; if (ctl) ctl.abort(); };
}

// One watch from `resourceVersion`: resolves when the server ends it, rejects on an error
// answer or an ERROR event.
async function watchOnce({ path, resourceVersion, onEvent }, signal) {
  const q = `${path}${path.includes('?') ? '&' : '?'}watch=1&allowWatchBookmarks=true&resourceVersion=${enc(resourceVersion || '0')}`;
  let buf = '';
  await stream(q, (chunk) => {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (!line.trim()) continue;
      const ev = JSON.parse(line);
      if (ev.type === 'ERROR') {
        const st = ev.object || {};
        throw new ApiError(st.code || 500, st.reason || 'Error', st.message || 'the watch failed', path);
      }
      if (ev.type !== 'BOOKMARK') onEvent(ev.type, ev.object);
    }
  }, { signal });
}

export const FLEET = '/apis/gantry.io/v1';
export const enc = encodeURIComponent;

// The objects of a list kept current by its watch's events, keyed by namespace/name.
export class Objects {
  constructor() { this.map = new Map(); }
  static key(o) { return `${o.metadata.namespace || ''}/${o.metadata.name}`; }
  reset(items) { this.map = new Map((items || []).map((o) => [Objects.key(o), o])); }
  apply(type, o) {
    if (type === 'DELETED') this.map.delete(Objects.key(o));
    else this.map.set(Objects.key(o), o);
  }
  get items() { return [...this.map.values()]; }
}

// Whether `next` is a newer state of the object than `cur`: a write's answer and the watch event
// of a later write can arrive in either order. cloudcore's resourceVersions are revisions
// (integers); anything else is taken as newer.
export function newer(cur, next) {
  const a = Number(cur?.metadata?.resourceVersion), b = Number(next?.metadata?.resourceVersion);
  return !cur || !Number.isFinite(a) || !Number.isFinite(b) || b >= a;
}

// Calls `fn` at most once per `ms` (the last call wins): a burst of watch events, one render.
export function throttle(fn, ms = 250) {
  let timer = null, last = 0;
  return () => {
    if (timer) return;
    timer = setTimeout(() => { timer = null; last = Date.now(); fn(); }, Math.max(0, ms - (Date.now() - last)));
  };
}
