// Client-side routing with the History API. A route's view is {el, destroy(), update()?}:
// when only the query string changes on the same route, update() is called instead of a remount.

const routes = [];
let outlet = null;
let current = null; // {key, view}
let navId = 0;

export function route(pattern, handler) {
  routes.push({ pattern, handler });
}

export function navigate(to, { replace = false } = {}) {
  const here = location.pathname + location.search;
  if (to !== here) history[replace ? 'replaceState' : 'pushState'](null, '', to);
  return render(true);
}

/** Change only the query string of the current page (pushes a history entry). */
export function setQuery(params, { replace = false } = {}) {
  const qs = params.toString();
  const to = location.pathname + (qs ? `?${qs}` : '');
  if (to === location.pathname + location.search) return;
  history[replace ? 'replaceState' : 'pushState'](null, '', to);
  render(true);
}

let rendered = null; // path + query last rendered

function decode(part) {
  try {
    return decodeURIComponent(part);
  } catch {
    return null; // a malformed %-escape: no route matches
  }
}

async function render(force = false) {
  // A history step that only changes the #fragment ("skip to content") shows nothing new.
  const where = location.pathname + location.search;
  if (!force && where === rendered && current) return;
  rendered = where;
  const id = ++navId;
  const path = location.pathname;
  for (const { pattern, handler } of routes) {
    const m = path.match(pattern);
    if (!m) continue;
    const params = m.slice(1).map(decode);
    if (params.includes(null)) continue;
    const key = `${pattern}|${path}`;
    if (current && current.key === key && current.view.update) {
      current.view.update();
      return;
    }
    const view = await handler(...params);
    if (id !== navId) { view?.destroy?.(); return; } // a newer navigation won
    if (!view) return; // the handler navigated elsewhere
    current?.view.destroy?.();
    current = { key, view };
    outlet.replaceChildren(view.el);
    return;
  }
}

export function startRouter(el) {
  outlet = el;
  addEventListener('popstate', () => render());
  // Same-origin <a data-link> clicks navigate without a reload.
  document.addEventListener('click', (e) => {
    const a = e.target.closest('a[data-link]');
    if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(a.getAttribute('href'));
  });
  return render(true);
}

export function link(href, props, ...children) {
  const a = document.createElement('a');
  a.href = href;
  a.dataset.link = '';
  for (const [k, v] of Object.entries(props || {})) {
    if (k === 'class') a.className = v; else if (k === 'text') a.textContent = v; else a.setAttribute(k, v);
  }
  a.append(...children);
  return a;
}
