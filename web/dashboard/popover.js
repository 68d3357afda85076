// A button that opens a floating panel: closes on outside click, Escape, or close().
import { h } from './dom.js';

let openOne = null;

export function popover({ trigger, panel, align = 'left', onOpen, label }) {
  const wrap = h('div', { class: 'ff-pop' });
  trigger.setAttribute('aria-expanded', 'false');
  trigger.setAttribute('aria-haspopup', 'true');
  panel.classList.add('ff-pop-panel', `ff-pop-${align}`);
  panel.hidden = true;
  if (label) panel.setAttribute('aria-label', label);
  wrap.append(trigger, panel);

  function onDocDown(e) { if (!wrap.contains(e.target)) close(); }
  function onKey(e) {
    if (e.key === 'Escape') { e.stopPropagation(); close(); trigger.focus(); return; }
    if (e.key !== 'ArrowDown' && e.key !== 'ArrowUp') return;
    // Arrow keys move between menu items.
    const items = [...panel.querySelectorAll('.ff-menu-item')];
    if (!items.length || (e.target.closest('input, select') && e.target.type !== 'button')) return;
    e.preventDefault();
    const i = items.indexOf(document.activeElement);
    const next = e.key === 'ArrowDown' ? (i + 1) % items.length : (i <= 0 ? items.length : i) - 1;
    items[next].focus();
  }
  function open() {
    if (openOne && openOne !== api) openOne.close();
    openOne = api;
    panel.hidden = false;
    trigger.setAttribute('aria-expanded', 'true');
    document.addEventListener('pointerdown', onDocDown, true);
    wrap.addEventListener('keydown', onKey);
    onOpen?.();
    const first = panel.querySelector('[aria-current="true"]') || panel.querySelector('button, input, select, a[href]');
    first?.focus();
  }
  function close() {
    if (panel.hidden) return;
    panel.hidden = true;
    trigger.setAttribute('aria-expanded', 'false');
    document.removeEventListener('pointerdown', onDocDown, true);
    wrap.removeEventListener('keydown', onKey);
    if (openOne === api) openOne = null;
  }
  trigger.addEventListener('click', () => (panel.hidden ? open() : close()));
  const api = { el: wrap, open, close, get isOpen() { return !panel.hidden; } };
  return api;
}
