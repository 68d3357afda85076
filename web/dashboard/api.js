// Talking to the footfall server. Every request is same-origin with cookies; every POST/DELETE
// carries the CSRF token; in share mode every read carries ?share=<token>.

let csrf = null;
let shareToken = null;

export function setCsrf(token) { csrf = token || null; }
export function setShareToken(token) { shareToken = token || null; }
export function getShareToken() { return shareToken; }

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

function url(path, params = {}, withShare = true) {
  const u = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params)) {
    for (const one of [].concat(v)) if (one != null) u.searchParams.append(k, one);
  }
  if (withShare && shareToken) u.searchParams.set('share', shareToken);
  return u.pathname + u.search;
}

async function request(method, path, { body, params, withShare = true, signal } = {}) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET') {
    headers['Content-Type'] = 'application/json';
    if (csrf) headers['X-CSRF-Token'] = csrf;
  }
  let res;
  try {
    res = await fetch(url(path, params, withShare), {
      method, headers, credentials: 'same-origin', signal,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError('The server could not be reached.', 0);
  }
  if (res.status === 204) return null;
  let data = null;
  const text = await res.text();
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!res.ok) {
    // A signed-in user whose session ended (expired, logged out elsewhere, new password):
    // the app sends them to the login page rather than showing errors everywhere.
    if (res.status === 401 && csrf && !shareToken) dispatchEvent(new CustomEvent('ff:signed-out'));
    const msg = (data && data.error) || text.trim() || `${res.status} ${res.statusText}`;
    throw new ApiError(msg, res.status);
  }
  return data;
}

const enc = encodeURIComponent;

// Stats queries made in the same turn of the event loop (a dashboard opening, a filter
// applied) go to the server as one batch: one round trip, all answered at once.
let pending = null;

function abortError() {
  return new DOMException('The query was aborted.', 'AbortError');
}

async function flush() {
  const batch = pending.filter((x) => !x.signal?.aborted);
  for (const x of pending) if (x.signal?.aborted) x.reject(abortError());
  pending = null;
  if (batch.length === 0) return;
  if (batch.length === 1) {
    const [x] = batch;
    request('POST', '/api/v2/query', { body: x.body, signal: x.signal }).then(x.resolve, x.reject);
    return;
  }
  // The server takes at most MAX_BATCH queries per batch.
  for (let i = 0; i < batch.length; i += MAX_BATCH) sendBatch(batch.slice(i, i + MAX_BATCH));
}

const MAX_BATCH = 32;

async function sendBatch(batch) {
  // Cancelled on the server too once every query in it is (a range or filter changed).
  const ctl = new AbortController();
  let waiting = batch.length;
  for (const x of batch) {
    x.signal?.addEventListener('abort', () => { if (--waiting === 0) ctl.abort(); }, { once: true });
  }
  let res;
  try {
    res = await request('POST', '/api/v2/query/batch', { body: { queries: batch.map((x) => x.body) }, signal: ctl.signal });
  } catch (e) {
    for (const x of batch) x.reject(e);
    return;
  }
  batch.forEach((x, i) => {
    const r = res?.results?.[i];
    if (x.signal?.aborted) x.reject(abortError());
    else if (r && r.status === 200) x.resolve(r.body);
    else {
      const msg = (r && r.body && r.body.error) || 'The server gave no answer for this query.';
      if (r?.status === 401 && csrf && !shareToken) dispatchEvent(new CustomEvent('ff:signed-out'));
      x.reject(new ApiError(msg, r?.status || 0));
    }
  });
}

function batchedQuery(body, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) { reject(abortError()); return; }
    if (!pending) {
      pending = [];
      setTimeout(flush, 0);
    }
    pending.push({ body, signal, resolve, reject });
  });
}

// Requests started before their answer is wanted (the site's settings, while the session
// loads), handed to the first caller that asks for the same thing.
const early = new Map();

function once(key, start) {
  const p = early.get(key);
  if (p) {
    early.delete(key);
    return p;
  }
  return start();
}

/** Starts loading a site's settings now; `api.site(domain)` will take the answer. */
export function prefetchSite(domain) {
  const p = request('GET', `/api/dashboard/site/${enc(domain)}`);
  p.catch(() => {}); // handled by whoever takes it
  early.set(`site:${domain}`, p);
}

export const api = {
  state: () => request('GET', '/api/dashboard/state', { withShare: false }),
  setup: (token, username, password) =>
    request('POST', '/api/dashboard/setup', { body: { token, username, password }, withShare: false }),
  login: (username, password) =>
    request('POST', '/api/dashboard/login', { body: { username, password }, withShare: false }),
  logout: () => request('POST', '/api/dashboard/logout', { body: {}, withShare: false }),
  sites: () => request('GET', '/api/dashboard/sites', { withShare: false }),
  addSite: (domain, timezone) =>
    request('POST', '/api/dashboard/sites', { body: { domain, timezone }, withShare: false }),
  createShare: (domain) =>
    request('POST', `/api/dashboard/sites/${enc(domain)}/share`, { body: {}, withShare: false }),
  deleteShare: (domain) =>
    request('DELETE', `/api/dashboard/sites/${enc(domain)}/share`, { withShare: false }),
  shareInfo: (token) => request('GET', `/api/dashboard/share/${enc(token)}`, { withShare: false }),
  site: (domain) => once(`site:${domain}`, () => request('GET', `/api/dashboard/site/${enc(domain)}`)),
  live: (domain, limit) => request('GET', `/api/stats/${enc(domain)}/live`, { params: { limit } }),
  titles: (domain, paths) => request('GET', `/api/stats/${enc(domain)}/titles`, { params: { path: paths } }),
  funnels: (domain) => request('GET', `/api/stats/${enc(domain)}/funnels`),
  siteGoals: (domain) => request('GET', `/api/dashboard/sites/${enc(domain)}/goals`, { withShare: false }),
  siteFunnels: (domain) => request('GET', `/api/dashboard/sites/${enc(domain)}/funnels`, { withShare: false }),
  addGoal: (domain, goal) => request('POST', `/api/dashboard/sites/${enc(domain)}/goals`, { body: goal, withShare: false }),
  deleteGoal: (domain, name) => request('DELETE', `/api/dashboard/sites/${enc(domain)}/goals/${enc(name)}`, { withShare: false }),
  addFunnel: (domain, funnel) => request('POST', `/api/dashboard/sites/${enc(domain)}/funnels`, { body: funnel, withShare: false }),
  deleteFunnel: (domain, name) => request('DELETE', `/api/dashboard/sites/${enc(domain)}/funnels/${enc(name)}`, { withShare: false }),
  segments: (domain) => request('GET', `/api/dashboard/sites/${enc(domain)}/segments`, { withShare: false }),
  addSegment: (domain, segment) => request('POST', `/api/dashboard/sites/${enc(domain)}/segments`, { body: segment, withShare: false }),
  deleteSegment: (domain, name) => request('DELETE', `/api/dashboard/sites/${enc(domain)}/segments/${enc(name)}`, { withShare: false }),
  content: (domain) => request('GET', `/api/sites/${enc(domain)}/content`),
  funnel: (body) => request('POST', '/api/v2/funnel', { body }),
  query: (body, signal) => batchedQuery(body, signal),
  streamUrl: (domain, params = {}) => url(`/api/stats/${enc(domain)}/live/stream`, params),
};
