// Province view: counts, a breakdown by a node label the operator picks, and the server-side
// paged/filtered/sorted node table. Refreshed when the summaries watch says this province changed.
import * as api from '../api.js';
import { el, link, stat, readyBar, phases, versions, labels, ago } from '../ui.js';

const PAGE = 25;

export function provinceView(ctx, province) {
  ctx.setCrumbs([['#/', 'Fleet'], [null, province]]);
  const key = `gantry.groupBy.${province}`;
  const state = { groupBy: sessionStorage.getItem(key) || '', sortBy: 'state', offset: 0, stateFilter: '', q: '', selector: '' };
  const counts = el('div', { class: 'cards' });
  const picker = el('select', { testid: 'groupby', on: { change: () => {
    state.groupBy = picker.value; sessionStorage.setItem(key, state.groupBy); refreshSummary();
  } } });
  const groups = el('tbody', { testid: 'groups' });
  const rows = el('tbody', { testid: 'nodes' });
  const pageInfo = el('span', { testid: 'page-info' });
  const stateSel = el('select', { testid: 'state-filter', on: { change: () => { state.stateFilter = stateSel.value; state.offset = 0; refreshNodes(); } } },
    ['', 'Ready', 'NotReady', 'Unknown'].map((s) => el('option', { value: s }, s || 'any state')));
  const search = el('input', { type: 'search', placeholder: 'name contains…', testid: 'name-filter', on: { input: () => {
    state.q = search.value; state.offset = 0; debounce(refreshNodes); } } });
  const selInput = el('input', { type: 'search', placeholder: 'label selector (road=G60)', testid: 'label-filter', on: { change: () => {
    state.selector = selInput.value.trim(); state.offset = 0; refreshNodes(); } } });
  const selError = el('span', { class: 'error' });
  const sortHead = (label, field) => el('th', {}, el('button', { type: 'button', testid: `sort-${field}`, on: { click: () => {
    state.sortBy = state.sortBy === field ? `-${field}` : field; state.offset = 0; refreshNodes(); } } }, label));
  const prev = el('button', { type: 'button', testid: 'prev', on: { click: () => { state.offset = Math.max(0, state.offset - PAGE); refreshNodes(); } } }, '‹ Previous');
  const next = el('button', { type: 'button', testid: 'next', on: { click: () => { state.offset += PAGE; refreshNodes(); } } }, 'Next ›');

  ctx.main.replaceChildren(
    el('h1', {}, `Province ${province}`), counts,
    el('div', { class: 'card' }, el('h2', {}, 'Breakdown'),
      el('div', { class: 'toolbar' }, el('label', {}, 'Group nodes by label '), picker),
      el('table', {}, el('thead', {}, el('tr', {}, ['Value', 'Nodes', 'Ready', 'NotReady', 'Unknown', '', 'Pods', 'Pods by phase', 'Versions'].map((h) => el('th', {}, h)))), groups)),
    el('div', { class: 'card' }, el('h2', {}, 'Nodes'),
      el('div', { class: 'toolbar' }, stateSel, search, selInput, selError),
      el('table', {}, el('thead', {}, el('tr', {}, sortHead('Name', 'name'), sortHead('State', 'state'),
        sortHead('Last seen', 'lastSeen'), sortHead('Pods', 'pods'), sortHead('Version', 'version'), el('th', {}, 'Labels'))), rows),
      el('div', { class: 'pager' }, prev, pageInfo, next)));

  let timer = null;
  function debounce(fn) { clearTimeout(timer); timer = setTimeout(fn, 250); }
  let stopped = false, loaded = false;

  async function refreshSummary() {
    let s;
    try {
      s = await api.get(`${api.FLEET}/fleetsummaries/${api.enc(province)}${state.groupBy ? `?groupBy=${api.enc(state.groupBy)}` : ''}`);
    } catch (e) {
      if (stopped) return;
      if (!loaded) ctx.failView(e, `Province ${province}`);
      else ctx.showBanner(ctx.explain(e, `Province ${province}`), 'error');
      return;
    }
    if (stopped) return;
    const n = s.status.nodes;
    counts.replaceChildren(stat('nodes', n.total, 'p-nodes'), stat('Ready', n.ready, 'p-ready', 'Ready'),
      stat('NotReady', n.notReady, 'p-notready', 'NotReady'), stat('Unknown (offline)', n.unknown, 'p-unknown', 'Unknown'),
      stat('pods', s.status.pods.total, 'p-pods'), stat('edgecore versions', versions(s.status.versions), 'p-versions'));
    const keys = Object.keys(s.status.labelKeys || {}).filter((k) => k !== 'topology.gantry.io/province').sort();
    if (!state.groupBy && keys.length) {
      state.groupBy = keys.find((k) => !k.startsWith('kubernetes.io/')) || keys[0];
      refreshSummary();
    }
    picker.replaceChildren(...keys.map((k) => el('option', { value: k, selected: k === state.groupBy }, `${k} (${s.status.labelKeys[k]} nodes)`)));
    const gs = (s.breakdown && s.breakdown.groups) || [];
    groups.replaceChildren(...gs.map((g) => el('tr', { class: g.nodes.notReady + g.nodes.unknown ? 'trouble' : '', testid: `group-${g.value}` },
      el('td', {}, el('a', { href: '#', on: { click: (ev) => {
        ev.preventDefault();
        selInput.value = g.value ? `${state.groupBy}=${g.value}` : `!${state.groupBy}`;
        state.selector = selInput.value; state.offset = 0; refreshNodes();
      } } }, g.value || '<none>')),
      el('td', {}, g.nodes.total), el('td', { class: 'Ready' }, g.nodes.ready), el('td', {}, g.nodes.notReady),
      el('td', { class: g.nodes.unknown ? 'Unknown' : '' }, g.nodes.unknown), el('td', {}, readyBar(g.nodes)),
      el('td', {}, g.pods.total), el('td', {}, phases(g.pods.byPhase)), el('td', {}, versions(g.versions)))));
    if (!gs.length) groups.replaceChildren(el('tr', {}, el('td', { colspan: 9, class: 'muted' }, keys.length ? 'Pick a label.' : 'These nodes carry no other label.')));
    loaded = true;
  }

  async function refreshNodes() {
    const q = new URLSearchParams({ province, sortBy: state.sortBy, limit: PAGE, offset: state.offset });
    if (state.stateFilter) q.set('state', state.stateFilter);
    if (state.q) q.set('nameContains', state.q);
    if (state.selector) q.set('labelSelector', state.selector);
    let page;
    try {
      page = await api.get(`${api.FLEET}/fleetnodes?${q}`);
      selError.textContent = '';
    } catch (e) {
      if (stopped) return;
      if (e.code === 400) { selError.textContent = e.message; return; }
      if (!loaded) ctx.failView(e, `Nodes of ${province}`);
      else ctx.showBanner(ctx.explain(e, `Nodes of ${province}`), 'error');
      return;
    }
    if (stopped) return;
    rows.replaceChildren(...page.items.map((n) => el('tr', { testid: `node-${n.name}`, class: n.state !== 'Ready' ? 'trouble' : '' },
      el('td', {}, link(`#/node/${api.enc(n.name)}`, n.name, { testid: `open-node-${n.name}` })),
      el('td', { class: n.state, testid: 'state', title: n.reason || '' }, n.state),
      el('td', {}, n.state === 'Unknown' && n.unreachableSince ? `offline since ${ago(n.unreachableSince)}` : n.state === 'Unknown' ? '—' : 'connected'),
      el('td', {}, n.pods), el('td', {}, n.version || '—'),
      el('td', {}, labels(Object.fromEntries(Object.entries(n.labels).filter(([k]) => k !== 'topology.gantry.io/province')))))));
    if (!page.items.length) rows.replaceChildren(el('tr', {}, el('td', { colspan: 6, class: 'muted' }, 'No node matches.')));
    const last = Math.min(page.total, state.offset + page.items.length);
    pageInfo.textContent = page.total ? `${state.offset + 1}–${last} of ${page.total}` : '0 of 0';
    prev.disabled = state.offset === 0;
    next.disabled = last >= page.total;
    ctx.main.dataset.rendered = 'province';
  }

  refreshSummary().then(refreshNodes);
  // Live: the summaries watch says when this province changed; re-read at most once a second.
  let pending = false, lastRefresh = 0;
  const stopWatch = api.watchLines(`${api.FLEET}/fleetsummaries?watch=1`, (ev) => {
    if (ev.type !== 'MODIFIED' || ev.object.metadata.name !== province) return;
    if (pending) return;
    pending = true;
    setTimeout(() => { pending = false; lastRefresh = Date.now(); refreshSummary(); refreshNodes(); },
      Math.max(0, 1000 - (Date.now() - lastRefresh)));
  }, (ok, err) => {
    ctx.setLive(ok);
    if (ok) ctx.showBanner('');
    else if (err && loaded) ctx.showBanner(ctx.explain(err, 'Live updates stopped'), 'error');
  });
  return () => { stopped = true; stopWatch(); clearTimeout(timer); };
}
