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
const GLOBAL_DEADLINE_MS = 170_000;
setTimeout(() => { console.error('FAIL: the test passed its global deadline'); cleanup(); process.exit(1); }, GLOBAL_DEADLINE_MS).unref();

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
let containerdDir = null;
function cleanup() {
  for (const c of children) { try { c.kill('SIGKILL'); } catch (_) { /* gone */ } }
  if (containerdDir) { try { execFileSync(path.join(repo, 'tools/containerd.sh'), ['stop', containerdDir], { stdio: 'ignore' }); } catch (_) { /* best effort */ } }
  if (!process.env.KEEP) fs.rmSync(tmp, { recursive: true, force: true });
}
process.on('exit', cleanup);
process.on('SIGTERM', () => process.exit(143));
process.on('SIGINT', () => process.exit(130));

function fail(msg) { throw new Error(msg); }

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
