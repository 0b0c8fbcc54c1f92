// The log explorer: reads a channel's public log, verifies each entry it shows in this browser
// (verify.js), and says plainly what was verified and against which key.
//
// URL fragment (never sent to any server):
//   #key=<64 hex>      the channel's public key, as channel.toml / barge.toml write it (pinned)
//   #channel=<url>     the channel or mirror to read (default: the server this page came from)
//   #supplier=<name>   a supplier's page;  #q=<text>  a search
//   #full=no           do not read the whole log (quicker; completeness is then only asserted)
// Parameters combine: #key=...&channel=...&supplier=acme

import * as v from './verify.js';

/** Up to this many entries the whole log is read and its root recomputed (completeness proven). */
const FULL_READ_LIMIT = 100000;
/** Entries per /v1/entries request (the channel's default max_entries_per_page). */
const PAGE = 500;
/** Search results shown (each costs one inclusion proof request). */
const MAX_RESULTS = 100;

const params = new URLSearchParams(location.hash.slice(1));
const base = (params.get('channel') || '').replace(/\/+$/, '');
const main = document.getElementById('main');

// ---------------------------------------------------------------------------------------------
// DOM helpers: every text goes in through textContent, never as HTML.

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, val] of Object.entries(attrs)) {
    if (k === 'class') e.className = val;
    else if (k.startsWith('data-')) e.setAttribute(k, val);
    else e[k] = val;
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

function mark(ok, why) {
  const m = el('span', { class: ok ? 'mark ok' : 'mark bad', title: why || '' }, ok ? 'verified' : 'NOT VERIFIED');
  // Why not, in plain sight; what was checked, on hover.
  return ok || !why ? m : el('span', {}, m, ' ', el('span', { class: 'why' }, why));
}

function link(hash, text) {
  const p = new URLSearchParams();
  for (const k of ['key', 'channel', 'full']) if (params.get(k)) p.set(k, params.get(k));
  for (const [k, val] of Object.entries(hash)) p.set(k, val);
  return el('a', { href: '#' + p.toString() }, text);
}

function code(text) {
  return el('code', {}, text);
}

function table(headers, rows) {
  return el(
    'table',
    {},
    el('thead', {}, el('tr', {}, headers.map((h) => el('th', {}, h)))),
    el('tbody', {}, rows),
  );
}

// ---------------------------------------------------------------------------------------------
// Reading the channel.

async function getData(path) {
  const r = await fetch(base + path, { cache: 'no-store', credentials: 'omit' });
  let env = null;
  try {
    env = await r.json();
  } catch {
    env = null;
  }
  if (env && env.status === 'ok') return env.data;
  const err = new Error(`${path}: ${env && env.message ? env.message : 'HTTP ' + r.status}`);
  err.status = r.status;
  throw err;
}

/** Entries 0..size, page by page (exact texts). */
async function readAllEntries(size, progress) {
  const out = [];
  let pageSize = PAGE;
  while (out.length < size) {
    const start = out.length;
    const end = Math.min(size, start + pageSize);
    let page;
    try {
      page = await getData(`/v1/entries?start=${start}&end=${end}`);
    } catch (e) {
      // A channel configured with smaller pages answers 400 (bad_range): ask for fewer.
      if (e.status === 400 && pageSize > 1) {
        pageSize = Math.max(1, Math.floor(pageSize / 4));
        continue;
      }
      throw e;
    }
    if (page.start !== start || !Array.isArray(page.entries) || page.entries.length === 0) {
      throw new Error(`/v1/entries?start=${start}: not the entries asked for`);
    }
    out.push(...page.entries.slice(0, end - start));
    progress(out.length);
  }
  return out;
}

/** A supplier's entries with proofs at `size` from /v1/suppliers/{name}, or null on 404. */
async function readSupplier(name, size) {
  const out = [];
  let start = 0;
  for (;;) {
    let page;
    try {
      page = await getData(
        `/v1/suppliers/${encodeURIComponent(name)}?size=${size}${start ? '&start=' + start : ''}`,
      );
    } catch (e) {
      if (e.status === 404) return null;
      throw e;
    }
    out.push(...page.entries);
    // No further page, or a `next` that does not move forward within the tree: done.
    if (!Number.isSafeInteger(page.next) || page.next <= start || page.next >= size) return out;
    start = page.next;
  }
}

/** Entries `{index, entry}` with their inclusion proofs at `size`, one request each. */
async function withProofs(items, size) {
  return Promise.all(
    items.map(async (it) => {
      try {
        const p = await getData(`/v1/proof/inclusion?index=${it.index}&size=${size}`);
        return { ...it, path: p.path };
      } catch {
        return { ...it, path: null };
      }
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// Verification state, built once per page load.

const state = {
  key: null, // Uint8Array
  keyPinned: false,
  cp: null, // verifyCheckpoint result
  all: null, // all entry texts, when read
  allProven: false, // the texts hash to the verified checkpoint root
};

async function loadKey() {
  const pinned = params.get('key');
  if (pinned !== null) {
    const k = v.fromHex(pinned.trim(), 32);
    if (!k || !v.isValidPublicKey(k)) throw new Error('the #key= in the URL is not a valid channel key (64 lowercase hex)');
    state.key = k;
    state.keyPinned = true;
    return;
  }
  const stats = await getData('/v1/stats');
  const k = v.fromHex(stats.channel_key, 32);
  if (!k || !v.isValidPublicKey(k)) throw new Error('/v1/stats gave no valid channel key');
  state.key = k;
}

function keyBox() {
  const hex = v.toHex(state.key);
  if (state.keyPinned) {
    return el('p', { class: 'key pinned', 'data-key-source': 'url' }, 'Channel key ', code(hex), ' pinned from the URL.');
  }
  return el(
    'div',
    { class: 'key unpinned', 'data-key-source': 'server' },
    el('strong', {}, 'WARNING: the channel key came from the server being checked (/v1/stats). '),
    'Every mark below then proves only that the log is consistent with itself, not that it is the channel you meant. ',
    'Pin the key: add ',
    code('#key=' + hex),
    ' to the URL, after checking it against the key in your barge.toml or channel.toml.',
  );
}

function checkpointBox() {
  const { ok, checkpoint: c, problem } = state.cp;
  return el(
    'section',
    { class: 'checkpoint', 'data-verified': ok ? 'yes' : 'no' },
    el('h2', {}, 'Checkpoint ', mark(ok, problem)),
    c
      ? el(
          'dl',
          {},
          el('dt', {}, 'origin'),
          el('dd', {}, c.origin),
          el('dt', {}, 'size'),
          el('dd', { class: 'size' }, String(c.size)),
          el('dt', {}, 'root'),
          el('dd', {}, code(v.toHex(c.root))),
          el('dt', {}, 'time'),
          el('dd', {}, Number.isSafeInteger(c.time) ? new Date(c.time * 1000).toISOString() : '?'),
        )
      : null,
    ok ? null : el('p', { class: 'problem' }, 'The checkpoint does not verify: ' + problem + '. Nothing below can be verified against it.'),
  );
}

function completenessLine() {
  if (state.all === null) {
    return el('p', { class: 'complete asserted', 'data-complete': 'asserted' }, `complete: asserted by the channel (the whole log was not read: more than ${FULL_READ_LIMIT} entries, or #full=no)`);
  }
  if (state.allProven) {
    return el('p', { class: 'complete proven', 'data-complete': 'proven' }, `complete: proven by recomputing the root from all ${state.all.length} entries`);
  }
  return el('p', { class: 'complete bad', 'data-complete': 'no' }, `NOT VERIFIED: the ${state.all.length} entries the channel served do not hash to the checkpoint's root`);
}

// ---------------------------------------------------------------------------------------------
// Views.

/** Parsed bodies of the whole log (only when read), with their indices. */
function allBodies() {
  const out = [];
  (state.all || []).forEach((text, index) => {
    const e = v.parseEntry(text);
    if (e) out.push({ index, text, body: e.body });
  });
  return out;
}

function homeView() {
  const section = el('section', {}, el('h2', {}, 'Suppliers'), completenessLine());
  if (state.all === null) {
    section.append(el('p', {}, 'The whole log was not read, so suppliers are not listed: search for a supplier by its exact name.'));
    return section;
  }
  const suppliers = new Map();
  for (const { index, body } of allBodies()) {
    const s = suppliers.get(body.supplier) || { first: index, keys: 0, releases: 0 };
    if (['master_key', 'signing_key'].includes(body.event.type)) s.keys++;
    if (body.event.type === 'release') s.releases++;
    suppliers.set(body.supplier, s);
  }
  const rows = [...suppliers.entries()]
    .sort((a, b) => a[0].localeCompare(b[0]))
    .map(([name, s]) =>
      el('tr', { class: 'supplier-row', 'data-supplier': name }, el('td', {}, link({ supplier: name }, name)), el('td', {}, s.keys), el('td', {}, s.releases), el('td', {}, s.first)),
    );
  section.append(table(['supplier', 'keys logged', 'releases logged', 'first entry'], rows));
  return section;
}

/** One row per checked entry: its index, what it is, the mark. */
function verified(item, supplier) {
  const r = v.verifyLoggedEntry(item.entry, item.index, item.path, state.cp.checkpoint, state.cp.ok);
  // On a supplier's page, an entry of another supplier is not one of its entries, however well
  // signed and logged.
  r.otherSupplier = supplier !== undefined && r.entry !== null && r.entry.body.supplier !== supplier;
  if (r.otherSupplier) r.ok = false;
  return r;
}

function why(r) {
  if (!state.cp.ok) return 'the checkpoint does not verify';
  if (!r.entry) return 'not an entry (framing)';
  if (r.otherSupplier) return 'the entry is another supplier\u2019s';
  if (!r.signature) return 'the entry signature does not verify under its signer';
  if (!r.inclusion) return 'the inclusion proof does not lead to the checkpoint root';
  return 'signature, leaf hash and inclusion proof checked against the checkpoint';
}

function entryAttrs(item, r) {
  return { class: 'entry', 'data-index': String(item.index), 'data-verified': r.ok ? 'yes' : 'no' };
}

function short(hex) {
  return el('code', { title: hex }, hex.slice(0, 16) + '\u2026');
}

async function supplierView(name) {
  const size = state.cp.checkpoint.size;
  let items = await readSupplier(name, size);
  let source = `/v1/suppliers/${name}`;
  const fromLog = allBodies().filter((b) => b.body.supplier === name);
  if (items === null && fromLog.length > 0) {
    // No supplier endpoint on this channel (older server): the same entries from the log read
    // above, each with its own inclusion proof.
    items = await withProofs(fromLog.map((b) => ({ index: b.index, entry: b.text })), size);
    source = '/v1/entries and /v1/proof/inclusion';
  }
  const section = el('section', { class: 'supplier', 'data-supplier': name }, el('h2', {}, 'Supplier ', code(name)));
  if (items === null || items.length === 0) {
    section.append(el('p', { class: 'problem' }, `The channel knows no supplier ${name} at size ${size}.`));
    return section;
  }
  // Completeness: only when the whole log was read and hashes to the root is it proven that the
  // channel left none of this supplier's entries out.
  if (state.all !== null && state.allProven) {
    const want = fromLog.map((b) => b.index).join(',');
    const got = items.map((i) => i.index).join(',');
    section.append(
      want === got
        ? el('p', { class: 'complete proven', 'data-complete': 'proven' }, `complete: proven by recomputing the root from all ${state.all.length} entries (the log holds exactly these ${items.length} entries of ${name})`)
        : el('p', { class: 'complete bad', 'data-complete': 'no' }, `NOT COMPLETE: the log holds ${name}'s entries at ${want}, the channel listed ${got}`),
    );
  } else if (state.all !== null) {
    section.append(completenessLine());
  } else {
    section.append(el('p', { class: 'complete asserted', 'data-complete': 'asserted' }, `complete: asserted by the channel (not proven: the whole log was not read, it has more than ${FULL_READ_LIMIT} entries or #full=no)`));
  }
  section.append(el('p', { class: 'source' }, `Entries from ${source}, proofs at size ${size}.`));

  const checked = items.map((it) => ({ it, r: verified(it, name) }));
  const body = (c) => (c.r.entry ? c.r.entry.body : null);
  const revoked = new Map();
  const roles = new Map();
  for (const c of checked) {
    const b = body(c);
    if (!b) continue;
    if (b.event.type === 'key_revocation') revoked.set(b.event.public_key, c.it.index);
    if (b.event.type === 'master_key') roles.set(b.event.public_key, 'master');
    if (b.event.type === 'signing_key') roles.set(b.event.public_key, 'signing');
  }
  const signer = (b) => el('span', {}, short(b.signer), ' (' + (roles.get(b.signer) || 'unknown key') + ')');

  const td = (...children) => el('td', {}, ...children);
  // A row of one entry: its index, the cells, its mark.
  const row = (c, attrs, ...cells) =>
    el('tr', { ...entryAttrs(c.it, c.r), ...attrs }, td(c.it.index), cells, td(mark(c.r.ok, why(c.r))));
  const sameRelease = (b, e) => b !== null && b.event.package === e.package && b.event.version === e.version;
  const keyRows = [];
  const releaseRows = [];
  const otherRows = [];
  for (const c of checked) {
    const b = body(c);
    if (!b) {
      otherRows.push(row(c, {}, td('unreadable entry'), td('')));
      continue;
    }
    const e = b.event;
    if (e.type === 'master_key' || e.type === 'signing_key') {
      const status = revoked.has(e.public_key) ? `revoked (entry ${revoked.get(e.public_key)})` : 'current';
      keyRows.push(
        row(
          c,
          { 'data-key': e.public_key },
          td(e.type === 'master_key' ? 'master' : 'signing'),
          td(code(e.public_key)),
          el('td', { class: 'status' }, status),
          td(b.signer === e.public_key ? 'itself' : signer(b)),
        ),
      );
    } else if (e.type === 'release') {
      const revocations = checked
        .filter((o) => sameRelease(body(o), e) && body(o).event.type === 'release_revocation')
        .map((o) => `revoked at ${o.it.index}: ${body(o).event.reason}`);
      // Attestations are other suppliers' entries: found in the whole log, so they are verified
      // only when that log hashed to the checkpoint root (and their own signature holds).
      const attestations = allBodies()
        .filter((o) => o.body.event.type === 'attestation' && o.body.event.subject === name && sameRelease(o.body, e))
        .map((o) => {
          const ok = state.allProven && v.entrySignatureIsValid(v.parseEntry(o.text));
          const digest = o.body.event.digest === e.digest ? '' : ', DIFFERENT DIGEST';
          return `${o.body.supplier} (${o.body.event.claim}, entry ${o.index}${digest}${ok ? '' : ', NOT VERIFIED'})`;
        });
      releaseRows.push(
        row(
          c,
          { 'data-release': `${e.package} ${e.version}` },
          td(e.package),
          el('td', { class: 'version' }, e.version),
          td(e.size),
          td(short(e.digest)),
          td(short(e.commit)),
          td(short(e.signature)),
          td(signer(b)),
          td(revocations.join('; ') || '\u2014'),
          td(attestations.join('; ') || '\u2014'),
        ),
      );
    } else {
      let what = e.type;
      if (e.type === 'key_revocation') what = `revokes key ${e.public_key.slice(0, 16)}\u2026: ${e.reason}`;
      if (e.type === 'release_revocation') what = `revokes ${e.package} ${e.version}: ${e.reason}`;
      if (e.type === 'attestation') what = `attests ${e.subject}/${e.package} ${e.version}: ${e.claim}`;
      if (e.type === 'rollout') what = `rollout of ${e.package} ${e.version}: ${e.paused ? 'paused' : e.waves.map((w) => `${w.percent}% from ${w.not_before}`).join(', ')}`;
      otherRows.push(row(c, {}, td(what), td(signer(b))));
    }
  }
  section.append(
    el('h3', {}, 'Keys'),
    table(['entry', 'role', 'public key', 'status', 'signed by', ''], keyRows),
    el('h3', {}, 'Releases'),
    table(
      ['entry', 'package', 'version', 'size', 'digest', 'commit', 'archive signature', 'signed by', 'revocations', 'attestations', ''],
      releaseRows,
    ),
  );
  if (otherRows.length > 0) {
    section.append(el('h3', {}, 'Other events'), table(['entry', 'event', 'signed by', ''], otherRows));
  }
  return section;
}

async function searchView(q) {
  const needle = q.trim().toLowerCase();
  const section = el('section', { class: 'search' }, el('h2', {}, 'Search ', code(q)));
  if (state.all === null) {
    section.append(el('p', {}, 'The whole log was not read, so it cannot be searched here; open the supplier of that name: ', link({ supplier: q }, q)));
    return section;
  }
  const hex = /^[0-9a-f]+$/.test(needle);
  const hits = allBodies().filter(({ body: b }) => {
    const e = b.event;
    return (
      b.supplier.toLowerCase().includes(needle) ||
      (e.package && e.package.toLowerCase().includes(needle)) ||
      (hex && e.digest && e.digest.startsWith(needle))
    );
  });
  section.append(el('p', {}, `${hits.length} entries match` + (hits.length > MAX_RESULTS ? `; the first ${MAX_RESULTS} are shown` : '') + '.'));
  const items = await withProofs(hits.slice(0, MAX_RESULTS).map((h) => ({ index: h.index, entry: h.text })), state.cp.checkpoint.size);
  const rows = items.map((it) => {
    const r = verified(it);
    const b = r.entry ? r.entry.body : null;
    const e = b ? b.event : {};
    const what = e.type === 'release' ? `release ${e.package} ${e.version} (digest ${e.digest.slice(0, 16)}\u2026)` : e.type || 'unreadable';
    return el('tr', entryAttrs(it, r), el('td', {}, it.index), el('td', {}, b ? link({ supplier: b.supplier }, b.supplier) : ''), el('td', {}, what), el('td', {}, mark(r.ok, why(r))));
  });
  section.append(table(['entry', 'supplier', 'event', ''], rows));
  return section;
}

// ---------------------------------------------------------------------------------------------

function searchForm() {
  const input = el('input', { type: 'search', name: 'q', placeholder: 'supplier, package or digest (hex prefix)', value: params.get('q') || '' });
  const form = el('form', { class: 'find' }, input, el('button', { type: 'submit' }, 'Search'), ' ', link({}, 'all suppliers'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams();
    for (const k of ['key', 'channel', 'full']) if (params.get(k)) p.set(k, params.get(k));
    p.set('q', input.value);
    location.hash = p.toString();
  });
  return form;
}

async function run() {
  const status = el('p', { class: 'progress' }, 'Reading the checkpoint\u2026');
  main.replaceChildren(status);
  await loadKey();
  const signed = await getData('/v1/checkpoint');
  state.cp = v.verifyCheckpoint(signed, state.key);
  main.replaceChildren(el('p', { class: 'channel' }, 'Channel: ', code(base || location.origin)), keyBox(), checkpointBox(), searchForm(), status);
  if (!state.cp.checkpoint) throw new Error('the channel gave no readable checkpoint');
  const size = state.cp.checkpoint.size;
  if (size <= FULL_READ_LIMIT && params.get('full') !== 'no') {
    state.all = await readAllEntries(size, (n) => {
      status.textContent = `Reading the log: ${n} of ${size} entries\u2026`;
    });
    status.textContent = 'Recomputing the root\u2026';
    const root = v.merkleRoot(state.all.map((t) => v.hashLeaf(v.utf8(t))));
    state.allProven = state.cp.ok && v.toHex(root) === v.toHex(state.cp.checkpoint.root);
  }
  status.textContent = 'Verifying\u2026';
  let view;
  if (params.get('supplier')) view = await supplierView(params.get('supplier'));
  else if (params.get('q')) view = await searchView(params.get('q'));
  else view = homeView();
  status.replaceWith(view);
}

window.addEventListener('hashchange', () => location.reload());
run()
  .catch((e) => {
    main.append(el('p', { class: 'problem fatal' }, 'Could not finish: ' + e.message));
  })
  .finally(() => {
    const marks = document.querySelectorAll('.entry');
    const bad = document.querySelectorAll('.entry[data-verified="no"]');
    let summary = '';
    if (bad.length > 0) summary = `${marks.length} entries shown, ${bad.length} of them NOT VERIFIED`;
    else if (marks.length > 0) summary = `${marks.length} entries shown, all verified`;
    if (summary && !state.keyPinned) summary += ', but against a channel key the server itself gave (see the warning)';
    document.getElementById('summary').textContent = summary;
    document.body.setAttribute('data-done', 'yes');
  });
