// Dashboard benchmark: first render and update latency of /ui/ in headless chromium with many
// edgesim nodes connected to one cloudcore (docs/benchmarks.md, "Dashboard").
//
//   NODES=19000 PODS=5 node tools/bench/dashboard_bench.mjs [--build build]
//
// Measures, each RUNS times (default 5): the national view from navigation to the counts drawn
// (sign-in done, token in sessionStorage), the province view likewise (node table first page
// included), the fleetsummaries list and fleetnodes page API times, and the update latency: a
// node relabelled into a new province through the API (PATCH answered) until the page shows
// that province, and a node whose edgesim is killed until its row on the open province page says
// Unknown (minus tunnel.node_timeout).
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const args = process.argv.slice(2);
const opt = (name, def) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : def; };
const build = path.resolve(repo, opt('--build', process.env.GANTRY_BUILD_DIR || 'build'));
const NODES = Number(process.env.NODES || 19000);
const PODS = Number(process.env.PODS || 5);
const RUNS = Number(process.env.RUNS || 5);
const SIM_PROCS = Number(process.env.SIM_PROCS || Math.max(1, Math.ceil(NODES / 5000)));
const NODE_TIMEOUT_S = Number(process.env.NODE_TIMEOUT || 30);  // edgesim pings every 10 s
const { chromium } = await import(pathToFileURL(path.join(repo, 'tests/e2e/dashboard/node_modules/playwright-core/index.mjs')).href);

const t0 = Date.now();
const log = (...m) => console.error(`[${((Date.now() - t0) / 1000).toFixed(0)}s]`, ...m);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-dash-bench-'));
const children = [];
process.on('exit', () => { for (const c of children) { try { c.kill('SIGKILL'); } catch (_) { /* gone */ } } if (!process.env.KEEP) fs.rmSync(tmp, { recursive: true, force: true }); });
process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));
const freePort = () => new Promise((r) => { const s = net.createServer(); s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => r(p)); }); });
const run = (name, argv) => { const out = fs.openSync(path.join(tmp, `${name}.log`), 'a'); const c = spawn(argv[0], argv.slice(1), { stdio: ['ignore', out, out] }); children.push(c); return c; };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function eventually(what, fn, timeoutMs, intervalMs = 50) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) { try { const v = await fn(); if (v) return v; } catch (_) { /* retry */ } await sleep(intervalMs); }
  throw new Error(`${what}: not within ${timeoutMs} ms`);
}
const pct = (xs) => { const s = [...xs].sort((a, b) => a - b); const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))]; return { p50: q(0.5), p90: q(0.9), max: s[s.length - 1], n: s.length }; };

const bin = (p) => path.join(build, p);
const cc = path.join(tmp, 'cc');
const [tunnelPort, apiPort, joinPort] = [await freePort(), await freePort(), await freePort()];
execFileSync(bin('tools/gantryadm/gantryadm'), ['init', '--data-dir', cc, '--advertise-address', '127.0.0.1'], { stdio: 'ignore' });
const yamlPath = path.join(cc, 'cloudcore.yaml');
fs.writeFileSync(yamlPath, fs.readFileSync(yamlPath, 'utf8')
  .replace('"0.0.0.0:10000"', `"127.0.0.1:${tunnelPort}"`).replace('"0.0.0.0:10443"', `"127.0.0.1:${apiPort}"`)
  .replace('"0.0.0.0:10002"', `"127.0.0.1:${joinPort}"`).replace('level: info', 'level: warn')
  .replace(/^tunnel:\n/m, `tunnel:\n  heartbeat: 10s\n  node_timeout: ${NODE_TIMEOUT_S}s\n  max_concurrent_resyncs: 20000\n`) + 'threads: 2\n');
