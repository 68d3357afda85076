// Light / dark / system theme: the choice is kept here; theme-init.js turns it (or, for
// "system", prefers-color-scheme) into data-theme="light" | "dark" on <html>.
import { h, icon } from './dom.js';
import { getPref, setPref } from './prefs.js';

const ORDER = ['system', 'light', 'dark'];
const LABEL = { system: 'System theme', light: 'Light theme', dark: 'Dark theme' };
const ICON = { system: 'monitor', light: 'sun', dark: 'moon' };

export function getTheme() {
  const t = getPref('ff:theme');
  return t === 'light' || t === 'dark' ? t : 'system';
}

export function setTheme(t) {
  setPref('ff:theme', t === 'system' ? null : t);
  if (window.ffApplyTheme) window.ffApplyTheme(t);
  else if (t !== 'system') document.documentElement.dataset.theme = t;
}

/** A button that cycles system → light → dark. */
export function themeButton() {
  const btn = h('button', { type: 'button', class: 'ff-icon-btn', dataset: { testid: 'theme' } });
  function paint() {
    const t = getTheme();
    const next = ORDER[(ORDER.indexOf(t) + 1) % ORDER.length];
    btn.replaceChildren(icon(ICON[t]));
    btn.title = `${LABEL[t]} (switch to ${LABEL[next].toLowerCase()})`;
    btn.setAttribute('aria-label', btn.title);
  }
  btn.addEventListener('click', () => {
    const t = getTheme();
    setTheme(ORDER[(ORDER.indexOf(t) + 1) % ORDER.length]);
    paint();
  });
  paint();
  return btn;
}
