// ittybit console. No framework and no build step: the DOM is made with
// el(), which sets text as text (never HTML), so nothing a user supplied
// (metadata, input URLs, error messages) can become markup.

const csrf = document.querySelector('meta[name="csrf-token"]').content;
const main = document.getElementById('main');
const FINAL = ['completed', 'failed', 'cancelled'];

// el(tag, attrs, ...children): attrs are properties or attributes (on*
// takes a function); children are nodes or text.
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
    else if (k === 'class') e.className = v;
    else if (k in e && typeof v !== 'string') e[k] = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

class APIError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

// api calls the API with the session cookie, and the CSRF token on
// anything that changes state. A lost session goes back to sign-in.
async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET') headers['X-CSRF-Token'] = csrf;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const resp = await fetch(path, { method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body) });
  if (resp.status === 401) {
    location.assign('/ui/signin?next=' + encodeURIComponent(location.pathname + location.search));
    throw new APIError(401, { message: 'signed out' });
  }
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { message: text }; }
  if (!resp.ok) throw new APIError(resp.status, data);
  return data;
}

const fmtTime = (ms) => (ms ? new Date(ms).toLocaleString() : '—');
const fmtDur = (ms) => (ms === null || ms === undefined || ms < 0 ? '—' : ms < 1000 ? `${Math.round(ms)} ms` : ms < 120000 ? `${(ms / 1000).toFixed(1)} s` : `${(ms / 60000).toFixed(1)} min`);
const statusBadge = (s) => el('span', { class: `status ${s}` }, s);

// progressOf is a task's progress, 0–1: finished steps count whole, a
// running one by its own progress.
function progressOf(t) {
  if (t.status === 'completed') return 1;
  const steps = t.steps || [];
  if (!steps.length) return 0;
  let done = 0;
  for (const s of steps) done += s.status === 'completed' ? 1 : s.status === 'processing' ? (s.progress || 0) : 0;
  return done / steps.length;
}

// nodeOf is where a task runs now (or last ran).
function nodeOf(t) {
  const steps = t.steps || [];
  const running = steps.find((s) => s.status === 'processing');
  if (running) {
    if (running.parts && running.parts.length) {
      const nodes = [...new Set(running.parts.filter((p) => p.status === 'processing' && p.node).map((p) => p.node))];
      if (nodes.length) return nodes.join(', ');
    }
    return running.node || '—';
  }
  for (let i = steps.length - 1; i >= 0; i--) if (steps[i].node) return steps[i].node;
  return '—';
}

// scroller wraps a wide table: it scrolls on its own on a narrow screen,
// and takes the keyboard's focus so that it can be scrolled without a
// mouse.
function scroller(table) {
  const caption = table.querySelector('caption');
  const label = table.getAttribute('aria-label') || (caption && caption.textContent) || 'table';
  return el('div', { class: 'table-wrap', tabindex: 0, role: 'region', 'aria-label': label }, table);
}

function progressBar(t) {
  const p = progressOf(t);
  return el('progress', { max: 1, value: p, 'aria-label': `progress of ${t.id}: ${Math.round(p * 100)} %` });
}

// The live feed: one EventSource for the page, from the events to come.
let feed = null;
function follow(onEvent, indicator) {
  if (feed) feed.close();
  feed = new EventSource('/events/stream?after=latest');
  const types = ['task.created', 'task.processing', 'task.completed', 'task.failed', 'task.cancelled', 'step.completed', 'step.failed', 'step.retrying'];
  for (const type of types) {
    feed.addEventListener(type, (m) => {
      try { onEvent(JSON.parse(m.data)); } catch (err) { console.error(err); }
    });
  }
  if (indicator) {
    feed.addEventListener('open', () => { indicator.className = 'live on'; indicator.textContent = 'live'; });
    feed.addEventListener('error', () => { indicator.className = 'live'; indicator.textContent = 'reconnecting…'; });
  }
}

// Timers of the page shown; cleared when another is drawn.
let timers = [];
function every(ms, fn) { timers.push(setInterval(fn, ms)); }

function navigate(path) {
  history.pushState(null, '', path);
  route();
}

