// Goal and funnel settings for a signed-in user: the site's goals and saved funnels, each
// removable, and forms to add them. Changes go through the dashboard's routes (session +
// CSRF); the server validates and says what is wrong, which is shown as is.
import { h, icon } from './dom.js';
import { api } from './api.js';

/**
 * createGoalSettings({site, onChange})
 *   onChange() — goals or funnels changed: the panels reload
 */
export function createGoalSettings({ site, onChange }) {
  const goalList = h('ul', { class: 'ff-settings-list', dataset: { testid: 'goal-list' } });
  const funnelList = h('ul', { class: 'ff-settings-list', dataset: { testid: 'funnel-list' } });
  const message = h('p', { class: 'ff-settings-msg', role: 'status' });

  const gName = h('input', { class: 'ff-input ff-input-sm', name: 'goal-name', placeholder: 'Name', required: true, maxlength: 120 });
  const gKind = h('select', { class: 'ff-select ff-select-sm', name: 'goal-kind' },
    h('option', { value: 'page', text: 'Page visit' }), h('option', { value: 'event', text: 'Custom event' }),
    h('option', { value: 'scroll', text: 'Scroll depth' }));
  const gTarget = h('input', { class: 'ff-input ff-input-sm', name: 'goal-target', placeholder: '/pricing or /blog/**', required: true });
  const gDepth = h('input', { class: 'ff-input ff-input-sm', name: 'goal-depth', type: 'number', min: 1, max: 100, value: 75, hidden: true });
  // A custom event's goal may report its events' revenue, in this currency.
  const gCurrency = h('input', { class: 'ff-input ff-input-sm', name: 'goal-currency', placeholder: 'Currency (revenue), e.g. EUR',
    maxlength: 3, pattern: '[A-Za-z]{3}', hidden: true, title: 'Optional: a three-letter currency code makes this a revenue goal' });
  gKind.addEventListener('change', () => {
    gDepth.hidden = gKind.value !== 'scroll';
    gCurrency.hidden = gKind.value !== 'event';
    gTarget.placeholder = gKind.value === 'event' ? 'Event name, e.g. Signup' : '/pricing or /blog/**';
  });
  const goalForm = h('form', { class: 'ff-settings-form', dataset: { testid: 'goal-form' }, onsubmit: (e) => { e.preventDefault(); addGoal(); } },
    gName, gKind, gTarget, gDepth, gCurrency, h('button', { type: 'submit', class: 'ff-btn ff-btn-sm', text: 'Add goal' }));

  const fName = h('input', { class: 'ff-input ff-input-sm', name: 'funnel-name', placeholder: 'Name', required: true, maxlength: 120 });
  const fSteps = h('textarea', { class: 'ff-input', name: 'funnel-steps', rows: 3, required: true,
    placeholder: 'Goal names in order, one per line (2 to 8)' });
  const funnelForm = h('form', { class: 'ff-settings-form', dataset: { testid: 'funnel-form' }, onsubmit: (e) => { e.preventDefault(); addFunnel(); } },
    fName, fSteps, h('button', { type: 'submit', class: 'ff-btn ff-btn-sm', text: 'Save funnel' }));

  const el = h('div', { class: 'ff-settings', hidden: true },
    h('h3', { text: 'Goals' }), goalList, goalForm,
    h('h3', { text: 'Funnels' }), funnelList, funnelForm, message);

  const say = (text, isError = false) => { message.textContent = text; message.classList.toggle('is-error', isError); };

  function item(label, detail, onRemove) {
    return h('li', {}, h('span', { class: 'ff-settings-name', text: label }), h('span', { class: 'ff-muted', text: detail }),
      h('button', { type: 'button', class: 'ff-chip-x', 'aria-label': `Remove ${label}`, title: 'Remove', onclick: onRemove }, icon('x')));
  }

  function describe(g) {
    if (g.event) return `event ${g.event}${g.props ? ` with ${Object.entries(g.props).map(([k, v]) => `${k}=${v}`).join(', ')}` : ''}${g.currency ? ` · revenue in ${g.currency}` : ''}`;
    if (g.scroll_depth) return `${g.page} scrolled ${g.scroll_depth}%`;
    return `visit ${g.page}`;
  }

  async function load() {
    try {
      const [goals, funnels] = await Promise.all([api.siteGoals(site), api.siteFunnels(site)]);
      goalList.replaceChildren(...goals.goals.map((g) => item(g.name, describe(g), () => change(() => api.deleteGoal(site, g.name), `Removed goal ${g.name}.`))));
      funnelList.replaceChildren(...funnels.funnels.map((f) => item(f.name, f.steps.join(' → '), () => change(() => api.deleteFunnel(site, f.name), `Removed funnel ${f.name}.`))));
    } catch (e) {
      say(`Couldn't load the settings: ${e.message}`, true);
    }
  }

  async function change(call, done) {
    try {
      await call();
      say(done);
      await load();
      onChange();
      return true;
    } catch (e) {
      say(e.message, true);
      return false;
    }
  }

  async function addGoal() {
    const name = gName.value.trim();
    const target = gTarget.value.trim();
    const currency = gCurrency.value.trim();
    const goal = gKind.value === 'event' ? { name, event: target, ...(currency ? { currency } : {}) }
      : gKind.value === 'scroll' ? { name, page: target, scroll_depth: Number(gDepth.value) } : { name, page: target };
    if (await change(() => api.addGoal(site, goal), `Saved goal ${name}.`)) goalForm.reset();
  }

  async function addFunnel() {
    const name = fName.value.trim();
    const steps = fSteps.value.split('\n').map((s) => s.trim()).filter(Boolean);
    if (await change(() => api.addFunnel(site, { name, steps }), `Saved funnel ${name}.`)) funnelForm.reset();
  }

  return {
    el,
    toggle() {
      el.hidden = !el.hidden;
      if (!el.hidden) { say(''); load(); }
      return !el.hidden;
    },
  };
}
