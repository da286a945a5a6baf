// National view: every province the token sees, trouble first, live from the summaries watch;
// and the rollouts in progress, live from the rollouts watch.
import * as api from '../api.js';
import { el, link, stat, readyBar, phases, versions, ago } from '../ui.js';
import { rolloutsCard } from './rollouts.js';

function troubleScore(s) {
  const n = s.status.nodes;
  return [n.total ? (n.notReady + n.unknown) / n.total : 0, s.status.trouble.podsFailedOrUnknown];
}

export function sortTroubleFirst(items) {
  return items.sort((a, b) => {
    const [x1, x2] = troubleScore(a), [y1, y2] = troubleScore(b);
    return y1 - x1 || y2 - x2 || a.metadata.name.localeCompare(b.metadata.name);
  });
}

export function nationalView(ctx) {
  ctx.setCrumbs([[null, 'Fleet']]);
  const provinces = new Map();
  const totals = el('div', { class: 'cards' });
  const body = el('tbody', { testid: 'provinces' });
  const rollouts = rolloutsCard(ctx);
  ctx.main.replaceChildren(
    el('h1', {}, 'Fleet'), totals,
    el('div', { class: 'card' }, el('h2', {}, 'Provinces (trouble first)'),
      el('table', {}, el('thead', {}, el('tr', {},
        ['Province', 'Nodes', 'Ready', 'NotReady', 'Unknown', '', 'Pods', 'Pods by phase', 'Edgecore versions', 'Last change']
          .map((h) => el('th', {}, h)))), body)), rollouts.card);

  let rendered = false;
  function render() {
    const items = sortTroubleFirst([...provinces.values()]);
    const t = { total: 0, ready: 0, notReady: 0, unknown: 0, pods: 0 };
    for (const s of items) {
      const n = s.status.nodes;
      t.total += n.total; t.ready += n.ready; t.notReady += n.notReady; t.unknown += n.unknown;
      t.pods += s.status.pods.total;
    }
    totals.replaceChildren(
      stat('provinces', items.length, 'total-provinces'),
      stat('nodes', t.total, 'total-nodes'),
      stat('Ready', t.ready, 'total-ready', 'Ready'),
      stat('NotReady', t.notReady, 'total-notready', 'NotReady'),
      stat('Unknown (offline)', t.unknown, 'total-unknown', 'Unknown'),
      stat('pods', t.pods, 'total-pods'));
    body.replaceChildren(...items.map((s) => {
      const n = s.status.nodes, name = s.metadata.name;
      const bad = n.notReady + n.unknown > 0 || s.status.trouble.podsFailedOrUnknown > 0;
      return el('tr', { class: bad ? 'trouble' : '', testid: `province-${name}` },
        el('td', {}, link(`#/province/${api.enc(name)}`, name || '<no province>', { testid: `open-province-${name}` })),
        el('td', { testid: 'nodes' }, n.total), el('td', { class: 'Ready', testid: 'ready' }, n.ready),
        el('td', { class: n.notReady ? 'NotReady' : '', testid: 'notready' }, n.notReady),
        el('td', { class: n.unknown ? 'Unknown' : '', testid: 'unknown' }, n.unknown),
        el('td', {}, readyBar(n)), el('td', { testid: 'pods' }, s.status.pods.total),
        el('td', {}, phases(s.status.pods.byPhase)), el('td', {}, versions(s.status.versions)),
        el('td', {}, ago(s.status.lastChange)));
    }));
    if (!items.length) body.replaceChildren(el('tr', {}, el('td', { colspan: 10, class: 'muted' },
      'No node visible to this token carries topology.gantry.io/province yet.')));
    if (!rendered) { rendered = true; ctx.main.dataset.rendered = 'national'; }
  }

  const stop = api.watchLines(`${api.FLEET}/fleetsummaries?watch=1`, (ev) => {
    if (ev.type === 'BOOKMARK') { if (!rendered) render(); return; }
    if (ev.type === 'DELETED') provinces.delete(ev.object.metadata.name);
    else provinces.set(ev.object.metadata.name, ev.object);
    render();
  }, (ok, err) => {
    ctx.setLive(ok);
    if (ok) ctx.showBanner('');
    else if (err) {
      if (!rendered) ctx.failView(err, 'The fleet summary');
      else ctx.showBanner(ctx.explain(err, 'Live updates stopped'), 'error');
    }
  });
  // A fleet without provinces sends no ADDED event: one read says so at once.
  let stopped = false;
  api.get(`${api.FLEET}/fleetsummaries`).then((l) => { if (!stopped && !rendered && !l.items.length) render(); }, () => {});
  return () => { stopped = true; stop(); rollouts.stop(); };
}
