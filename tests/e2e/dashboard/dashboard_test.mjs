// The dashboard in a real browser: Debian's chromium driven by playwright-core, against the real
// cloudcore (gantryadm init), edgesim nodes in three provinces, and one real edgecore on a
// private containerd for the logs view. Every port is free, every directory temporary.
//
//   node dashboard_test.mjs --build BUILD_DIR [--artifacts DIR]
//
// Screenshots of each view go to the artifacts directory (default BUILD/tests/e2e/dashboard/
// artifacts). Exits non-zero naming the first check that failed; bounded by a global deadline.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../../..');
const args = process.argv.slice(2);
const opt = (name, def) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : def; };
const build = path.resolve(opt('--build', path.join(repo, 'build')));
const artifacts = path.resolve(opt('--artifacts', path.join(build, 'tests/e2e/dashboard/artifacts')));
const withEdge = !args.includes('--no-edge');
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';

const started = Date.now();
const log = (...m) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s]`, ...m);

let playwright;
try {
  playwright = await import('playwright-core');
} catch (e) {
  console.error(`FAIL: playwright-core is not installed in ${here}/node_modules: run tools/deps.sh (npm ci) (${e.message})`);
  process.exit(1);
}
if (!fs.existsSync(chromiumPath)) {
  console.error(`FAIL: ${chromiumPath} is missing: run tools/deps.sh (Debian package chromium)`);
  process.exit(1);
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-dash-'));
const children = [];
let lockHolder = null;
let containerdDir = null;
function cleanup() {
  for (const c of children) { try { c.kill('SIGKILL'); } catch (_) { /* gone */ } }
  if (containerdDir) { try { execFileSync(path.join(repo, 'tools/containerd.sh'), ['stop', containerdDir], { stdio: 'ignore' }); } catch (_) { /* best effort */ } }
  if (!process.env.KEEP) fs.rmSync(tmp, { recursive: true, force: true });
  if (lockHolder) { try { lockHolder.kill('SIGKILL'); } catch (_) { /* gone */ } }  // after containerd stopped
}
process.on('exit', cleanup);
process.on('SIGTERM', () => process.exit(143));
process.on('SIGINT', () => process.exit(130));

function fail(msg) { throw new Error(msg); }

// The machine-wide containerd lock the C++ fixture takes (tests/support/containerd_fixture.cc):
// test runs from other build trees wait for each other instead of refusing. Held by a shell that
// opened the lock file, took the flock and became `sleep`; killed last by cleanup().
const LOCK_WAIT_S = 360;
if (withEdge) {
  const t0 = Date.now();
  const holder = spawn('sh', ['-c', `exec 9>>/run/lock/gantry-containerd.lock; flock -w ${LOCK_WAIT_S} 9 || exit 1; echo locked; exec sleep 100000`],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  lockHolder = holder;
  const got = await new Promise((resolve) => {
    holder.stdout.on('data', (d) => { if (String(d).includes('locked')) resolve(true); });
    holder.on('exit', () => resolve(false));
  });
  if (!got) { console.error(`FAIL: another test held /run/lock/gantry-containerd.lock for ${LOCK_WAIT_S} s`); process.exit(1); }
  if (Date.now() - t0 > 1000) log(`waited ${((Date.now() - t0) / 1000).toFixed(1)} s for the containerd lock`);
}
// From here the test is bounded.
const GLOBAL_DEADLINE_MS = 170_000;
setTimeout(() => { console.error('FAIL: the test passed its global deadline'); cleanup(); process.exit(1); }, GLOBAL_DEADLINE_MS).unref();

async function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

function run(name, argv, extra = {}) {
  const out = fs.openSync(path.join(tmp, `${name}.log`), 'a');
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', out, out], ...extra });
  children.push(child);
  return child;
}

async function eventually(what, fn, timeoutMs = 20_000, intervalMs = 100) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try { last = await fn(); if (last) return last; } catch (e) { last = e; }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  fail(`${what}: not within ${timeoutMs} ms (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
}

