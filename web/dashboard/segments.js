// Saved segments for a signed-in user: the user's own and the shared ones, applied as a
// filter (`segment is Name`, which the server expands into the segment's filters); the
// current filters saved as a segment, personal or shared; the user's own removed.
import { api } from './api.js';
import { h, icon } from './dom.js';
import { popover } from './popover.js';

/**
 * createSegmentsControl({site, filters, onApply, onSaved})
 *   filters() → the current filters in the API's syntax, segment filters left out
 *   onApply(name) — filter the dashboard by the segment
 *   onSaved(name) — the current filters were saved as `name`
 */
export function createSegmentsControl({ site, filters, onApply, onSaved }) {
  const trigger = h('button', { type: 'button', class: 'ff-btn', dataset: { testid: 'segments' } },
    icon('filter'), h('span', { class: 'ff-hide-sm', text: 'Segments' }));
  const list = h('div', { class: 'ff-seg-list', role: 'menu', 'aria-label': 'Segments' });
  const message = h('p', { class: 'ff-form-error', role: 'alert' });
  const name = h('input', { class: 'ff-input ff-input-sm', name: 'segment-name', placeholder: 'Name', required: true, maxlength: 120 });
  const shared = h('input', { type: 'checkbox', name: 'segment-shared' });
  const form = h('form', { class: 'ff-seg-form', dataset: { testid: 'segment-form' }, onsubmit: (e) => { e.preventDefault(); save(); } },
    h('span', { class: 'ff-menu-title', text: 'Save the current filters' }), name,
    h('label', { class: 'ff-seg-shared' }, shared, h('span', { text: 'Shared with every user' })),
    h('button', { type: 'submit', class: 'ff-btn ff-btn-primary ff-btn-sm', text: 'Save segment' }));
  const panel = h('div', { class: 'ff-menu ff-seg-menu', role: 'dialog' },
    h('span', { class: 'ff-menu-title', text: 'Segments' }), list, form, message);
  const pop = popover({ trigger, panel, align: 'right', label: 'Segments', onOpen: load });

  function render(segments) {
    if (!segments.length) {
      list.replaceChildren(h('p', { class: 'ff-muted ff-seg-empty', text: 'No segments yet. Filter the dashboard, then save the filters here.' }));
      return;
    }
    list.replaceChildren(...segments.map((s) => h('div', { class: 'ff-seg-item' },
      h('button', { type: 'button', class: 'ff-menu-item', role: 'menuitem', dataset: { segment: s.name },
        onclick: () => { pop.close(); onApply(s.name); } },
      h('span', { text: s.name }), h('span', { class: 'ff-muted', text: s.shared ? (s.mine ? 'shared' : `by ${s.owner || 'admin'}`) : 'personal' })),
      s.mine ? h('button', { type: 'button', class: 'ff-chip-x', 'aria-label': `Remove segment ${s.name}`, title: 'Remove',
        onclick: () => remove(s.name) }, icon('x')) : null)));
  }

  async function load() {
    message.textContent = '';
    form.hidden = filters().length === 0;
    try {
      render((await api.segments(site)).segments);
    } catch (e) {
      message.textContent = `Couldn't load segments: ${e.message}`;
    }
  }

  async function save() {
    const n = name.value.trim();
    try {
      await api.addSegment(site, { name: n, filters: filters(), shared: shared.checked });
      form.reset();
      pop.close();
      onSaved(n);
    } catch (e) {
      message.textContent = e.message;
    }
  }

  async function remove(n) {
    try {
      await api.deleteSegment(site, n);
      await load();
    } catch (e) {
      message.textContent = e.message;
    }
  }

  return { el: pop.el };
}
