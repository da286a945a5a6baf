// #/workloads: the Deployments and DaemonSets the token sees, with ready / desired counts and the
// Rollout that stages each (if any); live from their watches.
import * as api from '../api.js';
import { el, link, ago } from '../ui.js';

const KINDS = [
  { kind: 'DaemonSet', path: '/apis/apps/v1/daemonsets', desired: (s) => s.desiredNumberScheduled, ready: (s) => s.numberReady,
    updated: (s) => s.updatedNumberScheduled, unavailable: (s) => s.numberUnavailable },
  { kind: 'Deployment', path: '/apis/apps/v1/deployments', desired: (s, o) => o.spec?.replicas ?? 1, ready: (s) => s.readyReplicas,
    updated: (s) => s.updatedReplicas, unavailable: (s) => s.unavailableReplicas },
];

export function workloadsView(ctx) {
  ctx.setCrumbs([['#/', 'Fleet'], [null, 'Workloads']]);
  const sets = KINDS.map(() => new api.Objects());
  const rollouts = new api.Objects();
  let rolloutsVisible = true, stopped = false, shown = false;
  const body = el('tbody', { testid: 'workloads' });
  ctx.main.replaceChildren(el('h1', {}, 'Workloads'),
    el('div', { class: 'card' }, el('table', {}, el('thead', {}, el('tr', {},
      ['Workload', 'Kind', 'Ready / desired', 'Updated', 'Unavailable', 'Rollout', 'Created'].map((h) => el('th', {}, h)))), body)));

  function render() {
    if (stopped) return;
    const byTarget = new Map(rollouts.items.map((r) => [`${r.metadata.namespace}/${r.spec?.targetRef?.kind}/${r.spec?.targetRef?.name}`, r]));
    const rows = [];
    KINDS.forEach((k, i) => {
      for (const o of sets[i].items.sort((a, b) => api.Objects.key(a).localeCompare(api.Objects.key(b)))) {
        const s = o.status || {};
        const desired = k.desired(s, o) ?? 0, ready = k.ready(s) ?? 0;
        const ro = byTarget.get(`${o.metadata.namespace}/${k.kind}/${o.metadata.name}`);
        rows.push(el('tr', { testid: `workload-${k.kind}-${o.metadata.namespace}-${o.metadata.name}`, class: ready < desired ? 'trouble' : '' },
          el('td', {}, `${o.metadata.namespace}/${o.metadata.name}`), el('td', {}, k.kind),
          el('td', { testid: 'ready', class: ready < desired ? 'NotReady' : 'Ready' }, `${ready} / ${desired}`),
          el('td', {}, k.updated(s) ?? 0), el('td', {}, k.unavailable(s) ?? 0),
          el('td', {}, ro ? link(`#/rollout/${api.enc(ro.metadata.namespace)}/${api.enc(ro.metadata.name)}`,
            `${ro.metadata.name}: step ${ro.status?.currentStep ?? 0}/${(ro.spec?.steps || []).length} ${ro.status?.phase || ''}`)
            : rolloutsVisible ? '—' : 'not visible to this token'),
          el('td', {}, ago(o.metadata.creationTimestamp))));
      }
    });
    if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: 7, class: 'muted' }, 'No Deployment or DaemonSet visible to this token.')));
    body.replaceChildren(...rows);
    shown = true;
    ctx.main.dataset.rendered = 'workloads';
  }
  const later = api.throttle(render, 250);

  const stop = api.listWatch(async (signal) => {
    const [lists, ros] = await Promise.all([
      Promise.all(KINDS.map((k) => api.get(k.path, { signal }))),
      api.get(`${api.FLEET}/rollouts`, { signal }).catch((e) => { if (e.name === 'AbortError') throw e; return null; }),
    ]);
    lists.forEach((l, i) => sets[i].reset(l.items));
    rolloutsVisible = !!ros;
    rollouts.reset(ros ? ros.items : []);
    render();
    const watches = KINDS.map((k, i) => ({ path: k.path, resourceVersion: lists[i].metadata.resourceVersion,
      onEvent: (t, o) => { sets[i].apply(t, o); later(); } }));
    if (ros) watches.push({ path: `${api.FLEET}/rollouts`, resourceVersion: ros.metadata.resourceVersion, onEvent: (t, o) => { rollouts.apply(t, o); later(); } });
    return watches;
  }, (ok, err, first) => {
    if (stopped) return;
    ctx.setLive(ok);
    if (ok) ctx.showBanner('');
    else if (first || !shown) ctx.failView(err, 'Workloads');
    else ctx.showBanner(ctx.explain(err, 'Workloads: live updates stopped'), 'error');
  });
  return () => { stopped = true; stop(); };
}