// --- the cluster ---------------------------------------------------------------------------
const bin = (p) => path.join(build, p);
const cc = path.join(tmp, 'cc');
const [tunnelPort, apiPort, joinPort] = [await freePort(), await freePort(), await freePort()];
execFileSync(bin('tools/gantryadm/gantryadm'), ['init', '--data-dir', cc, '--advertise-address', '127.0.0.1'], { stdio: 'ignore' });
let yaml = fs.readFileSync(path.join(cc, 'cloudcore.yaml'), 'utf8')
  .replace('"0.0.0.0:10000"', `"127.0.0.1:${tunnelPort}"`)
  .replace('"0.0.0.0:10443"', `"127.0.0.1:${apiPort}"`)
  .replace('"0.0.0.0:10002"', `"127.0.0.1:${joinPort}"`)
  .replace('level: info', 'level: warn')
  .replace(/^tunnel:\n/m, 'tunnel:\n  heartbeat: 1s\n  node_timeout: 3s\n');
fs.writeFileSync(path.join(cc, 'cloudcore.yaml'), yaml);
const adminToken = fs.readFileSync(path.join(cc, 'admin.kubeconfig'), 'utf8').match(/token: (\S+)/)[1];
const tokenFile = yaml.match(/token_file: "?([^"\n]+)"?/)[1];
const provinceToken = 'p01-viewer-token-0123456789abcdef';
fs.appendFileSync(tokenFile, `\n${provinceToken},p01-viewer,p01v,"gantry:province:p01:viewer"\n`);

const NODES = 60, PROVINCES = 3;
execFileSync(bin('tools/edgesim/edgesim'), ['--seed-store', path.join(cc, 'data/store'), '--nodes', String(NODES),
  '--pods', '2', '--provinces', String(PROVINCES)], { stdio: 'ignore' });
const cloudcore = run('cloudcore', [bin('cloudcore/cloudcore'), '--config', path.join(cc, 'cloudcore.yaml')]);
const base = `https://127.0.0.1:${apiPort}`;
const ca = fs.readFileSync(path.join(cc, 'pki/ca.crt'));

