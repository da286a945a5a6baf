// Rollouts (gantry.io/v1, docs/rollouts.md): the list, one rollout with its steps, counts and
// pre-pull, and the operator's actions — the same merge patches on the Rollout that
// docs/rollouts.md gives kubectl users. Live from the rollouts watch.
import * as api from '../api.js';
import { el, link, stat, ago } from '../ui.js';

const ROLLOUTS = `${api.FLEET}/rollouts`;
const FINISHED = new Set(['Completed', 'Aborted', 'RolledBack']);

export function inProgress(r) { return !FINISHED.has(r.status?.phase || 'Completed'); }
export function stepText(r) { return `${r.status?.currentStep ?? 0}/${(r.spec?.steps || []).length}`; }
const target = (r) => {
  const t = r.spec?.targetRef || {};
  return `${t.kind === 'DaemonSet' ? 'ds' : t.kind === 'Deployment' ? 'deploy' : (t.kind || '?').toLowerCase()}/${t.name || '?'}`;
};
const href = (r) => `#/rollout/${api.enc(r.metadata.namespace)}/${api.enc(r.metadata.name)}`;
const testKey = (r) => `${r.metadata.namespace}-${r.metadata.name}`;
const COUNTS = [['updated', 'Updated'], ['ready', 'Ready'], ['failed', 'Failed'], ['waitingOffline', 'Waiting-offline'], ['nodes', 'Nodes']];

function forbiddenNote(err, explain) {
  return el('p', { class: 'muted', testid: 'rollouts-forbidden' },
    err.code === 403 ? `Rollouts are administrators' objects (docs/rollouts.md): this token may not read them. ${explain(err, 'Rollouts')}`
      : explain(err, 'Rollouts'));
}

function rolloutRows(items, empty) {
  const rows = items.map((r) => {
    const s = r.status || {};
    return el('tr', { testid: `rollout-${testKey(r)}`, class: s.failed > 0 || s.phase === 'Paused' ? 'trouble' : '' },
      el('td', {}, link(href(r), `${r.metadata.namespace}/${r.metadata.name}`, { testid: `open-rollout-${testKey(r)}` })),
      el('td', {}, target(r)), el('td', { testid: 'step' }, stepText(r)),
      el('td', { testid: 'phase', class: s.phase }, s.phase || '—'),
      ...COUNTS.map(([k]) => el('td', { testid: k, class: k === 'failed' && s[k] ? 'Failed' : '' }, s[k] ?? 0)),
      el('td', {}, s.message || ''));
  });
  if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: 10, class: 'muted' }, empty)));
  return rows;
}
const rolloutHead = () => el('thead', {}, el('tr', {},
  ['Rollout', 'Target', 'Step', 'Phase', ...COUNTS.map(([, h]) => h), 'Message'].map((h) => el('th', {}, h))));

// Follows every rollout the token sees: onChange(list) after each change, onError(err) when the
// token may not read them or the API fails.
function followRollouts(onChange, onState) {
  const all = new api.Objects();
  const later = api.throttle(() => onChange(all.items), 200);
  return api.listWatch(async (signal) => {
    const list = await api.get(ROLLOUTS, { signal });
    all.reset(list.items);
    onChange(all.items);
    return [{ path: ROLLOUTS, resourceVersion: list.metadata.resourceVersion, onEvent: (t, o) => { all.apply(t, o); later(); } }];
  }, onState);
}

// The national view's card: the rollouts in progress.
export function rolloutsCard(ctx) {
  const body = el('tbody', { testid: 'rollouts-in-progress' });
  const note = el('div');
  const card = el('div', { class: 'card' }, el('h2', {}, 'Rollouts in progress ', link('#/rollouts', '(all rollouts)')),
    note, el('table', {}, rolloutHead(), body));
  let stopped = false;
  const stop = followRollouts((items) => {
    if (stopped) return;
    note.replaceChildren();
    const live = items.filter(inProgress).sort((a, b) => api.Objects.key(a).localeCompare(api.Objects.key(b)));
    body.replaceChildren(...rolloutRows(live, `No rollout in progress (${items.length} rollout${items.length === 1 ? '' : 's'} in all).`));
  }, (ok, err) => {
    if (stopped || ok || !err) return;
    note.replaceChildren(forbiddenNote(err, ctx.explain));
    if (err.code === 403) body.replaceChildren();
  });
  return { card, stop: () => { stopped = true; stop(); } };
}

