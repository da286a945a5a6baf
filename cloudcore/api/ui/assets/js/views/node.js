// Node view: conditions, capacity, info, its pods and events; live from three watches (the
// node by metadata.name, its pods by spec.nodeName, its events by involvedObject), each from the
// resourceVersion of the list it follows, re-listed when a watch ends or fails.
import * as api from '../api.js';
import { el, link, labels, conditionTable, eventsTable, ago } from '../ui.js';

function readyOf(node) {
  const c = (node.status?.conditions || []).find((x) => x.type === 'Ready');
  return !c ? 'Unknown' : c.status === 'True' ? 'Ready' : c.status === 'False' ? 'NotReady' : 'Unknown';
}

function podPhase(p) { return p.status?.phase || 'Pending'; }

export function nodeView(ctx, name) {
  let node = null, shown = false, stopped = false;
  const pods = new api.Objects(), events = new api.Objects();
  const nodePath = `/api/v1/nodes?fieldSelector=${api.enc(`metadata.name=${name}`)}`;
  const podsPath = `/api/v1/pods?fieldSelector=${api.enc(`spec.nodeName=${name}`)}`;
  const eventsPath = `/api/v1/events?fieldSelector=${api.enc(`involvedObject.kind=Node,involvedObject.name=${name}`)}`;

  async function load(signal) {
    // The first read is a GET, so that a node this token may not see, or one that does not
    // exist, answers with the API's own 403 or 404.
    if (!shown) await api.get(`/api/v1/nodes/${api.enc(name)}`, { signal });
    const [nodes, podList, eventList] = await Promise.all([
      api.get(nodePath, { signal }),
      api.get(`${podsPath}&limit=500`, { signal }),
      api.get(eventsPath, { signal }).catch((e) => { if (e.name === 'AbortError') throw e; return null; }),
    ]);
    if (!nodes.items.length) throw new api.ApiError(404, 'NotFound', `nodes "${name}" not found`, nodePath);
    node = nodes.items[0];
    pods.reset(podList.items);
    events.reset(eventList ? eventList.items : []);
    render();
    const watches = [
      { path: nodePath, resourceVersion: nodes.metadata.resourceVersion, onEvent: (type, o) => {
        if (type === 'DELETED') ctx.showBanner(`Node ${name} was deleted.`);
        else { node = o; later(); }
      } },
      { path: podsPath, resourceVersion: podList.metadata.resourceVersion, onEvent: (type, o) => { pods.apply(type, o); later(); } },
    ];
    if (eventList) watches.push({ path: eventsPath, resourceVersion: eventList.metadata.resourceVersion,
      onEvent: (type, o) => { events.apply(type, o); later(); } });
    return watches;
  }

  function render() {
    if (stopped) return;
    const p = node.metadata?.labels?.['topology.gantry.io/province'];
    ctx.setCrumbs([['#/', 'Fleet'], p ? [`#/province/${api.enc(p)}`, p] : [null, '—'], [null, name]]);
    const st = node.status || {};
    const info = st.nodeInfo || {};
    const cap = st.capacity || {}, alloc = st.allocatable || {};
    const ready = readyOf(node);
    const podItems = pods.items.sort((a, b) => api.Objects.key(a).localeCompare(api.Objects.key(b)));
    ctx.main.replaceChildren(
      el('h1', {}, `Node ${name} `, el('span', { class: ready, testid: 'node-state' }, ready),
        node.spec?.unschedulable ? el('span', { class: 'muted' }, ' (cordoned)') : null),
      el('div', { class: 'grid2' },
        el('div', { class: 'card' }, el('h2', {}, 'Conditions'), el('div', { testid: 'node-conditions' }, conditionTable(st.conditions))),
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
          el('dt', {}, 'labels'), el('dd', { testid: 'node-labels' }, labels(node.metadata.labels))))),
      el('div', { class: 'card' }, el('h2', {}, `Pods (${podItems.length})`),
        el('table', {}, el('thead', {}, el('tr', {}, ['Pod', 'Phase', 'Ready', 'Restarts', 'Started'].map((h) => el('th', {}, h)))),
          el('tbody', { testid: 'node-pods' }, podItems.map((pod) => {
            const cs = pod.status?.containerStatuses || [];
            return el('tr', {},
              el('td', {}, link(`#/pod/${api.enc(pod.metadata.namespace)}/${api.enc(pod.metadata.name)}`, `${pod.metadata.namespace}/${pod.metadata.name}`, { testid: `open-pod-${pod.metadata.name}` })),
              el('td', { class: podPhase(pod) }, pod.metadata.deletionTimestamp ? 'Terminating' : podPhase(pod)),
              el('td', {}, `${cs.filter((c) => c.ready).length}/${(pod.spec?.containers || []).length}`),
              el('td', {}, cs.reduce((n, c) => n + (c.restartCount || 0), 0)),
              el('td', {}, ago(pod.status?.startTime)));
          })))),
      el('div', { class: 'card' }, el('h2', {}, 'Events'), eventsTable(events.items)));
    shown = true;
    ctx.main.dataset.rendered = 'node';
  }
  const later = api.throttle(() => { if (node) render(); }, 200);

  const stop = api.listWatch(load, (ok, err, first) => {
    if (stopped) return;
    ctx.setLive(ok);
    if (ok) ctx.showBanner('');
    else if (first || !shown) ctx.failView(err, `Node ${name}`);
    else ctx.showBanner(ctx.explain(err, `Node ${name}: live updates stopped`), 'error');
  });
  return () => { stopped = true; stop(); };
}