function apiGet(p, token = adminToken) {
  return new Promise((resolve, reject) => {
    const req = https.get(`${base}${p}`, { ca, headers: { Authorization: `Bearer ${token}` } }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => { try { resolve({ code: res.statusCode, json: JSON.parse(body) }); } catch (e) { resolve({ code: res.statusCode, json: null }); } });
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
  });
}
// Any request: `body` as JSON, `type` its Content-Type (merge patches for PATCH).
function apiSend(method, p, body, { token = adminToken, type = 'application/json' } = {}) {
  return new Promise((resolve, reject) => {
    const req = https.request(`${base}${p}`, { method, ca, headers: { Authorization: `Bearer ${token}`, 'Content-Type': type } }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => { let json = null; try { json = JSON.parse(text); } catch (_) { /* not JSON */ } resolve({ code: res.statusCode, json }); });
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}
async function mustSend(what, method, p, body, type, codes = [200, 201]) {
  const r = await apiSend(method, p, body, { type });
  if (!codes.includes(r.code)) fail(`${what}: ${method} ${p} answered ${r.code} ${JSON.stringify(r.json)}`);
  return r.json;
}
await eventually('cloudcore answers', async () => (await apiGet('/readyz')).code === 200);

// Nodes 0..58 in one edgesim; node 59 alone in another, to be taken offline.
const sim = (name, first, n) => run(name, [bin('tools/edgesim/edgesim'), '--cloudcore', `127.0.0.1:${tunnelPort}`,
  '--data-dir', cc, '--api', '-', '--nodes', String(n), '--first-node', String(first), '--heartbeat', '1',
  '--churn-interval', '0', '--duration', '600', '--connect-timeout', '60', '--source-addresses', '1']);
sim('edgesim-main', 0, NODES - 1);
const lone = sim('edgesim-lone', NODES - 1, 1);
const loneNode = `sim-${String(NODES - 1).padStart(6, '0')}`;
const nodeRows = await eventually('every simulated node is Ready', async () => {
  const l = (await apiGet('/apis/gantry.io/v1/fleetsummaries')).json;
  return l && l.total.nodes.ready === NODES ? l : null;
}, 60_000, 250);
log(`fleet up: ${nodeRows.total.nodes.total} nodes in ${nodeRows.items.length} provinces`);
const loneProvince = (await apiGet(`/api/v1/nodes/${loneNode}`)).json.metadata.labels['topology.gantry.io/province'];

// --- a real edge node for the logs view ---------------------------------------------------
let logPod = null;
if (withEdge) {
  containerdDir = path.join(tmp, 'containerd');
  const runtime = execFileSync(path.join(repo, 'tools/containerd.sh'), ['start', containerdDir], { encoding: 'utf8' }).trim().split('\n').pop();
  const jt = execFileSync(bin('tools/gantryadm/gantryadm'), ['gettoken', '--data-dir', cc, '--ttl', '1h', '--province', 'p01'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  const edgeDir = path.join(tmp, 'edge');
  execFileSync(bin('tools/gantryadm/gantryadm'), ['join', '--cloudcore', `127.0.0.1:${joinPort}`, '--token', jt,
    '--node-name', 'real-edge', '--province', 'p01', '--data-dir', edgeDir, '--runtime-endpoint', runtime,
    '--tunnel-address', `127.0.0.1:${tunnelPort}`], { stdio: 'ignore' });
  // Pings well inside the short node_timeout this cluster runs with.
  fs.appendFileSync(path.join(edgeDir, 'edgecore.yaml'), 'heartbeat: 1s\n');
  run('edgecore', [bin('edgecore/edgecore'), '--config', path.join(edgeDir, 'edgecore.yaml')]);
  const pod = {
    apiVersion: 'v1', kind: 'Pod', metadata: { name: 'ticker', namespace: 'default' },
    spec: { nodeName: 'real-edge', containers: [{ name: 'ticker', image: 'gantry.local/busybox:1',
      command: ['sh', '-c', 'i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 0.5; done'] }] },
  };
  await eventually('the real edge node is Ready', async () => {
    const n = (await apiGet('/api/v1/nodes/real-edge')).json;
    return n && (n.status?.conditions || []).some((c) => c.type === 'Ready' && c.status === 'True');
  }, 60_000, 250);
  await new Promise((resolve, reject) => {
    const body = JSON.stringify(pod);
    const req = https.request(`${base}/api/v1/namespaces/default/pods`, { method: 'POST', ca,
      headers: { Authorization: `Bearer ${adminToken}`, 'Content-Type': 'application/json' } }, (res) => {
      res.resume(); res.on('end', () => (res.statusCode === 201 ? resolve() : reject(new Error(`create pod: ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
  await eventually('the ticker pod runs', async () => (await apiGet('/api/v1/namespaces/default/pods/ticker')).json?.status?.phase === 'Running', 60_000, 250);
  logPod = 'ticker';
}

// --- a Rollout waiting for approval, on the real edge node ---------------------------------
// A DaemonSet on the real node (edgesim does not run pods' graceful deletion), replaced rather
// than updated in place, staged by a Rollout of two steps: 50 % then a wait for approval, then
// 100 % with a pre-pull (of no node here: the one node is in step 1). Its template changes once, so the rollout stops at step 1/2, WaitingApproval.
const RO = '/apis/gantry.io/v1/namespaces/default/rollouts/gw';
let rolloutReady = false;
if (withEdge) {
  await mustSend('label the real node', 'PATCH', '/api/v1/nodes/real-edge', { metadata: { labels: { 'gantry.test/rollout': 'yes' } } }, 'application/merge-patch+json');
  const containers = (version) => [{ name: 'gw', image: 'gantry.local/busybox:1', env: [{ name: 'VERSION', value: version }],
    command: ['sh', '-c', 'trap "exit 0" TERM; while true; do sleep 1; done'] }];
  await mustSend('create the DaemonSet', 'POST', '/apis/apps/v1/namespaces/default/daemonsets', {
    apiVersion: 'apps/v1', kind: 'DaemonSet',
    metadata: { name: 'gw', namespace: 'default', annotations: { 'gantry.io/update-in-place': 'false' } },
    spec: { selector: { matchLabels: { app: 'gw' } }, template: { metadata: { labels: { app: 'gw' } },
      spec: { nodeSelector: { 'gantry.test/rollout': 'yes' }, terminationGracePeriodSeconds: 2, containers: containers('1') } } },
  });
  await eventually('the DaemonSet runs on the real node', async () => (await apiGet('/apis/apps/v1/namespaces/default/daemonsets/gw')).json?.status?.numberReady === 1, 60_000, 250);
  await mustSend('create the Rollout', 'POST', '/apis/gantry.io/v1/namespaces/default/rollouts', {
    apiVersion: 'gantry.io/v1', kind: 'Rollout', metadata: { name: 'gw', namespace: 'default' },
    spec: { targetRef: { apiVersion: 'apps/v1', kind: 'DaemonSet', name: 'gw' }, steps: [{ percent: 50, pause: {} }, { percent: 100, prePull: true }] },
  });
  await eventually('the Rollout takes the running revision as stable', async () => (await apiGet(RO)).json?.status?.stableRevision, 20_000, 100);
  await mustSend('change the template', 'PATCH', '/apis/apps/v1/namespaces/default/daemonsets/gw',
    { spec: { template: { spec: { containers: containers('2') } } } }, 'application/merge-patch+json');
  await eventually('the Rollout waits for approval at step 1', async () => {
    const st = (await apiGet(RO)).json?.status;
    return st && st.phase === 'WaitingApproval' && st.currentStep === 1 && st.updated === 1 ? st : null;
  }, 60_000, 250);
  rolloutReady = true;
  log('the Rollout waits for approval at step 1/2');
}

// --- the browser ---------------------------------------------------------------------------
fs.mkdirSync(artifacts, { recursive: true });
const browser = await playwright.chromium.launch({
  executablePath: chromiumPath, headless: true,
  args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
});
const results = [];
async function check(name, fn) {
  const t0 = Date.now();
  try { await fn(); results.push(`ok   ${name} (${Date.now() - t0} ms)`); log(`ok ${name}`); } catch (e) {
    results.push(`FAIL ${name}: ${e.message}`);
    try { await admin.screenshot({ path: path.join(artifacts, `failed-${results.length}.png`), fullPage: true }); } catch (_) { /* no page */ }
    log(`FAIL ${name}: ${e.message}`);
  }
}
async function newPage() {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1360, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.text().includes('gantry-boot')) log(`page: ${m.text()}`); });
  page.errors = errors;
  return page;
}
const shot = (page, name) => page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true });
const text = async (page, testid) => (await page.getByTestId(testid).first().textContent()).trim();
async function signIn(page, token) {
  await page.goto(`${base}/ui/`);
  await page.getByTestId('token-input').fill(token);
  await page.getByTestId('signin-button').click();
}

let admin = null;
admin = await newPage();
await check('a wrong token is refused on the sign-in page with a clear message', async () => {
  await signIn(admin, 'not-a-token');
  await admin.getByText('This token was not accepted').waitFor();
  await shot(admin, 'signin-refused');
});

await check('sign in; the national counts equal the API\'s', async () => {
  await signIn(admin, adminToken);
  await admin.locator('main[data-rendered="national"]').waitFor();
  const expected = NODES + (withEdge ? 1 : 0);
  await eventually('total nodes shown', async () => Number(await text(admin, 'total-nodes')) === expected, 15_000);
  const api = (await apiGet('/apis/gantry.io/v1/fleetsummaries')).json;
  const shown = {
    nodes: Number(await text(admin, 'total-nodes')), ready: Number(await text(admin, 'total-ready')),
    unknown: Number(await text(admin, 'total-unknown')), pods: Number(await text(admin, 'total-pods')),
    provinces: Number(await text(admin, 'total-provinces')),
  };
  const want = { nodes: api.total.nodes.total, ready: api.total.nodes.ready, unknown: api.total.nodes.unknown,
    pods: api.total.pods.total, provinces: api.items.length };
  if (JSON.stringify(shown) !== JSON.stringify(want)) fail(`page ${JSON.stringify(shown)} != API ${JSON.stringify(want)}`);
  const session = await admin.evaluate(() => ({ s: sessionStorage.getItem('gantry.token'), l: localStorage.length, c: document.cookie }));
  if (session.s !== adminToken || session.l !== 0 || session.c !== '') fail(`token storage: ${JSON.stringify(session)}`);
  await shot(admin, 'national');
});

await check('drill into a province and a node', async () => {
  await admin.getByTestId(`open-province-${loneProvince}`).click();
  await admin.locator('main[data-rendered="province"]').waitFor();
  const api = (await apiGet(`/apis/gantry.io/v1/fleetsummaries/${loneProvince}`)).json;
  await eventually('province node count', async () => Number(await text(admin, 'p-nodes')) === api.status.nodes.total);
  await admin.getByTestId('groupby').waitFor();
  await admin.getByTestId(`node-${loneNode}`).waitFor();
  await shot(admin, 'province');
  await admin.getByTestId(`open-node-${loneNode}`).click();
  await admin.locator('main[data-rendered="node"]').waitFor();
  if ((await text(admin, 'node-state')) !== 'Ready') fail(`node state ${await text(admin, 'node-state')}`);
  await admin.getByTestId('node-pods').locator('tr').first().waitFor();
  await shot(admin, 'node');
  await admin.goBack();
  await admin.locator('main[data-rendered="province"]').waitFor();
});

let offlineMs = null;
let nodePage = null;
await check('a node\'s label change appears on the open node view without reload', async () => {
  nodePage = await newPage();
  await signIn(nodePage, adminToken);
  await nodePage.locator('main[data-rendered="national"]').waitFor();
  await nodePage.goto(`${base}/ui/#/node/${loneNode}`);
  await nodePage.locator('main[data-rendered="node"]').waitFor();
  await nodePage.getByTestId('node-state').filter({ hasText: 'Ready' }).waitFor();
  const loads = await nodePage.evaluate(() => performance.getEntriesByType('navigation').length);
  const t0 = Date.now();
  await mustSend('label the node', 'PATCH', `/api/v1/nodes/${loneNode}`, { metadata: { labels: { 'dashboard.gantry.io/checked': 'yes' } } }, 'application/merge-patch+json');
  await nodePage.getByTestId('node-labels').filter({ hasText: 'dashboard.gantry.io/checked=yes' }).waitFor({ timeout: 10_000 });
  log(`label change on the open node view after ${Date.now() - t0} ms`);
  if (await nodePage.evaluate(() => performance.getEntriesByType('navigation').length) !== loads) fail('the page reloaded');
});

await check('a node taken offline turns Unknown on the open page within seconds', async () => {
  await admin.getByTestId(`node-${loneNode}`).getByTestId('state').filter({ hasText: 'Ready' }).waitFor();
  const unknownBefore = Number(await text(admin, 'p-unknown'));
  const t0 = Date.now();
  lone.kill('SIGKILL');
  await eventually('the row says Unknown', async () =>
    (await admin.getByTestId(`node-${loneNode}`).getByTestId('state').textContent()).trim() === 'Unknown', 20_000, 100);
  offlineMs = Date.now() - t0;
  await eventually('the province count says one more Unknown', async () => Number(await text(admin, 'p-unknown')) === unknownBefore + 1, 5_000);
  log(`offline -> Unknown on the page after ${offlineMs} ms (node_timeout 3 s)`);
  await shot(admin, 'province-offline');
});

await check('the open node view shows the node\'s Ready condition turn Unknown without reload', async () => {
  if (!nodePage) fail('no node page');
  await nodePage.getByTestId('node-state').filter({ hasText: 'Unknown' }).waitFor({ timeout: 10_000 });
  const api = (await apiGet(`/api/v1/nodes/${loneNode}`)).json;
  const ready = api.status.conditions.find((c) => c.type === 'Ready');
  await nodePage.getByTestId('node-conditions').locator('td.Unknown').first().waitFor({ timeout: 5_000 });
  if (ready.status !== 'Unknown') fail(`the API says Ready=${ready.status}`);
  await shot(nodePage, 'node-live');
  if (nodePage.errors.length) fail(`page errors: ${nodePage.errors.join('; ')}`);
  await nodePage.context().close();
});

await check('a province token never sees another province (page and API calls)', async () => {
  const page = await newPage();
  const seen = [];
  page.on('response', (r) => { if (r.url().includes('/apis/') || r.url().includes('/api/')) seen.push({ url: r.url(), code: r.status() }); });
  await signIn(page, provinceToken);
  await page.locator('main[data-rendered="national"]').waitFor();
  await eventually('only p01', async () => (await page.locator('[data-testid^="province-"]').count()) === 1
    && (await page.getByTestId('province-p01').count()) === 1);
  await page.goto(`${base}/ui/#/province/p00`);
  await page.getByTestId('view-error').waitFor();
  const msg = await text(page, 'error-message');
  if (!msg.includes('Not allowed') || !msg.includes('p01')) fail(`message: ${msg}`);
  await shot(page, 'province-forbidden');
  await page.goto(`${base}/ui/#/node/sim-000000`);  // in p00
  await page.getByTestId('view-error').waitFor();
  for (const r of seen) if (r.url.includes('p00') && r.code < 400) fail(`${r.url} answered ${r.code}`);
  const bodies = await Promise.all([apiGet('/apis/gantry.io/v1/fleetsummaries', provinceToken), apiGet('/apis/gantry.io/v1/fleetnodes?province=p02', provinceToken)]);
  if (bodies[0].json.items.some((i) => i.metadata.name !== 'p01')) fail('the API listed another province');
  if (bodies[1].code !== 403) fail(`fleetnodes?province=p02 answered ${bodies[1].code}`);
  await page.context().close();
});

await check('an expired token while the page is open asks to sign in again', async () => {
  const page = await newPage();
  await signIn(page, adminToken);
  await page.locator('main[data-rendered="national"]').waitFor();
  await page.evaluate(() => sessionStorage.setItem('gantry.token', 'revoked-token'));
  await page.goto(`${base}/ui/#/province/p00`);
  await page.getByText('no longer accepted').first().waitFor();
  await shot(page, 'session-expired');
  await page.context().close();
});

if (logPod) {
  await check('the pod view follows new log lines', async () => {
    await admin.goto(`${base}/ui/#/pod/default/${logPod}`);
    await admin.locator('main[data-rendered="pod"]').waitFor();
    const lastTick = async () => { const m = [...(await admin.getByTestId('logs').textContent()).matchAll(/tick (\d+)/g)]; return m.length ? Number(m[m.length - 1][1]) : 0; };
    const first = await eventually('log lines shown', lastTick, 15_000);
    await eventually('new lines arrive while following', async () => (await lastTick()) >= first + 3, 15_000);
    await shot(admin, 'pod');
  });
}

if (rolloutReady) {
  const roStatus = async () => (await apiGet(RO)).json;
  const FIELDS = ['updated', 'ready', 'failed', 'waitingOffline', 'nodes'];
  await check('the national view lists the rollout in progress; the workloads view the DaemonSet', async () => {
    await admin.goto(`${base}/ui/#/`);
    await admin.locator('main[data-rendered="national"]').waitFor();
    await admin.getByTestId('rollouts-in-progress').getByTestId('rollout-default-gw').getByTestId('step').filter({ hasText: '1/2' }).waitFor();
    await shot(admin, 'national-rollouts');
    await admin.goto(`${base}/ui/#/workloads`);
    await admin.locator('main[data-rendered="workloads"]').waitFor();
    const ds = (await apiGet('/apis/apps/v1/namespaces/default/daemonsets/gw')).json;
    await eventually('ready / desired', async () => (await text(admin, 'workload-DaemonSet-default-gw').catch(() => '')).includes(
      `${ds.status.numberReady} / ${ds.status.desiredNumberScheduled}`), 10_000);
    await shot(admin, 'workloads');
  });

  await check('the rollouts view shows a Rollout\'s step and counts equal to the API\'s', async () => {
    await admin.goto(`${base}/ui/#/rollouts`);
    await admin.locator('main[data-rendered="rollouts"]').waitFor();
    const row = admin.getByTestId('rollout-default-gw');
    await row.waitFor();
    await eventually('list row equals the API', async () => {
      const ro = await roStatus();
      const want = { step: `${ro.status.currentStep}/${ro.spec.steps.length}`, phase: ro.status.phase, ...Object.fromEntries(FIELDS.map((f) => [f, String(ro.status[f])])) };
      const shown = {};
      for (const k of Object.keys(want)) shown[k] = (await row.getByTestId(k).textContent()).trim();
      return JSON.stringify(shown) === JSON.stringify(want) || fail(`page ${JSON.stringify(shown)} != API ${JSON.stringify(want)}`);
    }, 10_000);
    await shot(admin, 'rollouts');
    await admin.getByTestId('open-rollout-default-gw').click();
    await admin.locator('main[data-rendered="rollout"]').waitFor();
    const ro = await roStatus();
    const shown = { step: await text(admin, 'ro-step'), phase: await text(admin, 'ro-phase') };
    for (const f of FIELDS) shown[f] = await text(admin, `ro-${f}`);
    const want = { step: `${ro.status.currentStep}/${ro.spec.steps.length}`, phase: ro.status.phase, ...Object.fromEntries(FIELDS.map((f) => [f, String(ro.status[f])])) };
    if (JSON.stringify(shown) !== JSON.stringify(want)) fail(`page ${JSON.stringify(shown)} != API ${JSON.stringify(want)}`);
    if (!(await text(admin, 'ro-message')).includes('approvedStep')) fail(`message: ${await text(admin, 'ro-message')}`);
    await shot(admin, 'rollout');
  });

  await check('pause and resume patch spec.paused; the open page follows', async () => {
    await admin.getByTestId('pause').click();
    await eventually('spec.paused true in the API', async () => (await roStatus()).spec.paused === true, 10_000);
    await admin.getByTestId('ro-phase').filter({ hasText: 'Paused' }).waitFor({ timeout: 10_000 });
    await shot(admin, 'rollout-paused');
    await admin.getByTestId('resume').click();
    await eventually('spec.paused false in the API', async () => (await roStatus()).spec.paused === false, 10_000);
    await eventually('WaitingApproval again in the API', async () => {
      const ro = await roStatus();
      return ro.status.phase === 'WaitingApproval' || fail(JSON.stringify({ metadata: ro.metadata, spec: ro.spec, status: ro.status }));
    }, 10_000);
    await admin.getByTestId('ro-phase').filter({ hasText: 'WaitingApproval' }).waitFor({ timeout: 10_000 });
  });

  await check('a province token\'s rollout action shows the API\'s 403 as a message, not a blank page', async () => {
    const page = await newPage();
    await signIn(page, provinceToken);
    await page.locator('main[data-rendered="national"]').waitFor();
    await page.getByTestId('rollouts-forbidden').waitFor();
    await page.goto(`${base}/ui/#/rollout/default/gw`);
    await page.getByTestId('view-error').waitFor();
    const msg = await text(page, 'error-message');
    if (!msg.includes('Not allowed') || !msg.includes('rollouts')) fail(`message: ${msg}`);
    await shot(page, 'rollout-forbidden');
    await page.context().close();
    // The same action from the open page with a province token in place of the admin's.
    await admin.evaluate((t) => sessionStorage.setItem('gantry.token', t), provinceToken);
    await admin.getByTestId('pause').click();
    const err = admin.getByTestId('action-error');
    await err.waitFor();
    const t = (await err.textContent()).trim();
    if (!t.includes('403') || !t.includes('rollouts')) fail(`action message: ${t}`);
    if ((await roStatus()).spec.paused !== false) fail('the refused pause changed the Rollout');
    if ((await admin.locator('main[data-rendered="rollout"]').count()) !== 1) fail('the view went away');
    await shot(admin, 'rollout-action-forbidden');
    await admin.evaluate((t) => sessionStorage.setItem('gantry.token', t), adminToken);
  });

  await check('approve advances spec.approvedStep; the run completes on the open page', async () => {
    await admin.getByTestId('approve').filter({ hasText: 'Approve step 1' }).click();
    await eventually('spec.approvedStep 1 in the API', async () => (await roStatus()).spec.approvedStep === 1, 10_000);
    await admin.getByTestId('ro-approvedStep').filter({ hasText: '1' }).waitFor();
    await eventually('Completed in the API', async () => (await roStatus()).status.phase === 'Completed', 30_000, 250);
    await admin.getByTestId('ro-phase').filter({ hasText: 'Completed' }).waitFor({ timeout: 10_000 });
    if ((await text(admin, 'ro-step')) !== '2/2') fail(`step ${await text(admin, 'ro-step')}`);
    const st = (await roStatus()).status;
    await admin.getByTestId('ro-prePullResult').filter({ hasText: st.prePullResult || '—' }).waitFor({ timeout: 5_000 });
    const pre = { prePulled: await text(admin, 'ro-prePulled'), prePullStep: await text(admin, 'ro-prePullStep') };
    const preWant = { prePulled: String(st.prePulled), prePullStep: st.prePullStep ? `step ${st.prePullStep}` : '—' };
    if (JSON.stringify(pre) !== JSON.stringify(preWant)) fail(`pre-pull ${JSON.stringify(pre)} != API ${JSON.stringify(preWant)}`);
    log(`pre-pull shown: ${pre.prePullStep}, "${st.prePullResult}"`);
    await shot(admin, 'rollout-approved');
    if (admin.errors.length) fail(`page errors: ${admin.errors.join('; ')}`);
  });

  await check('roll back (as kubectl rollout undo) during a run ends it as RolledBack', async () => {
    const before = await roStatus();
    await mustSend('start another run', 'PATCH', '/apis/apps/v1/namespaces/default/daemonsets/gw',
      { spec: { template: { spec: { containers: [{ name: 'gw', image: 'gantry.local/busybox:1', env: [{ name: 'VERSION', value: '3' }],
        command: ['sh', '-c', 'trap "exit 0" TERM; while true; do sleep 1; done'] }] } } } }, 'application/merge-patch+json');
    await admin.getByTestId('undo').and(admin.locator(':enabled')).waitFor({ timeout: 15_000 });
    await admin.getByTestId('undo').click();
    await admin.getByTestId('undo-confirm').click();
    await eventually('the template is back in the API', async () =>
      (await apiGet('/apis/apps/v1/namespaces/default/daemonsets/gw')).json.spec.template.spec.containers[0].env[0].value === '2', 10_000);
    await admin.getByTestId('ro-phase').filter({ hasText: 'RolledBack' }).waitFor({ timeout: 15_000 });
    const after = await roStatus();
    if (after.status.phase !== 'RolledBack' || after.status.stableRevision !== before.status.stableRevision) fail(`status ${JSON.stringify(after.status)}`);
    if (!(await text(admin, 'action-message')).includes('rollout undo ds/gw --to-revision=')) fail(`message: ${await text(admin, 'action-message')}`);
    await shot(admin, 'rollout-rolled-back');
  });
}

await check('an API outage while the page is open shows a message, not a blank page', async () => {
  await admin.goto(`${base}/ui/#/`);
  await admin.locator('main[data-rendered="national"]').waitFor();
  cloudcore.kill('SIGKILL');
  await admin.getByTestId('banner').filter({ hasText: /not reachable|stopped|unavailable/ }).waitFor({ timeout: 20_000 });
  if (Number(await text(admin, 'total-nodes')) <= 0) fail('the last counts went away');
  await shot(admin, 'api-outage');
  if (admin.errors.length) fail(`page errors: ${admin.errors.join('; ')}`);
});

await browser.close();
console.log(results.join('\n'));
if (offlineMs !== null) console.log(`figure: offline -> Unknown on the open page ${offlineMs} ms (tunnel.node_timeout 3 s)`);
console.log(`screenshots in ${artifacts}`);
const failed = results.filter((r) => r.startsWith('FAIL'));
if (failed.length) { console.log(`${failed.length} check(s) failed; logs in ${tmp} (KEEP=1 keeps them)`); process.exit(1); }
console.log(`all ${results.length} checks passed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
process.exit(0);