// #/rollouts: every rollout, in progress first.
export function rolloutsView(ctx) {
  ctx.setCrumbs([['#/', 'Fleet'], [null, 'Rollouts']]);
  const body = el('tbody', { testid: 'rollouts' });
  ctx.main.replaceChildren(el('h1', {}, 'Rollouts'),
    el('div', { class: 'card' }, el('p', { class: 'muted' }, 'Staged updates of DaemonSets and Deployments (docs/rollouts.md). Open one to approve, pause, resume or abort it.'),
      el('table', {}, rolloutHead(), body)));
  let stopped = false, shown = false;
  const stop = followRollouts((items) => {
    if (stopped) return;
    items.sort((a, b) => Number(inProgress(b)) - Number(inProgress(a)) || api.Objects.key(a).localeCompare(api.Objects.key(b)));
    body.replaceChildren(...rolloutRows(items, 'No Rollout yet: kubectl apply one (docs/rollouts.md).'));
    shown = true;
    ctx.main.dataset.rendered = 'rollouts';
  }, (ok, err, first) => {
    if (stopped) return;
    ctx.setLive(ok);
    if (ok) ctx.showBanner('');
    else if (first || !shown) ctx.failView(err, 'Rollouts');
    else ctx.showBanner(ctx.explain(err, 'Rollouts: live updates stopped'), 'error');
  });
  return () => { stopped = true; stop(); };
}

function stepDesc(s) {
  const parts = [];
  const sel = Object.entries(s.nodeSelector || {}).map(([k, v]) => `${k}=${v}`).join(',');
  parts.push(`${s.percent ?? 100} %${sel ? ` of ${sel}` : ''}`);
  if (s.prePull) parts.push('pre-pull');
  if (s.pause) parts.push(s.pause.duration ? `then wait ${s.pause.duration}` : 'then wait for approval');
  return parts.join(', ');
}

