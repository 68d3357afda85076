// Entry point: load who is signed in, then route.
import { h } from './dom.js';
import { loginPage, setupPage } from './auth.js';
import { dashboardPage, messagePage } from './dashboard.js';
import { link, navigate, route, startRouter } from './router.js';
import { loadSession, session, signedOut } from './session.js';
import { sitesPage } from './sites.js';
import { prefetchSite } from './api.js';

const go = (to) => { navigate(to, { replace: true }); return null; };

route(/^\/$/, () => {
  if (session.user) return sitesPage();
  if (session.setupRequired && !session.publicSites.length) return go('/setup');
  if (session.publicSites.length) return go(`/s/${encodeURIComponent(session.publicSites[0])}`);
  return go('/login');
});
route(/^\/login\/?$/, () => {
  if (session.user) return go('/');
  if (session.setupRequired) return go('/setup');
  return loginPage();
});
route(/^\/setup\/?$/, () => {
  if (!session.setupRequired) return go(session.user ? '/' : '/login');
  return setupPage();
});
route(/^\/s\/([^/]+)\/?$/, (domain) => dashboardPage({ domain }));
route(/^\/share\/([^/]+)\/?$/, (token) => dashboardPage({ shareToken: token }));
route(/.*/, () => messagePage('Page not found', 'There is nothing at this address.', [link('/', { class: 'ff-btn' }, h('span', { text: 'Go to the start' }))]));

async function boot() {
  const root = document.getElementById('app');
  // A site's dashboard: ask for the site's settings alongside the session, not after it.
  const m = /^\/s\/([^/]+)\/?$/.exec(location.pathname);
  if (m) {
    try { prefetchSite(decodeURIComponent(m[1])); } catch { /* a malformed address: the route says so */ }
  }
  try {
    await loadSession();
  } catch (e) {
    const retry = h('button', { type: 'button', class: 'ff-btn ff-btn-primary', text: 'Try again', onclick: () => location.reload() });
    root.replaceChildren(messagePage('footfall is not reachable', e.message, [retry]).el);
    return;
  }
  root.classList.remove('ff-boot');
  root.removeAttribute('aria-busy');
  // A session that ended under us: sign in again and come back here.
  addEventListener('ff:signed-out', () => {
    if (!session.user) return;
    signedOut();
    const here = location.pathname + location.search;
    navigate(`/login?next=${encodeURIComponent(here)}`, { replace: true });
  });
  await startRouter(root);
  document.documentElement.classList.add('is-ready');
}

boot();