const token = fs.readFileSync(path.join(cc, 'admin.kubeconfig'), 'utf8').match(/token: (\S+)/)[1];
log(`seeding ${NODES} nodes x ${PODS} pods`);
execFileSync(bin('tools/edgesim/edgesim'), ['--seed-store', path.join(cc, 'data/store'), '--nodes', String(NODES), '--pods', String(PODS)], { stdio: 'ignore' });
const cloud = run('cloudcore', [bin('cloudcore/cloudcore'), '--config', yamlPath]);
const base = `https://127.0.0.1:${apiPort}`;
const ca = fs.readFileSync(path.join(cc, 'pki/ca.crt'));
function api(method, p, body, type = 'application/json') {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = https.request(`${base}${p}`, { method, ca, headers: { Authorization: `Bearer ${token}`, ...(body ? { 'Content-Type': type } : {}) } }, (res) => {
      let b = ''; res.on('data', (d) => { b += d; }); res.on('end', () => { let j = null; try { j = JSON.parse(b); } catch (_) { /* not JSON */ } resolve({ code: res.statusCode, json: j, ms: performance.now() - started, bytes: b.length }); });
    });
    req.on('error', reject); req.end(body);
  });
}
await eventually('cloudcore ready', async () => (await api('GET', '/readyz')).code === 200, 300_000, 250);
const rss = () => Number(fs.readFileSync(`/proc/${cloud.pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)[1]) / 1024;

// The fleet, in SIM_PROCS edgesims (the last node alone, to be taken offline).
const per = Math.ceil((NODES - 1) / SIM_PROCS);
const simArgs = (first, n) => [bin('tools/edgesim/edgesim'), '--cloudcore', `127.0.0.1:${tunnelPort}`, '--data-dir', cc, '--api', '-',
  '--nodes', String(n), '--first-node', String(first), '--heartbeat', '10', '--churn-interval', process.env.CHURN || '600',
  '--duration', '3600', '--connect-timeout', '900'];
for (let i = 0, first = 0; first < NODES - 1; ++i, first += per) run(`edgesim-${i}`, simArgs(first, Math.min(per, NODES - 1 - first)));
const lone = run('edgesim-lone', simArgs(NODES - 1, 1));
const loneNode = `sim-${String(NODES - 1).padStart(6, '0')}`;
log(`connecting ${NODES} nodes in ${SIM_PROCS + 1} edgesims`);
const connectStart = Date.now();
await eventually('every node Ready', async () => (await api('GET', '/apis/gantry.io/v1/fleetsummaries')).json.total.nodes.ready === NODES, 1_200_000, 1000);
const connectS = (Date.now() - connectStart) / 1000;
log(`all ${NODES} Ready after ${connectS.toFixed(0)} s; cloudcore RSS ${rss().toFixed(0)} MiB`);
const loneProvince = (await api('GET', `/api/v1/nodes/${loneNode}`)).json.metadata.labels['topology.gantry.io/province'];

const apiList = [], apiNodes = [], apiBreakdown = [];
for (let i = 0; i < RUNS; ++i) {
  apiList.push((await api('GET', '/apis/gantry.io/v1/fleetsummaries')).ms);
  apiNodes.push((await api('GET', `/apis/gantry.io/v1/fleetnodes?province=${loneProvince}&sortBy=state&limit=25`)).ms);
  apiBreakdown.push((await api('GET', `/apis/gantry.io/v1/fleetsummaries/${loneProvince}?groupBy=gantry.io/simulated`)).ms);
}
const listBytes = (await api('GET', '/apis/gantry.io/v1/fleetsummaries')).bytes;

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'] });
const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1360, height: 900 } });
await context.addInitScript((t) => sessionStorage.setItem('gantry.token', t), token);
const page = await context.newPage();
let transfer = 0;
page.on('response', async (r) => { try { transfer += (await r.body()).length; } catch (_) { /* streams */ } });
const national = [], province = [];
for (let i = 0; i < RUNS; ++i) {
  await page.goto('about:blank');
  let s = performance.now();
  await page.goto(`${base}/ui/#/`);
  await page.locator('main[data-rendered="national"]').waitFor({ timeout: 60_000 });
  await page.getByTestId('total-nodes').filter({ hasText: String(NODES) }).waitFor({ timeout: 60_000 });
  national.push(performance.now() - s);
  await page.goto('about:blank');
  s = performance.now();
  await page.goto(`${base}/ui/#/province/${loneProvince}`);
  await page.locator('main[data-rendered="province"]').waitFor({ timeout: 60_000 });
  province.push(performance.now() - s);
}
const nationalBytes = transfer;

// Update latency 1: relabel a node into a new province; the open national page shows it.
await page.goto(`${base}/ui/#/`);
await page.locator('main[data-rendered="national"]').waitFor();
const relabel = [];
for (let i = 0; i < RUNS; ++i) {
  const node = `sim-${String(i * 7).padStart(6, '0')}`;
  const target = `bench-${i}`;
  const r = await api('PATCH', `/api/v1/nodes/${node}`, JSON.stringify({ metadata: { labels: { 'topology.gantry.io/province': target } } }), 'application/merge-patch+json');
  if (r.code !== 200) throw new Error(`patch ${node}: ${r.code}`);
  const s = performance.now() - r.ms;  // from when the PATCH was sent
  await page.getByTestId(`province-${target}`).waitFor({ timeout: 30_000 });
  relabel.push(performance.now() - s);
}
// Update latency 2: a node goes offline; its row on the open province page turns Unknown.
await page.goto(`${base}/ui/#/province/${loneProvince}`);
await page.locator('main[data-rendered="province"]').waitFor();
await page.getByTestId('name-filter').fill(loneNode);  // the table is paged: find its row
await page.getByTestId(`node-${loneNode}`).waitFor({ timeout: 30_000 });
const k = performance.now();
lone.kill('SIGKILL');
await page.getByTestId(`node-${loneNode}`).getByTestId('state').filter({ hasText: 'Unknown' }).waitFor({ timeout: 60_000 });
const offlineMs = performance.now() - k;
const heapMb = (await page.evaluate(() => (performance.memory ? performance.memory.usedJSHeapSize : 0))) / 1048576;
await browser.close();

const f = (x) => Math.round(x);
const fmt = (p) => `p50 ${f(p.p50)} ms, p90 ${f(p.p90)} ms, max ${f(p.max)} ms (n=${p.n})`;
const report = {
  nodes: NODES, pods: NODES * PODS, provinces: 29, connect_s: Math.round(connectS), cloudcore_rss_mib: Math.round(rss()),
  api_fleetsummaries_ms: pct(apiList), api_fleetsummaries_bytes: listBytes, api_fleetnodes_page_ms: pct(apiNodes),
  api_breakdown_ms: pct(apiBreakdown), national_first_render_ms: pct(national), province_first_render_ms: pct(province),
  bytes_to_browser_for_national_and_province_views: nationalBytes, update_relabel_ms: pct(relabel),
  offline_to_unknown_on_page_ms: f(offlineMs), node_timeout_ms: NODE_TIMEOUT_S * 1000, page_js_heap_mib: Math.round(heapMb),
};
console.log(JSON.stringify(report));
console.error(`national first render ${fmt(report.national_first_render_ms)}\nprovince first render ${fmt(report.province_first_render_ms)}\n` +
  `update (relabel -> page) ${fmt(report.update_relabel_ms)}\noffline -> Unknown on page ${f(offlineMs)} ms (node_timeout ${NODE_TIMEOUT_S} s)`);
process.exit(0);
