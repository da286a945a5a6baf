// The Gantry dashboard: sign-in, a hash router (#/, #/province/P, #/node/N, #/pod/NS/NAME,
// #/workloads, #/rollouts, #/rollout/NS/NAME) and
// the message shown when something goes wrong (never a blank page).
import * as api from './api.js';
import { el, link } from './ui.js';
import { nationalView } from './views/national.js';
import { provinceView } from './views/province.js';
import { nodeView } from './views/node.js';
import { podView } from './views/pod.js';
import { rolloutsView, rolloutView } from './views/rollouts.js';
import { workloadsView } from './views/workloads.js';

const main = document.getElementById('main');
const banner = document.getElementById('banner');
const crumbs = document.getElementById('crumbs');
const live = document.getElementById('live');
let stopView = () => {};

export function showBanner(text, kind = 'warn') {
  if (!text) { banner.hidden = true; banner.textContent = ''; return; }
  banner.hidden = false;
  banner.className = `banner ${kind === 'error' ? 'error' : ''}`;
  banner.dataset.testid = 'banner';
  banner.textContent = text;
}

export function setLive(ok) {
  live.hidden = ok === null;
  live.className = ok ? 'live' : 'live stale';
  live.textContent = ok ? 'live' : 'reconnecting';
}

function setCrumbs(parts) {
  crumbs.replaceChildren(...parts.map(([href, text]) => (href ? link(href, text) : el('span', {}, text))));
}

// What an API error means to the operator.
export function explain(err, what) {
  if (!(err instanceof api.ApiError)) return `${what}: ${err.message}`;
  switch (err.code) {
    case 0: return `${what}: cloudcore is not reachable (${err.message}). The page retries on its own.`;
    case 401: return 'Your token is no longer accepted (expired, revoked or wrong). Sign in again.';
    case 403: return `Not allowed: ${err.message}`;
    case 404: return `${what}: not found (${err.message}).`;
    case 503: return `${what}: cloudcore is unavailable for now (${err.message}). Retrying.`;
    default: return `${what}: the API answered ${err.code} ${err.reason}: ${err.message}`;
  }
}

// A view's failure: a message in place of the view (with a way back), never a blank page.
export function failView(err, what) {
  main.replaceChildren(el('div', { class: 'card', testid: 'view-error' },
    el('h1', {}, err.code === 403 ? 'Not allowed' : 'Could not load this page'),
    el('p', { class: 'error', testid: 'error-message' }, explain(err, what)),
    el('p', {}, link('#/', 'Back to the fleet'))));
}

function signIn(message) {
  stopView();
  stopView = () => {};
  setLive(null);
  setCrumbs([]);
  document.getElementById('signout').hidden = true;
  document.getElementById('who').textContent = '';
  const input = el('input', { type: 'password', id: 'token', name: 'token', autocomplete: 'off',
    placeholder: 'bearer token', testid: 'token-input', required: true });
  const msg = el('p', { class: 'error', testid: 'signin-error' }, message || '');
  const form = el('form', { class: 'card signin', testid: 'signin', on: { submit: async (ev) => {
    ev.preventDefault();
    const t = input.value.trim();
    msg.textContent = '';
    if (!t) { msg.textContent = 'Enter a token.'; return; }
    try {
      await api.get(`${api.FLEET}/fleetsummaries`, { t });
    } catch (e) {
      msg.textContent = e.code === 401
        ? 'This token was not accepted: it is wrong, expired or revoked. Ask for a new one (gantryadm, or the token file).'
        : explain(e, 'Signing in');
      return;
    }
    api.setToken(t);
    showBanner('');
    route();
  } } },
  el('h1', {}, 'Sign in to Gantry'),
  el('p', { class: 'muted' }, 'Paste a bearer token: the admin token from admin.kubeconfig, or a province token. ' +
    'It is kept in this tab only (sessionStorage) and forgotten when the tab closes.'),
  el('label', { for: 'token' }, 'Token'), input, msg,
  el('button', { class: 'primary', type: 'submit', testid: 'signin-button' }, 'Sign in'));
  main.replaceChildren(form);
  input.focus();
}

api.setUnauthorizedHandler(() => {
  api.clearToken();
  signIn('Your session ended: the token is no longer accepted (expired or revoked). Sign in again.');
});

async function whoami() {
  // The provinces this token sees, for the header.
  try {
    const list = await api.get(`${api.FLEET}/fleetsummaries`);
    return list.items.length;
  } catch (_) { return null; }
}

function route() {
  stopView();
  stopView = () => {};
  showBanner('');
  if (!api.token()) { signIn(); return; }
  document.getElementById('signout').hidden = false;
  const parts = (location.hash.replace(/^#\/?/, '') || '').split('/').map(decodeURIComponent);
  const ctx = { main, setCrumbs, showBanner, setLive, failView, explain };
  let stop;
  if (parts[0] === 'province' && parts[1]) stop = provinceView(ctx, parts[1]);
  else if (parts[0] === 'node' && parts[1]) stop = nodeView(ctx, parts[1]);
  else if (parts[0] === 'pod' && parts[1] && parts[2]) stop = podView(ctx, parts[1], parts[2]);
  else if (parts[0] === 'rollouts') stop = rolloutsView(ctx);
  else if (parts[0] === 'rollout' && parts[1] && parts[2]) stop = rolloutView(ctx, parts[1], parts[2]);
  else if (parts[0] === 'workloads') stop = workloadsView(ctx);
  else stop = nationalView(ctx);
  stopView = stop || (() => {});
  whoami().then((n) => {
    if (n !== null) document.getElementById('who').textContent = `signed in · ${n} province${n === 1 ? '' : 's'} visible`;
  });
}

document.getElementById('signout').addEventListener('click', () => {
  api.clearToken();
  signIn('Signed out.');
});
window.gantryStarted = true;  // js/boot.js: the modules loaded
sessionStorage.removeItem('gantry.bootRetry');
window.addEventListener('hashchange', route);
window.addEventListener('error', (e) => showBanner(`The page hit an error: ${e.message}`, 'error'));
window.addEventListener('unhandledrejection', (e) => showBanner(`The page hit an error: ${e.reason && e.reason.message}`, 'error'));
route();
