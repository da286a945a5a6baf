// Small DOM helpers: elements built with textContent only (never innerHTML with data).
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'on') for (const [ev, fn] of Object.entries(v)) e.addEventListener(ev, fn);
    else if (k === 'testid') e.dataset.testid = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

export function link(href, text, attrs = {}) { return el('a', { href, ...attrs }, text); }

export function ago(iso) {
  if (!iso) return '—';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

export function stat(label, value, testid, cls) {
  return el('div', { class: 'stat' }, el('b', { testid, class: cls }, value), label);
}

// Ready / NotReady / Unknown as a bar.
export function readyBar(n) {
  const t = Math.max(1, n.total);
  // Widths through the CSSOM: the CSP allows no inline style attributes.
  const seg = (cls, v) => { const s = el('span', { class: cls }); s.style.width = `${(100 * v) / t}%`; return s; };
  return el('div', { class: 'bar', title: `${n.ready} Ready, ${n.notReady} NotReady, ${n.unknown} Unknown` },
    seg('r', n.ready), seg('n', n.notReady), seg('u', n.unknown));
}

export function phases(byPhase) {
  return Object.entries(byPhase || {}).filter(([, v]) => v > 0)
    .map(([k, v]) => el('span', { class: k }, `${k} ${v} `));
}

export function versions(v) {
  return Object.entries(v || {}).filter(([, n]) => n > 0).map(([k, n]) => `${k} (${n})`).join(', ') || '—';
}

export function labels(obj) {
  return el('span', { class: 'labels' }, Object.entries(obj || {}).map(([k, v]) => el('code', {}, `${k}=${v}`)));
}

export function conditionTable(conditions) {
  return el('table', {},
    el('thead', {}, el('tr', {}, ['Type', 'Status', 'Reason', 'Message', 'Since'].map((h) => el('th', {}, h)))),
    el('tbody', {}, (conditions || []).map((c) => el('tr', {},
      el('td', {}, c.type), el('td', { class: c.status }, c.status), el('td', {}, c.reason || ''),
      el('td', {}, c.message || ''), el('td', {}, ago(c.lastTransitionTime))))));
}

export function eventsTable(events) {
  if (!events.length) return el('p', { class: 'muted' }, 'No events.');
  const sorted = [...events].sort((a, b) => (Date.parse(b.lastTimestamp || b.eventTime || 0) || 0) - (Date.parse(a.lastTimestamp || a.eventTime || 0) || 0));
  return el('table', {},
    el('thead', {}, el('tr', {}, ['Type', 'Reason', 'Message', 'Count', 'Last'].map((h) => el('th', {}, h)))),
    el('tbody', {}, sorted.slice(0, 100).map((e) => el('tr', {},
      el('td', { class: e.type === 'Warning' ? 'Failed' : '' }, e.type), el('td', {}, e.reason),
      el('td', {}, e.message), el('td', {}, e.count ?? 1), el('td', {}, ago(e.lastTimestamp || e.eventTime))))));
}
