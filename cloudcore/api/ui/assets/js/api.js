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

export const FLEET = '/apis/gantry.io/v1';
export const enc = encodeURIComponent;
