// Share link management for signed-in users: create, show + copy, rotate, disable.
import { api } from './api.js';
import { copyButton, h, icon } from './dom.js';
import { popover } from './popover.js';

export function createShareControl({ domain }) {
  const trigger = h('button', { type: 'button', class: 'ff-btn', dataset: { testid: 'share' } }, icon('share'), h('span', { class: 'ff-hide-sm', text: 'Share' }));
  const body = h('div', { class: 'ff-share-body' });
  const panel = h('div', { class: 'ff-menu ff-share-menu', role: 'dialog' },
    h('span', { class: 'ff-menu-title', text: 'Share link' }), body);
  const pop = popover({ trigger, panel, align: 'right', label: 'Share link', onOpen: load });
  let token = null;
  let busy = false;

  const shareUrl = () => `${location.origin}/share/${encodeURIComponent(token)}`;

  function render(error = '') {
    const err = h('p', { class: 'ff-form-error', role: 'alert', text: error });
    if (!token) {
      body.replaceChildren(
        h('p', { class: 'ff-muted', text: 'Anyone with the link can see this dashboard, read-only. No login needed.' }),
        h('button', { type: 'button', class: 'ff-btn ff-btn-primary ff-btn-sm', text: 'Create share link', dataset: { testid: 'share-create' },
          onclick: () => act(() => api.createShare(domain)) }),
        err);
      return;
    }
    const input = h('input', { class: 'ff-input ff-input-sm ff-share-url', readOnly: true, value: shareUrl(), 'aria-label': 'Share link', dataset: { testid: 'share-url' },
      onfocus: (e) => e.target.select() });
    body.replaceChildren(
      h('p', { class: 'ff-muted', text: 'Anyone with this link can see the dashboard, read-only.' }),
      h('div', { class: 'ff-share-row' }, input, copyButton(shareUrl)),
      h('div', { class: 'ff-share-actions' },
        h('button', { type: 'button', class: 'ff-btn ff-btn-sm', text: 'New link', title: 'The old link stops working',
          onclick: () => act(() => api.createShare(domain)) }),
        h('button', { type: 'button', class: 'ff-btn ff-btn-sm ff-btn-danger', text: 'Disable link', dataset: { testid: 'share-disable' },
          onclick: () => act(async () => { await api.deleteShare(domain); return { share_token: null }; }) })),
      err);
  }

  async function act(fn) {
    if (busy) return;
    busy = true;
    try {
      const r = await fn();
      token = r.share_token;
      render();
      body.querySelector('input, button')?.focus();
    } catch (e) {
      render(e.message);
    } finally {
      busy = false;
    }
  }

  async function load() {
    body.replaceChildren(h('p', { class: 'ff-muted', text: 'Loading…' }));
    try {
      const sites = await api.sites();
      token = sites.find((s) => s.domain === domain)?.share_token ?? null;
      render();
    } catch (e) {
      render(e.message);
    }
  }

  return { el: pop.el };
}
