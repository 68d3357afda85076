// "Not yet visited": the site's published catalogue pages (set with PUT
// /api/sites/{site}/content or `footfall content import`) that have no page views in the
// dashboard's range and filters. Hidden for a site without a catalogue.
import { h } from './dom.js';

const SHOWN = 50;

/**
 * createUnvisitedPanel({catalogue, run})
 *   catalogue() → Promise<[{path, title?, type, published}]> (cached by the caller)
 *   run({dimension, metrics, limit}) → Promise<{results}> with the dashboard's range + filters
 */
export function createUnvisitedPanel({ catalogue, run }) {
  let gen = 0;
  const summary = h('p', { class: 'ff-muted ff-unvisited-summary' });
  const list = h('ul', { class: 'ff-unvisited', dataset: { testid: 'unvisited' } });
  // A grid row of its own, hidden whole while there is nothing to show.
  const el = h('div', { class: 'ff-grid', hidden: true },
    h('section', { class: 'ff-card ff-panel', dataset: { panel: 'unvisited' }, 'aria-labelledby': 'ff-h-unvisited' },
      h('header', { class: 'ff-panel-head' }, h('h2', { id: 'ff-h-unvisited', text: 'Not yet visited' })),
      h('div', { class: 'ff-panel-body' }, summary, list)));

  async function refresh() {
    const my = ++gen;
    try {
      const published = (await catalogue()).filter((e) => e.published);
      if (!published.length) { el.hidden = true; return; }
      const res = await run({ dimension: 'event:page', metrics: ['pageviews'], limit: 10000 });
      if (my !== gen) return;
      const viewed = new Set(res.results.filter((r) => r.metrics[0] > 0).map((r) => r.dimensions[0]));
      const unseen = published.filter((e) => !viewed.has(e.path));
      el.hidden = false;
      summary.textContent = unseen.length
        ? `${unseen.length} of ${published.length} published pages have no views in this period.`
        : `Every one of the ${published.length} published pages has views in this period.`;
      list.replaceChildren(...unseen.slice(0, SHOWN).map((e) => h('li', {},
        h('span', { class: 'ff-tag', text: e.type }),
        h('span', { class: 'ff-unvisited-title', text: e.title || e.path }),
        e.title ? h('span', { class: 'ff-muted', text: e.path }) : null)));
    } catch {
      // The panel is an aside: it stays as it was when its data can't be had.
    }
  }

  return { el, refresh };
}