document.addEventListener('click', (e) => {
  const a = e.target.closest('a');
  if (!a || a.target || e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
  const url = new URL(a.href, location.href);
  if (url.origin === location.origin && url.pathname.startsWith('/ui/') && !url.pathname.startsWith('/ui/assets/')) {
    e.preventDefault();
    navigate(url.pathname + url.search);
  }
});
window.addEventListener('popstate', route);

document.getElementById('signout').addEventListener('click', async () => {
  await fetch('/ui/session', { method: 'DELETE', headers: { 'X-CSRF-Token': csrf }, credentials: 'same-origin' });
  location.assign('/ui/signin');
});

function show(title, ...content) {
  document.title = `${title} · ittybit`;
  main.replaceChildren(...content);
}

function route() {
  timers.forEach(clearInterval);
  timers = [];
  if (feed) { feed.close(); feed = null; }
  const path = location.pathname;
  let nav = 'tasks';
  let draw;
  let m;
  if (path === '/ui/' || path === '/ui/tasks') draw = () => tasksPage(new URLSearchParams(location.search));
  else if ((m = path.match(/^\/ui\/tasks\/([^/]+)$/))) draw = () => taskPage(decodeURIComponent(m[1]));
  else if (path === '/ui/new') { nav = 'new'; draw = newTaskPage; }
  else if (path === '/ui/fleet') { nav = 'fleet'; draw = fleetPage; }
  else draw = () => show('Not found', el('h1', {}, 'Not found'), el('p', {}, el('a', { href: '/ui/' }, 'Back to the tasks')));
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.dataset.nav === nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  draw().catch((err) => show('Error', el('h1', {}, 'Something went wrong'), el('p', { class: 'error', role: 'alert' }, err.message)));
}

// ---- Tasks ----

const STATUSES = ['queued', 'processing', 'completed', 'failed', 'cancelled'];
const KINDS = ['video', 'audio', 'image', 'adaptive_video'];

function select(id, label, values, current, any = 'any') {
  return el('div', {}, el('label', { for: id }, label),
    el('select', { id, name: label }, el('option', { value: '' }, any),
      values.map((v) => el('option', { value: v, selected: v === current }, v))));
}

async function tasksPage(q) {
  const status = q.get('status') || '';
  const kind = q.get('kind') || '';
  const params = new URLSearchParams({ limit: '20' });
  if (status) params.set('status', status);
  if (kind) params.set('kind', kind);
  if (q.get('after')) params.set('after', q.get('after'));
  if (q.get('before')) params.set('before', q.get('before'));
  const list = await api('GET', '/tasks?' + params);
  const firstPage = !q.get('after') && !q.get('before');

  const live = el('span', { class: 'live', 'aria-live': 'polite' }, 'connecting…');
  const body = el('tbody');
  const rows = new Map();
  const rowOf = (t) => {
    const tr = el('tr', { 'data-task': t.id },
      el('td', { class: 'id' }, el('a', { href: `/ui/tasks/${encodeURIComponent(t.id)}` }, t.id)),
      el('td', {}, t.kind),
      el('td', { 'data-col': 'status' }, statusBadge(t.status)),
      el('td', { 'data-col': 'progress' }, progressBar(t)),
      el('td', { 'data-col': 'node', class: 'mono' }, nodeOf(t)),
      el('td', { class: 'hide-narrow' }, fmtTime(t.created_at)));
    tr.task = t;
    return tr;
  };
  const put = (t) => {
    const old = rows.get(t.id);
    if (old) {
      if (old.task.updated_at > t.updated_at) return;
      const tr = rowOf(t);
      old.replaceWith(tr);
      rows.set(t.id, tr);
    } else if (firstPage && (!status || t.status === status) && (!kind || t.kind === kind)) {
      const tr = rowOf(t);
      body.prepend(tr);
      rows.set(t.id, tr);
      while (body.children.length > 20) {
        const last = body.lastElementChild;
        rows.delete(last.dataset.task);
        last.remove();
      }
    }
  };
  for (const t of list.data) {
    const tr = rowOf(t);
    body.append(tr);
    rows.set(t.id, tr);
  }

  const filters = el('form', { class: 'filters', role: 'search', 'aria-label': 'Filter tasks' },
    select('f-status', 'status', STATUSES, status), select('f-kind', 'kind', KINDS, kind),
    el('button', { type: 'submit' }, 'Filter'), live);
  filters.addEventListener('submit', (e) => {
    e.preventDefault();
    const p = new URLSearchParams();
    const s = filters.querySelector('#f-status').value;
    const k = filters.querySelector('#f-kind').value;
    if (s) p.set('status', s);
    if (k) p.set('kind', k);
    navigate('/ui/' + (p.toString() ? '?' + p : ''));
  });
  const pageLink = (label, key, id) => {
    const p = new URLSearchParams();
    if (status) p.set('status', status);
    if (kind) p.set('kind', kind);
    p.set(key, id);
    return el('a', { href: '/ui/?' + p }, label);
  };
  const ids = list.data.map((t) => t.id);
  const pager = el('nav', { class: 'pager', 'aria-label': 'Pages' },
    !firstPage && ids.length ? pageLink('← Newer', 'before', ids[0]) : null,
    (list.has_more || q.get('before')) && ids.length ? pageLink('Older →', 'after', ids[ids.length - 1]) : null);

  show('Tasks', el('h1', {}, 'Tasks'), filters,
    scroller(el('table', { 'aria-label': 'tasks' },
      el('caption', { class: 'muted' }, list.data.length ? 'Newest first' : 'No tasks yet: make one under New task.'),
      el('thead', {}, el('tr', {}, ['id', 'kind', 'status', 'progress', 'node'].map((h) => el('th', { scope: 'col' }, h)),
        el('th', { scope: 'col', class: 'hide-narrow' }, 'created'))),
      body)),
    pager);

  follow((e) => { if (e.data && e.data.object === 'task') put(e.data); }, live);
  // Progress moves between events: read the running tasks shown, every
  // 2 s (at most 10 a time: the console shares its key's rate limit).
  every(2000, async () => {
    const running = [...rows.values()].filter((tr) => tr.task.status === 'processing');
    await Promise.all(running.slice(0, 10).map(async (tr) => {
      try { put(await api('GET', `/tasks/${encodeURIComponent(tr.task.id)}`)); } catch { /* the next tick tries again */ }
    }));
  });
}

// ---- One task ----

function stepRows(t) {
  const rows = [];
  for (const s of t.steps || []) {
    const out = s.output && typeof s.output === 'object' ? s.output : {};
    const enc = out.encoder || (out.plan && out.plan.encoder) || '';
    const fallback = out.fallback_reason || out.fallback || '';
    rows.push(el('tr', {},
      el('td', {}, s.kind),
      el('td', {}, statusBadge(s.status), s.status === 'processing' && s.progress !== null ? ` ${Math.round((s.progress || 0) * 100)} %` : ''),
      el('td', { class: 'mono' }, s.node || '—'),
      el('td', {}, String(s.attempt || 0)),
      el('td', {}, fmtDur(s.started_at ? s.started_at - s.created_at : null)),
      el('td', {}, fmtDur(s.started_at ? (s.finished_at || Date.now()) - s.started_at : null)),
      el('td', { class: 'mono' }, enc || '—', fallback ? el('div', { class: 'muted' }, `fallback: ${fallback}`) : null),
      el('td', {}, s.error ? el('span', { class: 'error' }, `${s.error.kind}: ${s.error.message}`) : '')));
    for (const p of s.parts || []) {
      rows.push(el('tr', { class: 'part' },
        el('td', {}, `↳ part ${p.index} (${p.kind}${p.rendition !== null && p.rendition !== undefined ? ' r' + p.rendition : ''})`),
        el('td', {}, statusBadge(p.status), p.backup ? ` backup on ${p.backup.node}` : ''),
        el('td', { class: 'mono' }, p.node || '—'),
        el('td', {}, String(p.attempt || 0)),
        el('td', {}, `${Number(p.start).toFixed(1)}–${Number(p.end).toFixed(1)} s`),
        el('td', {}, fmtDur(p.started_at ? (p.finished_at || Date.now()) - p.started_at : null)),
        el('td', {}, ''),
        el('td', {}, p.error ? el('span', { class: 'error' }, `${p.error.kind}: ${p.error.message}`) : '')));
    }
  }
  return rows;
}

function preview(t) {
  if (t.status !== 'completed' || !t.output) return el('p', { class: 'muted' }, t.status === 'completed' ? 'No output to preview.' : 'The result shows here once the task completes.');
  const url = t.output;
  switch (t.kind) {
    case 'video':
      return el('video', { controls: true, muted: true, playsInline: true, preload: 'auto', src: url, 'aria-label': 'the result' });
    case 'audio':
      return el('audio', { controls: true, preload: 'auto', src: url, 'aria-label': 'the result' });
    case 'image':
      return el('img', { src: url, alt: `the result of ${t.id}` });
    case 'adaptive_video': {
      const v = el('video', { controls: true, muted: true, playsInline: true, 'aria-label': 'the result (HLS)' });
      if (window.Hls && window.Hls.isSupported()) {
        const hls = new window.Hls({ enableWorker: false });
        hls.loadSource(url);
        hls.attachMedia(v);
      } else {
        v.src = url; // Safari plays HLS itself
      }
      return v;
    }
  }
  return el('a', { href: url }, 'the result');
}

async function taskPage(id) {
  let t = await api('GET', `/tasks/${encodeURIComponent(id)}`);
  const head = el('div');
  const timeline = el('tbody');
  const json = el('pre', { tabindex: 0, 'aria-label': 'the task as JSON' });
  const previewBox = el('div', { class: 'preview' });
  let previewed = '';
  const live = el('span', { class: 'live', 'aria-live': 'polite' }, 'connecting…');
  const message = el('p', { role: 'status', class: 'muted' });

  const draw = () => {
    const cancellable = !FINAL.includes(t.status);
    const cancel = cancellable ? el('button', {
      type: 'button', class: 'danger',
      onclick: async (e) => {
        e.target.disabled = true;
        try { t = await api('POST', `/tasks/${encodeURIComponent(t.id)}/cancel`); draw(); message.textContent = 'Cancelled.'; } catch (err) { message.textContent = err.message; e.target.disabled = false; }
      },
    }, 'Cancel') : null;
    head.replaceChildren(
      el('h1', {}, 'Task ', el('span', { class: 'mono' }, t.id)),
      el('div', { class: 'actions' }, statusBadge(t.status), progressBar(t), cancel, live),
      message,
      t.error ? el('p', { class: 'error', role: 'alert' }, el('strong', {}, t.error.kind), `: ${t.error.message}`) : null,
      el('dl', { class: 'facts' },
        el('dt', {}, 'kind'), el('dd', {}, t.kind),
        el('dt', {}, 'input'), el('dd', { class: 'mono' }, t.input),
        el('dt', {}, 'created'), el('dd', {}, fmtTime(t.created_at)),
        el('dt', {}, 'finished'), el('dd', {}, fmtTime(t.finished_at)),
        el('dt', {}, 'metadata'), el('dd', { class: 'mono' }, t.metadata ? JSON.stringify(t.metadata) : '—')));
    timeline.replaceChildren(...stepRows(t));
    json.textContent = JSON.stringify(t, null, 2);
    const key = `${t.status}|${t.output}`;
    if (key !== previewed) {
      previewed = key;
      previewBox.replaceChildren(preview(t));
    }
  };
  draw();
  show(`Task ${t.id}`, head,
    el('h2', {}, 'Steps'),
    scroller(el('table', { 'aria-label': 'steps' },
      el('thead', {}, el('tr', {}, ['step', 'status', 'node', 'attempt', 'wait', 'run', 'encoder', 'error'].map((h) => el('th', { scope: 'col' }, h)))),
      timeline)),
    el('div', { class: 'grid2' },
      el('section', { 'aria-labelledby': 'h-result' }, el('h2', { id: 'h-result' }, 'Result'), previewBox),
      el('section', { 'aria-labelledby': 'h-json' }, el('h2', { id: 'h-json' }, 'JSON'), json)));

  const refresh = async () => {
    try {
      const next = await api('GET', `/tasks/${encodeURIComponent(t.id)}`);
      if (next.updated_at >= t.updated_at) { t = next; draw(); }
    } catch { /* the next event or tick tries again */ }
  };
  follow((e) => { if (e.data && e.data.id === t.id) refresh(); }, live);
  every(1000, () => { if (!FINAL.includes(t.status)) refresh(); });
}

// ---- New task ----

let optionTables = null;

const NUMERIC = ['fps', 'bitrate', 'start', 'end'];
const HINTS = {
  input: 'A URL the server can fetch (http, https, s3).', output: 'Optional: where to put the result (s3://bucket/key); empty for managed storage.',
  width: 'Pixels, or a percentage such as 50%.', height: 'Pixels, or a percentage such as 50%.', background: 'A colour for contain: #000000 or a name.',
  fps: 'Frames per second.', bitrate: 'Bits per second.', start: 'Seconds into the input.', end: 'Seconds into the input.',
  metadata: 'A JSON object kept with the task.',
};

const shellQuote = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;

async function newTaskPage() {
  if (!optionTables) optionTables = await api('GET', '/ui/options.json');
  const o = optionTables;
  const form = el('form', { novalidate: true, 'aria-label': 'New task' });
  const general = el('p', { class: 'error', role: 'alert' });
  const curl = el('pre', { 'aria-label': 'the same request with curl', tabindex: 0 });
  const cli = el('pre', { 'aria-label': 'the same task with the CLI', tabindex: 0 });
  const fields = el('div', { class: 'fields' });
  const values = {};

  const field = (name, control, wide) => {
    control.id = `opt-${name}`;
    control.name = name;
    control.setAttribute('aria-describedby', `err-${name}${HINTS[name] ? ` hint-${name}` : ''}`);
    control.addEventListener('input', () => { values[name] = control.value; clearError(name); update(); });
    control.addEventListener('change', () => { values[name] = control.value; update(); });
    if (values[name] !== undefined) control.value = values[name];
    return el('div', { class: `field${wide ? ' wide' : ''}`, 'data-field': name },
      el('label', { for: control.id }, name), control,
      HINTS[name] ? el('span', { id: `hint-${name}`, class: 'hint' }, HINTS[name]) : null,
      el('p', { id: `err-${name}`, class: 'error', 'aria-live': 'polite' }));
  };
  const choice = (name, list, dflt) => el('select', {}, el('option', { value: '' }, dflt ? `default (${dflt})` : 'default'), list.map((v) => el('option', { value: v }, v)));
  const text = (name, type = 'text', placeholder = '') => el('input', { type, placeholder, autocomplete: 'off', spellcheck: false });

  const kindSelect = el('select', {}, o.kinds.map((k) => el('option', { value: k }, k)));
  values.kind = values.kind || 'video';

  const drawFields = () => {
    const kind = values.kind;
    const allowed = o.options[kind] || [];
    const nodes = [field('kind', kindSelect), field('input', text('input', 'url', 'https://example.com/video.mp4'), true), field('output', text('output', 'text', 's3://bucket/key.mp4'), true)];
    for (const name of allowed) {
      let c;
      switch (name) {
        case 'format': c = choice(name, o.formats[kind] || [], (o.formats[kind] || [])[0]); break;
        case 'codec': {
          const fmt = values.format || (o.formats[kind] || [])[0];
          const codecs = o.codecs[fmt] || [];
          c = choice(name, codecs, codecs[0]);
          break;
        }
        case 'quality': c = choice(name, o.qualities, 'medium'); break;
        case 'fit': c = choice(name, o.fits, o.fits[0]); break;
        case 'position': c = choice(name, o.positions, o.positions[0]); break;
        default: c = text(name);
          if (NUMERIC.includes(name)) c.inputMode = 'decimal';
      }
      nodes.push(field(name, c));
    }
    nodes.push(field('metadata', el('textarea', { placeholder: '{"title": "My video"}' }), true));
    fields.replaceChildren(...nodes);
    kindSelect.value = kind;
    // Options of other kinds are dropped: the form only sends the chosen kind's.
    for (const k of Object.keys(values)) {
      if (!['kind', 'input', 'output', 'metadata'].includes(k) && !allowed.includes(k)) delete values[k];
    }
  };
  kindSelect.addEventListener('change', () => { values.kind = kindSelect.value; drawFields(); update(); });

  const request = () => {
    const body = { kind: values.kind, input: (values.input || '').trim() };
    if (values.output && values.output.trim()) body.output = values.output.trim();
    const options = {};
    for (const name of o.options[values.kind] || []) {
      const v = (values[name] || '').trim();
      if (!v) continue;
      if ((NUMERIC.includes(name) || name === 'width' || name === 'height') && /^-?\d+(\.\d+)?$/.test(v)) options[name] = Number(v);
      else options[name] = v;
    }
    if (Object.keys(options).length) body.options = options;
    const meta = (values.metadata || '').trim();
    if (meta) {
      try { body.metadata = JSON.parse(meta); } catch { body.metadata = meta; }
    }
    return body;
  };

  const update = () => {
    const body = request();
    curl.textContent = `curl -X POST ${location.origin}/tasks \\\n  -H "Authorization: Bearer $ITTYBIT_API_KEY" \\\n  -H "Content-Type: application/json" \\\n  -d ${shellQuote(JSON.stringify(body))}`;
    const cmd = body.kind === 'adaptive_video' ? 'adaptive' : body.kind;
    const parts = [`ittybit ${cmd} --cloud -i ${shellQuote(body.input || 'INPUT')}`];
    if (body.output) parts.push(`-o ${shellQuote(body.output)}`);
    for (const [k, v] of Object.entries(body.options || {})) parts.push(`--${k} ${shellQuote(v)}`);
    if (body.metadata && typeof body.metadata === 'object' && !Array.isArray(body.metadata)) {
      for (const [k, v] of Object.entries(body.metadata)) parts.push(`--metadata ${shellQuote(`${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)}`);
    }
    cli.textContent = `ITTYBIT_API_URL=${location.origin} ` + parts.join(' ');
  };

  const clearError = (name) => {
    const p = document.getElementById(`err-${name}`);
    if (p) p.textContent = '';
    const c = document.getElementById(`opt-${name}`);
    if (c) c.removeAttribute('aria-invalid');
  };
  const showError = (name, msg) => {
    const p = name && document.getElementById(`err-${name}`);
    if (!p) { general.append(el('span', {}, msg), el('br')); return; }
    p.textContent = p.textContent ? `${p.textContent} ${msg}` : msg;
    document.getElementById(`opt-${name}`).setAttribute('aria-invalid', 'true');
  };

  const submit = el('button', { type: 'submit' }, 'Create task');
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    general.replaceChildren();
    for (const f of fields.querySelectorAll('[data-field]')) clearError(f.dataset.field);
    submit.disabled = true;
    try {
      const t = await api('POST', '/tasks', request());
      navigate(`/ui/tasks/${encodeURIComponent(t.id)}`);
    } catch (err) {
      const b = err.body || {};
      const problems = b.errors && b.errors.length ? b.errors : [b];
      for (const p of problems) showError(p.field, p.message || err.message);
      const first = fields.querySelector('[aria-invalid="true"]');
      if (first) first.focus();
    } finally {
      submit.disabled = false;
    }
  });

  drawFields();
  form.append(fields, general, el('div', { class: 'actions' }, submit));
  show('New task', el('h1', {}, 'New task'), form,
    el('div', { class: 'grid2' },
      el('section', { 'aria-labelledby': 'h-curl' }, el('h2', { id: 'h-curl' }, 'The same with curl'), curl),
      el('section', { 'aria-labelledby': 'h-cli' }, el('h2', { id: 'h-cli' }, 'The same with the CLI'), cli)));
  update();
}

// ---- Fleet ----

async function fleetPage() {
  const box = el('div');
  const live = el('span', { class: 'live', 'aria-live': 'polite' });
  show('Fleet', el('h1', {}, 'Fleet ', live), box);
  const history = [];
  const draw = async () => {
    let f;
    try { f = await api('GET', '/fleet'); live.className = 'live on'; live.textContent = 'updated every 2 s'; } catch (err) { live.className = 'live'; live.textContent = err.message; return; }
    history.push(...(f.throughput || []).filter((p) => !history.length || p.at > history[history.length - 1].at));
    box.replaceChildren(
      el('h2', {}, 'Control plane'),
      scroller(el('table', { 'aria-label': 'servers' },
        el('thead', {}, el('tr', {}, ['server', 'role', 'health', 'raft index', 'address'].map((h) => el('th', { scope: 'col' }, h)))),
        el('tbody', {}, (f.servers || []).map((s) => el('tr', {},
          el('td', { class: 'mono' }, s.id), el('td', {}, statusBadge(s.leader ? 'leader' : 'follower')),
          el('td', {}, statusBadge(s.health)), el('td', {}, s.applied_index ? String(s.applied_index) : '—'), el('td', { class: 'mono' }, s.http_addr || '—')))))),
      el('h2', {}, 'Agents'),
      scroller(el('table', { 'aria-label': 'agents' },
        el('thead', {}, el('tr', {}, ['agent', 'state', 'sessions', 'GPU', 'encoders', 'running'].map((h) => el('th', { scope: 'col' }, h)))),
        el('tbody', {}, (f.agents || []).map((a) => el('tr', {},
          el('td', { class: 'mono' }, a.name), el('td', {}, statusBadge(a.status)),
          el('td', {}, `${a.running} / ${a.slots}`),
          el('td', {}, gpuOf(a)),
          el('td', {}, el('ul', { class: 'plain' }, (a.capabilities || []).map((c) => el('li', {},
            el('span', { class: 'mono' }, `${c.codec}: ${c.plugin}${c.backend && c.backend !== c.plugin ? '/' + c.backend : ''}`),
            c.available ? el('span', { class: 'ok' }, ' ✓') : el('span', { class: 'muted' }, ` — ${c.reason || 'not available'}`))))),
          el('td', {}, el('ul', { class: 'plain' }, (a.steps || []).map((s) => el('li', {},
            el('a', { href: `/ui/tasks/${encodeURIComponent(s.task)}` }, `${s.kind}${s.part !== undefined && s.part !== null ? ' part ' + s.part : ''} of ${s.task}`),
            ` ${Math.round((s.progress || 0) * 100)} %`))))))))),
      el('h2', {}, 'Queue'),
      Object.keys(f.queue || {}).length
        ? el('dl', { class: 'facts' }, Object.entries(f.queue).flatMap(([k, n]) => [el('dt', {}, k), el('dd', {}, `${n} ready`)]))
        : el('p', { class: 'muted' }, 'Nothing is waiting for a slot.'),
      el('h2', {}, 'Throughput (media seconds per second)'),
      chart(history.slice(-120)));
  };
  await draw();
  every(2000, draw);
}

// gpuOf names an agent's GPUs, from the devices its encoders reported.
function gpuOf(a) {
  const gpus = [...new Set((a.capabilities || []).filter((c) => c.device).map((c) => c.device))];
  return gpus.length ? gpus.join('; ') : '—';
}

function chart(points) {
  const w = 600, h = 140, pad = 24;
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
  svg.setAttribute('role', 'img');
  svg.setAttribute('preserveAspectRatio', 'none');
  const max = Math.max(1, ...points.map((p) => p.value));
  const label = `throughput over the last ${points.length ? Math.round((points[points.length - 1].at - points[0].at) / 60000) : 0} min, peak ${max.toFixed(1)} media s/s`;
  svg.setAttribute('aria-label', label);
  if (points.length > 1) {
    const t0 = points[0].at, t1 = points[points.length - 1].at || t0 + 1;
    const line = document.createElementNS(svg.namespaceURI, 'polyline');
    line.setAttribute('points', points.map((p) => `${pad + ((p.at - t0) / Math.max(1, t1 - t0)) * (w - 2 * pad)},${h - pad - (p.value / max) * (h - 2 * pad)}`).join(' '));
    svg.append(line);
  }
  return el('div', { class: 'chart' }, svg, el('p', { class: 'muted' }, label));
}

route();
