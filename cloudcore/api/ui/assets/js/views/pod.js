// Pod view: status, containers, events, and the logs of a container (tail, then follow).
import * as api from '../api.js';
import { el, link, conditionTable, eventsTable, ago } from '../ui.js';

function stateText(s) {
  if (!s) return '—';
  if (s.running) return `running since ${ago(s.running.startedAt)}`;
  if (s.waiting) return `waiting: ${s.waiting.reason || ''}`;
  if (s.terminated) return `terminated: ${s.terminated.reason || `exit ${s.terminated.exitCode}`}`;
  return '—';
}

export function podView(ctx, ns, name) {
  let stopped = false, stopLogs = () => {}, container = null, built = false;
  const logBox = el('pre', { class: 'logs', testid: 'logs' });
  const logState = el('span', { class: 'muted', testid: 'logs-state' });
  const follow = el('input', { type: 'checkbox', checked: true, testid: 'follow', on: { change: () => openLogs() } });
  const tail = el('select', { testid: 'tail', on: { change: () => openLogs() } }, ['50', '200', '1000'].map((n) => el('option', { value: n }, `last ${n} lines`)));
  const picker = el('select', { testid: 'container', on: { change: () => { container = picker.value; openLogs(); } } });
  const top = el('div');

  function openLogs() {
    stopLogs();
    if (!container) return;
    logBox.textContent = '';
    const ctl = new AbortController();
    stopLogs = () => ctl.abort();
    const q = new URLSearchParams({ container, tailLines: tail.value });
    if (follow.checked) q.set('follow', 'true');
    logState.textContent = follow.checked ? 'following…' : 'loading…';
    const stick = () => { logBox.scrollTop = logBox.scrollHeight; };
    api.stream(`/api/v1/namespaces/${api.enc(ns)}/pods/${api.enc(name)}/log?${q}`, (chunk) => {
      const atEnd = logBox.scrollHeight - logBox.scrollTop - logBox.clientHeight < 40;
      logBox.append(chunk);
      // Keep the page bounded: the oldest text goes past 1 MB.
      if (logBox.textContent.length > 1 << 20) logBox.textContent = logBox.textContent.slice(-(1 << 19));
      if (atEnd) stick();
    }, { signal: ctl.signal }).then(() => {
      logState.textContent = follow.checked ? 'the stream ended (the container stopped or the link dropped)' : 'end of the log';
    }).catch((e) => {
      if (e.name === 'AbortError') return;
      logState.textContent = '';
      logBox.append(el('span', { class: 'error', testid: 'logs-error' }, ctx.explain(e, 'Logs')));
    });
  }

  let pod = null;
  const events = new api.Objects();
  const podPath = `/api/v1/namespaces/${api.enc(ns)}/pods?fieldSelector=${api.enc(`metadata.name=${name}`)}`;
  const eventsPath = `/api/v1/namespaces/${api.enc(ns)}/events?fieldSelector=${api.enc(`involvedObject.name=${name}`)}`;

  // Live from two watches (the pod by metadata.name, its events), each from its list's
  // resourceVersion; the first read is a GET so that a 403 or 404 is the API's own.
  async function load(signal) {
    if (!built) await api.get(`/api/v1/namespaces/${api.enc(ns)}/pods/${api.enc(name)}`, { signal });
    const [pods, eventList] = await Promise.all([
      api.get(podPath, { signal }),
      api.get(eventsPath, { signal }).catch((e) => { if (e.name === 'AbortError') throw e; return null; }),
    ]);
    if (!pods.items.length) throw new api.ApiError(404, 'NotFound', `pods "${name}" not found in namespace "${ns}"`, podPath);
    pod = pods.items[0];
    events.reset(eventList ? eventList.items : []);
    render();
    const watches = [{ path: podPath, resourceVersion: pods.metadata.resourceVersion, onEvent: (type, o) => {
      if (type === 'DELETED') { ctx.showBanner(`Pod ${ns}/${name} was deleted.`); return; }
      pod = o; later();
    } }];
    if (eventList) watches.push({ path: eventsPath, resourceVersion: eventList.metadata.resourceVersion,
      onEvent: (type, o) => { events.apply(type, o); later(); } });
    return watches;
  }

  function render() {
    if (stopped || !pod) return;
    const node = pod.spec?.nodeName;
    ctx.setCrumbs([['#/', 'Fleet'], node ? [`#/node/${api.enc(node)}`, node] : [null, 'unscheduled'], [null, `${ns}/${name}`]]);
    const st = pod.status || {};
    const cs = st.containerStatuses || [];
    const phase = st.phase || 'Pending';
    top.replaceChildren(
      el('h1', {}, `Pod ${ns}/${name} `, el('span', { class: phase, testid: 'pod-phase' }, phase),
        pod.metadata.deletionTimestamp ? el('span', { class: 'muted' }, ' (terminating)') : null),
      el('div', { class: 'grid2' },
        el('div', { class: 'card' }, el('h2', {}, 'Status'), el('dl', { class: 'kv' },
          el('dt', {}, 'node'), el('dd', {}, node ? link(`#/node/${api.enc(node)}`, node) : '—'),
          el('dt', {}, 'pod IP'), el('dd', {}, st.podIP || '—'),
          el('dt', {}, 'started'), el('dd', {}, ago(st.startTime)),
          el('dt', {}, 'reason'), el('dd', {}, st.reason || '—')), el('h2', {}, 'Conditions'), conditionTable(st.conditions)),
        el('div', { class: 'card' }, el('h2', {}, 'Containers'),
          el('table', {}, el('thead', {}, el('tr', {}, ['Name', 'Image', 'State', 'Ready', 'Restarts'].map((h) => el('th', {}, h)))),
            el('tbody', { testid: 'containers' }, (pod.spec?.containers || []).map((c) => {
              const s = cs.find((x) => x.name === c.name) || {};
              return el('tr', {}, el('td', {}, c.name), el('td', {}, c.image), el('td', {}, stateText(s.state)),
                el('td', { class: s.ready ? 'True' : 'False' }, s.ready ? 'yes' : 'no'), el('td', {}, s.restartCount ?? 0));
            }))))),
      el('div', { class: 'card' }, el('h2', {}, 'Events'), eventsTable(events.items)));
    if (!built) {
      built = true;
      const names = (pod.spec?.containers || []).map((c) => c.name);
      picker.replaceChildren(...names.map((n) => el('option', { value: n }, n)));
      container = names[0] || null;
      ctx.main.replaceChildren(top, el('div', { class: 'card' }, el('h2', {}, 'Logs'),
        el('div', { class: 'toolbar' }, picker, tail, el('label', {}, follow, ' follow'), logState), logBox));
      openLogs();
      ctx.main.dataset.rendered = 'pod';
    }
  }
  const later = api.throttle(render, 200);

  const stop = api.listWatch(load, (ok, err, first) => {
    if (stopped) return;
    ctx.setLive(ok);
    if (ok) ctx.showBanner('');
    else if (first || !built) ctx.failView(err, `Pod ${ns}/${name}`);
    else ctx.showBanner(ctx.explain(err, `Pod ${ns}/${name}: live updates stopped`), 'error');
  });
  return () => { stopped = true; stop(); stopLogs(); };
}
