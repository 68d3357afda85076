// The login and first-run setup pages.
import { api } from './api.js';
import { h } from './dom.js';
import { brand } from './header.js';
import { navigate } from './router.js';
import { lastSite, session, signedIn } from './session.js';
import { themeButton } from './theme.js';

function field(id, label, props) {
  const input = h('input', { class: 'ff-input', id, name: id, required: true, ...props });
  return { input, el: h('div', { class: 'ff-field' }, h('label', { for: `${id}`, text: label }), input) };
}

function authShell(title, lead, form) {
  const el = h('main', { class: 'ff-auth' },
    h('div', { class: 'ff-auth-top' }, brand('/'), themeButton()),
    h('div', { class: 'ff-card ff-auth-card' }, h('h1', { text: title }), lead ? h('p', { class: 'ff-muted', text: lead }) : null, form),
    h('p', { class: 'ff-auth-foot ff-muted', text: 'footfall — privacy-first, real-time analytics' }));
  return el;
}

function submitting(form, on) {
  const btn = form.querySelector('button[type=submit]');
  btn.disabled = on;
  btn.classList.toggle('is-busy', on);
}

/** Where to go after signing in: ?next=, the last site looked at, or the site list. */
function afterLogin() {
  const next = new URLSearchParams(location.search).get('next');
  if (next && next.startsWith('/') && !next.startsWith('//') && !next.startsWith('/login') && !next.startsWith('/setup')) return next;
  const last = lastSite();
  return last ? `/s/${encodeURIComponent(last)}` : '/';
}

export function loginPage() {
  document.title = 'Log in · footfall';
  const user = field('username', 'Username', { autocomplete: 'username', autocapitalize: 'none', spellcheck: 'false' });
  const pass = field('password', 'Password', { type: 'password', autocomplete: 'current-password' });
  const err = h('p', { class: 'ff-form-error', role: 'alert', dataset: { testid: 'login-error' } });
  const form = h('form', { class: 'ff-form', novalidate: false },
    user.el, pass.el, err, h('button', { type: 'submit', class: 'ff-btn ff-btn-primary ff-btn-block', text: 'Log in' }));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.textContent = '';
    submitting(form, true);
    try {
      const r = await api.login(user.input.value.trim(), pass.input.value);
      signedIn(r.user, r.csrf);
      navigate(afterLogin(), { replace: true });
    } catch (e2) {
      err.textContent = e2.status === 401 ? 'Wrong username or password.' : e2.message;
      pass.input.select();
      submitting(form, false);
    }
  });
  const el = authShell('Log in', session.publicSites.length ? null : 'Sign in to see your sites.', form);
  setTimeout(() => user.input.focus(), 0);
  return { el };
}

export function setupPage() {
  document.title = 'Set up · footfall';
  const params = new URLSearchParams(location.search);
  const token = field('token', 'Setup token', { autocomplete: 'off', spellcheck: 'false', value: params.get('token') || '' });
  const hint = h('p', { class: 'ff-field-hint', text: 'Printed in the server log as "setup token: …" when footfall starts with no users.' });
  token.el.append(hint);
  const user = field('username', 'Username', { autocomplete: 'username', autocapitalize: 'none', spellcheck: 'false' });
  const pass = field('password', 'Password', { type: 'password', autocomplete: 'new-password' });
  const pass2 = field('password2', 'Repeat password', { type: 'password', autocomplete: 'new-password' });
  const err = h('p', { class: 'ff-form-error', role: 'alert', dataset: { testid: 'setup-error' } });
  const form = h('form', { class: 'ff-form' }, token.el, user.el, pass.el, pass2.el, err,
    h('button', { type: 'submit', class: 'ff-btn ff-btn-primary ff-btn-block', text: 'Create account' }));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.textContent = '';
    if (pass.input.value !== pass2.input.value) {
      err.textContent = 'The passwords do not match.';
      pass2.input.focus();
      return;
    }
    submitting(form, true);
    try {
      const r = await api.setup(token.input.value.trim(), user.input.value.trim(), pass.input.value);
      signedIn(r.user, r.csrf);
      navigate('/', { replace: true });
    } catch (e2) {
      err.textContent = e2.message;
      submitting(form, false);
    }
  });
  const el = authShell('Welcome to footfall', 'Create the first account. You will add your first site next.', form);
  setTimeout(() => (token.input.value ? user.input : token.input).focus(), 0);
  return { el };
}
