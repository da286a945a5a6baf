// Node view: conditions, capacity, info, its pods and events; re-read every few seconds.
import * as api from '../api.js';
import { el, link, labels, conditionTable, eventsTable, ago } from '../ui.js';

function readyOf(node) {
  const c = (node.status?.conditions || []).find((x) => x.type === 'Ready');
  return !c ? 'Unknown' : c.status === 'True' ? 'Ready' : c.status === 'False' ? 'NotReady' : 'Unknown';
}

function podPhase(p) { return p.status?.phase || 'Pending'; }

export function nodeView(ctx, name) {
  const province = () => ctx.node?.metadata?.labels?.['topology.gantry.io/province'];
  let stopped = false, loaded = false, timer = null;
  async function load() {
    let node, pods, events;
    try {
      [node, pods, events] = await Promise.all([
        api.get(`/api/v1/nodes/${api.enc(name)}`),
        api.get(`/api/v1/pods?fieldSelector=${api.enc(`spec.nodeName=${name}`)}&limit=500`),
        api.get(`/api/v1/events?fieldSelector=${api.enc(`involvedObject.kind=Node,involvedObject.name=${name}`)}`).catch(() => ({ items: [] })),
      ]);
    } catch (e) {
      if (stopped) return;
      if (!loaded) ctx.failView(e, `Node ${name}`);
      else ctx.showBanner(ctx.explain(e, `Node ${name}`), 'error');
      return schedule();
    }
    if (stopped) return;
    ctx.node = node;
    ctx.showBanner('');
    const p = province();
    ctx.setCrumbs([['#/', 'Fleet'], p ? [`#/province/${api.enc(p)}`, p] : [null, '—'], [null, name]]);
    const st = node.status || {};
    const info = st.nodeInfo || {};
    const cap = st.capacity || {}, alloc = st.allocatable || {};
    const ready = readyOf(node);
    ctx.main.replaceChildren(
      el('h1', {}, `Node ${name} `, el('span', { class: ready, testid: 'node-state' }, ready)),
      el('div', { class: 'grid2' },
        el('div', { class: 'card' }, el('h2', {}, 'Conditions'), conditionTable(st.conditions)),
        el('div', { class: 'card' }, el('h2', {}, 'Capacity'),
          el('table', {}, el('thead', {}, el('tr', {}, ['', 'Capacity', 'Allocatable'].map((h) => el('th', {}, h)))),
            el('tbody', {}, ['cpu', 'memory', 'pods', 'ephemeral-storage'].map((r) => el('tr', {}, el('td', {}, r), el('td', {}, cap[r] ?? '—'), el('td', {}, alloc[r] ?? '—')))))),
        el('div', { class: 'card' }, el('h2', {}, 'Node'), el('dl', { class: 'kv' },
          el('dt', {}, 'edgecore'), el('dd', { testid: 'node-version' }, info.kubeletVersion || '—'),
          el('dt', {}, 'OS / arch'), el('dd', {}, `${info.osImage || info.operatingSystem || '—'} / ${info.architecture || '—'}`),
          el('dt', {}, 'kernel'), el('dd', {}, info.kernelVersion || '—'),
          el('dt', {}, 'runtime'), el('dd', {}, info.containerRuntimeVersion || '—'),
          el('dt', {}, 'addresses'), el('dd', {}, (st.addresses || []).map((a) => `${a.type} ${a.address}`).join(', ') || '—'),
          el('dt', {}, 'created'), el('dd', {}, ago(node.metadata.creationTimestamp)),
          el('dt', {}, 'labels'), el('dd', {}, labels(node.metadata.labels))))),
      el('div', { class: 'card' }, el('h2', {}, `Pods (${pods.items.length})`),
        el('table', {}, el('thead', {}, el('tr', {}, ['Pod', 'Phase', 'Ready', 'Restarts', 'Started'].map((h) => el('th', {}, h)))),
          el('tbody', { testid: 'node-pods' }, pods.items.map((p) => {
            const cs = p.status?.containerStatuses || [];
            return el('tr', {},
              el('td', {}, link(`#/pod/${api.enc(p.metadata.namespace)}/${api.enc(p.metadata.name)}`, `${p.metadata.namespace}/${p.metadata.name}`, { testid: `open-pod-${p.metadata.name}` })),
              el('td', { class: podPhase(p) }, podPhase(p)),
              el('td', {}, `${cs.filter((c) => c.ready).length}/${(p.spec?.containers || []).length}`),
              el('td', {}, cs.reduce((n, c) => n + (c.restartCount || 0), 0)),
              el('td', {}, ago(p.status?.startTime)));
          })))),
      el('div', { class: 'card' }, el('h2', {}, 'Events'), eventsTable(events.items || [])));
    ctx.main.dataset.rendered = 'node';
    loaded = true;
    schedule();
  }
  function schedule() { if (!stopped) timer = setTimeout(load, 3000); }
  load();
  ctx.setLive(true);
  return () => { stopped = true; clearTimeout(timer); };
}
