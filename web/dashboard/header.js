// Pieces of the top bar: brand, site switcher, connection status, account menu.
import { api } from './api.js';
import { h, icon } from './dom.js';
import { popover } from './popover.js';
import { link, navigate } from './router.js';
import { session, signedOut } from './session.js';

export function brand(href = '/') {
  return link(href, { class: 'ff-brand', 'aria-label': 'footfall home' },
    h('span', { class: 'ff-brand-mark', 'aria-hidden': 'true' }, h('span'), h('span')),
    h('span', { class: 'ff-brand-name', text: 'footfall' }));
}

export function siteMark(domain) {
  return h('span', { class: 'ff-site-mark', 'aria-hidden': 'true', text: (domain[0] || '?').toUpperCase() });
}

/** The current site; signed-in users get a menu of their sites. */
export function siteSwitcher(domain, { canSwitch }) {
  const name = h('span', { class: 'ff-site-name', text: domain });
  if (!canSwitch) return h('div', { class: 'ff-site' }, siteMark(domain), name);
  const trigger = h('button', { type: 'button', class: 'ff-site ff-site-btn', dataset: { testid: 'site-switcher' } },
    siteMark(domain), name, icon('chevron', 'ff-icon ff-chev'));
  const list = h('div', { class: 'ff-site-list' });
  const panel = h('div', { class: 'ff-menu ff-site-menu' }, list, h('hr'),
    link('/', { class: 'ff-menu-item' }, icon('plus'), h('span', { text: 'All sites / add a site' })));
  const pop = popover({ trigger, panel, label: 'Sites', onOpen: async () => {
    try {
      const sites = await api.sites();
      list.replaceChildren(...sites.map((s) => link(`/s/${encodeURIComponent(s.domain)}`, {
        class: 'ff-menu-item', 'aria-current': String(s.domain === domain) }, siteMark(s.domain), h('span', { text: s.domain }))));
    } catch (e) {
      list.replaceChildren(h('p', { class: 'ff-form-error', text: e.message }));
    }
  } });
  panel.addEventListener('click', (e) => { if (e.target.closest('a')) pop.close(); });
  return pop.el;
}

const STATUS_TEXT = { connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…', offline: 'Offline' };

export function statusPill() {
  const text = h('span', { class: 'ff-status-text' });
  const el = h('span', { class: 'ff-status', role: 'status', dataset: { status: 'connecting', testid: 'status' } },
    h('span', { class: 'ff-status-dot', 'aria-hidden': 'true' }), text);
  return {
    el,
    set(s) {
      el.dataset.status = s;
      text.textContent = STATUS_TEXT[s] || s;
      el.title = s === 'live' ? 'Receiving live updates' : s === 'offline' ? 'Not connected; retrying' : STATUS_TEXT[s];
    },
  };
}

export async function logout() {
  try { await api.logout(); } catch { /* the cookie is gone or the server is down: either way */ }
  signedOut();
  navigate('/login');
}

/** Account menu for signed-in users, or a "Log in" link. */
export function accountControl() {
  if (!session.user) {
    return link(`/login?next=${encodeURIComponent(location.pathname)}`, { class: 'ff-btn', dataset: { testid: 'login-link' } }, h('span', { text: 'Log in' }));
  }
  const trigger = h('button', { type: 'button', class: 'ff-avatar', title: session.user, 'aria-label': `Account: ${session.user}`, dataset: { testid: 'account' } },
    h('span', { text: session.user.slice(0, 1).toUpperCase() }));
  const panel = h('div', { class: 'ff-menu ff-account-menu' },
    h('span', { class: 'ff-menu-title', text: `Signed in as ${session.user}` }),
    link('/', { class: 'ff-menu-item' }, icon('globe'), h('span', { text: 'All sites' })),
    h('button', { type: 'button', class: 'ff-menu-item', dataset: { testid: 'logout' }, onclick: () => { pop.close(); logout(); } },
      icon('logout'), h('span', { text: 'Log out' })));
  const pop = popover({ trigger, panel, align: 'right', label: 'Account' });
  panel.addEventListener('click', (e) => { if (e.target.closest('a')) pop.close(); });
  return pop.el;
}