// #/rollout/NS/NAME: one rollout and its actions.
export function rolloutView(ctx, ns, name) {
  ctx.setCrumbs([['#/', 'Fleet'], ['#/rollouts', 'Rollouts'], [null, `${ns}/${name}`]]);
  const path = `${api.FLEET}/namespaces/${api.enc(ns)}/rollouts/${api.enc(name)}`;
  const listPath = `${api.FLEET}/namespaces/${api.enc(ns)}/rollouts?fieldSelector=${api.enc(`metadata.name=${name}`)}`;
  let ro = null, stopped = false, shown = false, confirmAbort = false, confirmUndo = false, busy = false;
  const top = el('div');
  const actionMsg = el('p', { testid: 'action-message', class: 'muted' });
  const actions = el('div', { class: 'toolbar', testid: 'actions' });

  // One action: the merge patch, as `kubectl patch rollout NAME --type merge -p PATCH` sends it.
  const act = (what, body) => run(what, `kubectl -n ${ns} patch rollout ${name} --type merge -p '${JSON.stringify(body)}'`,
    async () => { const o = await api.patch(path, body); if (api.newer(ro, o)) { ro = o; render(); } });

  // Roll back a DaemonSet as `kubectl rollout undo ds/NAME --to-revision=R` does: the
  // ControllerRevision of the stable revision, its data (the template, "$patch": "replace") sent
  // as a strategic merge patch of the DaemonSet. The Rollout then ends the run as RolledBack.
  async function undoDaemonSet() {
    const t = ro.spec.targetRef, stable = ro.status?.stableRevision;
    const ds = await api.get(`/apis/apps/v1/namespaces/${api.enc(ns)}/daemonsets/${api.enc(t.name)}`);
    const sel = Object.entries(ds.spec?.selector?.matchLabels || {}).map(([k, v]) => `${k}=${v}`).join(',');
    const revs = await api.get(`/apis/apps/v1/namespaces/${api.enc(ns)}/controllerrevisions${sel ? `?labelSelector=${api.enc(sel)}` : ''}`);
    const rev = revs.items.find((r) => (r.metadata.ownerReferences || []).some((o) => o.kind === 'DaemonSet' && o.uid === ds.metadata.uid)
      && r.metadata.labels?.['controller-revision-hash'] === stable);
    if (!rev) throw new Error(`no ControllerRevision of daemonsets.apps "${t.name}" has the stable revision ${stable}`);
    await api.patch(`/apis/apps/v1/namespaces/${api.enc(ns)}/daemonsets/${api.enc(t.name)}`, rev.data, 'application/strategic-merge-patch+json');
    return `kubectl -n ${ns} rollout undo ${target(ro)} --to-revision=${rev.revision}`;
  }

  async function run(what, kubectl, fn) {
    if (busy) return;
    busy = true;
    actionMsg.className = 'muted';
    actionMsg.dataset.testid = 'action-message';
    actionMsg.textContent = `${what}: sending… (${kubectl})`;
    try {
      const done = await fn();
      actionMsg.textContent = `${what}: done (the same as ${typeof done === 'string' ? done : kubectl}).`;
    } catch (e) {
      actionMsg.className = 'error';
      actionMsg.dataset.testid = 'action-error';
      actionMsg.textContent = e.code === 403
        ? `${what} was refused: this token may not change rollouts (403 Forbidden: ${e.message}).`
        : `${what} failed: ${ctx.explain(e, what)}`;
    } finally {
      busy = false;
      confirmAbort = false;
      confirmUndo = false;
      renderActions();
    }
  }

  function renderActions() {
    if (!ro) return;
    const s = ro.status || {}, spec = ro.spec || {};
    const running = inProgress(ro);
    const step = s.currentStep || 0;
    const waiting = s.phase === 'WaitingApproval';
    const b = (label, testid, enabled, why, fn, cls) => el('button', { type: 'button', testid, class: cls,
      disabled: !enabled || busy, title: enabled ? '' : why, on: { click: fn } }, label);
    actions.replaceChildren(
      b(waiting ? `Approve step ${step}` : 'Approve', 'approve', waiting, 'Nothing waits for an approval now',
        () => act(`Approve step ${step}`, { spec: { approvedStep: step } }), 'primary'),
      spec.paused
        ? b('Resume', 'resume', true, '', () => act('Resume', { spec: { paused: false } }))
        : b('Pause', 'pause', running, 'No run in progress', () => act('Pause', { spec: { paused: true } })),
      confirmAbort
        ? b('Confirm abort: every node back to the stable revision', 'abort-confirm', true, '', () => act('Abort', { spec: { abort: true } }), 'danger')
        : b('Abort…', 'abort', running && !spec.abort, 'No run in progress', () => { confirmAbort = true; renderActions(); }),
      spec.targetRef?.kind === 'DaemonSet'
        ? (confirmUndo
          ? b(`Confirm roll back to ${s.stableRevision}`, 'undo-confirm', true, '', () => run('Roll back',
            `kubectl -n ${ns} rollout undo ${target(ro)} --to-revision=R`, undoDaemonSet), 'danger')
          : b('Roll back…', 'undo', running && !!s.stableRevision, 'No run in progress', () => { confirmUndo = true; renderActions(); }))
        : el('span', { class: 'muted' }, 'Roll back: ', el('code', {}, `kubectl -n ${ns} rollout undo ${target(ro)}`)));
  }

  function render() {
    if (stopped || !ro) return;
    const s = ro.status || {}, spec = ro.spec || {};
    const steps = spec.steps || [];
    const step = s.currentStep || 0;
    const pre = s.reason === 'PrePulling' || s.prePullResult || s.prePulled;
    top.replaceChildren(...[
      el('h1', {}, `Rollout ${ns}/${name} `, el('span', { class: s.phase, testid: 'ro-phase' }, s.phase || '—'),
        spec.paused ? el('span', { class: 'muted', testid: 'ro-paused' }, ' (spec.paused)') : null),
      el('div', { class: 'cards' },
        stat('step', stepText(ro), 'ro-step'),
        ...COUNTS.map(([k, h]) => stat(h, s[k] ?? 0, `ro-${k}`, k === 'failed' && s[k] ? 'Failed' : '')),
        stat('nodes in this step', s.stepNodes ?? 0, 'ro-stepNodes'),
        stat('approved step', spec.approvedStep ?? 0, 'ro-approvedStep')),
      el('div', { class: 'card' }, el('h2', {}, 'Now'), el('p', { testid: 'ro-message' }, s.message || '—'),
        el('dl', { class: 'kv' },
          el('dt', {}, 'target'), el('dd', {}, target(ro)),
          el('dt', {}, 'reason'), el('dd', {}, s.reason || '—'),
          el('dt', {}, 'stable / update'), el('dd', {}, `${s.stableRevision || '—'} / ${s.updateRevision || '—'}`),
          el('dt', {}, 'step started'), el('dd', {}, ago(s.stepStartedAt)),
          el('dt', {}, 'step done'), el('dd', {}, s.stepDoneAt ? ago(s.stepDoneAt) : '—'),
          el('dt', {}, 'failures'), el('dd', {}, (s.failures || []).map((f) => `${f.node}: ${f.reason}`).join(', ') || '—')),
        el('h2', {}, 'Actions'), actions, actionMsg),
      pre || steps.some((x) => x.prePull) ? el('div', { class: 'card' }, el('h2', {}, 'Pre-pull'), el('dl', { class: 'kv', testid: 'ro-prepull' },
        el('dt', {}, 'nodes with the images (current step)'), el('dd', { testid: 'ro-prePulled' }, s.prePulled ?? 0),
        el('dt', {}, 'last pre-pull over'), el('dd', { testid: 'ro-prePullStep' }, s.prePullStep ? `step ${s.prePullStep}` : '—'),
        el('dt', {}, 'how it ended'), el('dd', { testid: 'ro-prePullResult' }, s.prePullResult || '—')),
        el('p', { class: 'muted' }, 'Jobs: ', el('code', {}, `kubectl -n ${ns} get ipj -l rollout.gantry.io/name=${name}`))) : null,
      el('div', { class: 'card' }, el('h2', {}, 'Steps'),
        el('table', {}, el('thead', {}, el('tr', {}, ['#', 'Step', 'State'].map((h) => el('th', {}, h)))),
          el('tbody', { testid: 'ro-steps' }, steps.map((x, i) => {
            const k = i + 1;
            const state = k < step || (k === step && s.phase === 'Completed') ? 'done'
              : k === step ? (s.phase || '') : 'to come';
            return el('tr', { class: k === step && inProgress(ro) ? 'current' : '' },
              el('td', {}, k), el('td', {}, stepDesc(x)),
              el('td', {}, state, x.pause && !x.pause.duration && (spec.approvedStep || 0) >= k ? ' · approved' : ''));
          })))),
    ].filter(Boolean));
    renderActions();
    if (!shown) {
      shown = true;
      ctx.main.replaceChildren(top);
      ctx.main.dataset.rendered = 'rollout';
    }
  }
  const later = api.throttle(render, 200);

  const stop = api.listWatch(async (signal) => {
    if (!shown) await api.get(path, { signal });
    const list = await api.get(listPath, { signal });
    if (!list.items.length) throw new api.ApiError(404, 'NotFound', `rollouts.gantry.io "${name}" not found`, path);
    ro = list.items[0];
    render();
    return [{ path: listPath, resourceVersion: list.metadata.resourceVersion, onEvent: (t, o) => {
      if (t === 'DELETED') { ctx.showBanner(`Rollout ${ns}/${name} was deleted.`); return; }
      if (api.newer(ro, o)) { ro = o; later(); }
    } }];
  }, (ok, err, first) => {
    if (stopped) return;
    ctx.setLive(ok);
    if (ok) ctx.showBanner('');
    else if (first || !shown) ctx.failView(err, `Rollout ${ns}/${name}`);
    else ctx.showBanner(ctx.explain(err, `Rollout ${ns}/${name}: live updates stopped`), 'error');
  });
  return () => { stopped = true; stop(); };
}
