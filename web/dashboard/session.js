// Who is signed in (from GET /api/dashboard/state), shared by every page.
import { api, setCsrf } from './api.js';

export const session = { user: null, csrf: null, setupRequired: false, publicSites: [], demo: false, loaded: false };

export async function loadSession() {
  const s = await api.state();
  Object.assign(session, {
    user: s.user ?? null,
    csrf: s.csrf ?? null,
    setupRequired: !!s.setup_required,
    publicSites: s.public_sites || [],
    demo: !!s.demo,
    loaded: true,
  });
  setCsrf(session.csrf);
  return session;
}

export function signedIn(user, csrf) {
  Object.assign(session, { user, csrf, setupRequired: false });
  setCsrf(csrf);
}

export function signedOut() {
  Object.assign(session, { user: null, csrf: null });
  setCsrf(null);
}

export function rememberSite(domain) {
  try { localStorage.setItem('ff:lastSite', domain); } catch { /* ignore */ }
}

export function lastSite() {
  try { return localStorage.getItem('ff:lastSite'); } catch { return null; }
}
