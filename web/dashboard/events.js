// Custom events: events ranked by visitors; choosing one shows a breakdown of one of its
// properties (the key is picked from keys seen on that event, or typed).
import { h, icon } from './dom.js';
import { createRowList } from './rows.js';
import { formatNumber } from './format.js';
import { getJSON, setJSON } from './prefs.js';

const KNOWN_KEYS = ['plan', 'file', 'url', 'path', 'method', 'variant', 'source'];

/**
 * createEventsPanel({site, run})
 *   run({dimension, metrics, filters, limit}) → Promise<{results, meta}> with the dashboard's range + filters
 */
export function createEventsPanel({ site, run }) {
  const storeKey = `ff:propkeys:${site}`;
  const remembered = () => getJSON(storeKey, []);
  let event = null; // the event whose properties are shown
  let propKey = '';
  let gen = 0;

  const columns = [{ label: 'Visitors', format: formatNumber }, { label: 'Events', format: formatNumber }];
  const eventsList = createRowList({ columns, keyLabel: 'Event', onPick: (r) => openEvent(r.key), pickLabel: () => 'Show properties' });
  const propsList = createRowList({ columns, keyLabel: 'Value' });

  const keyInput = h('input', { class: 'ff-input ff-input-sm', id: 'ff-propkey', list: 'ff-propkeys', autocomplete: 'off',
    placeholder: 'property', spellcheck: 'false' });
  const keyList = h('datalist', { id: 'ff-propkeys' });
  const keyForm = h('form', { class: 'ff-propkey', onsubmit: (e) => { e.preventDefault(); setKey(keyInput.value.trim()); } },
    h('label', { for: 'ff-propkey', text: 'Property' }), keyInput, keyList,
    h('button', { type: 'submit', class: 'ff-btn ff-btn-sm', text: 'Show' }));
  keyInput.addEventListener('change', () => setKey(keyInput.value.trim()));
  const eventTitle = h('strong', { class: 'ff-events-name' });
  const back = h('button', { type: 'button', class: 'ff-btn ff-btn-ghost ff-btn-sm', onclick: () => closeEvent() }, icon('back'), 'All events');
  const propsView = h('div', { class: 'ff-events-props', hidden: true },
    h('div', { class: 'ff-events-bar' }, back, eventTitle), keyForm, propsList.el);
  const listView = h('div', {}, eventsList.el);

  const el = h('section', { class: 'ff-card ff-panel', dataset: { panel: 'events' }, 'aria-labelledby': 'ff-h-events' },
    h('header', { class: 'ff-panel-head' }, h('h2', { id: 'ff-h-events', text: 'Custom events' })),
    h('div', { class: 'ff-panel-body' }, listView, propsView));

  async function loadEvents(silent) {
    const my = ++gen;
    if (!silent) eventsList.loading();
    try {
      const res = await run({ dimension: 'event:name', metrics: ['visitors', 'events'],
        filters: [['is_not', 'event:name', ['pageview', 'engagement', 'heartbeat']]], limit: 10 });
      if (my !== gen) return;
      eventsList.setRows(res.results.map((r) => ({ key: r.dimensions[0], label: r.dimensions[0], values: r.metrics })),
        { emptyText: 'No custom events in this period. Send them with footfall("Signup", {props: {plan: "pro"}}).' });
    } catch (e) {
      if (my === gen) eventsList.error(`Couldn't load events: ${e.message}`);
    }
  }

  async function loadProps(silent) {
    const my = ++gen;
    if (!propKey) { propsList.setRows([], { emptyText: 'Type a property key to break this event down.' }); return; }
    if (!silent) propsList.loading();
    try {
      const res = await run({ dimension: `event:props:${propKey}`, metrics: ['visitors', 'events'],
        filters: [['is', 'event:name', [event]]], limit: 10 });
      if (my !== gen) return;
      propsList.setKeyLabel(propKey);
      propsList.setRows(res.results.map((r) => ({ key: r.dimensions[0], label: r.dimensions[0] || '(none)', values: r.metrics })),
        { emptyText: `No "${propKey}" property on ${event} in this period.` });
    } catch (e) {
      if (my === gen) propsList.error(`Couldn't load properties: ${e.message}`);
    }
  }

  let probeGen = 0;

  async function openEvent(name) {
    event = name;
    eventTitle.textContent = name;
    listView.hidden = true;
    propsView.hidden = false;
    back.focus();
    propsList.loading();
    // Which keys does this event carry? Probe the known ones (and ones typed before).
    const candidates = [...new Set([...remembered(), ...KNOWN_KEYS])];
    // Its own counter: a live refresh meanwhile (which bumps `gen`) must not cancel the probe.
    const my = ++probeGen;
    const found = await Promise.all(candidates.map((k) => run({ dimension: `event:props:${k}`, metrics: ['events'],
      filters: [['is', 'event:name', [name]]], limit: 1 }).then((r) => (r.results.some((x) => x.dimensions[0] !== '') ? k : null), () => null)));
    if (my !== probeGen || event !== name) return;
    const keys = found.filter(Boolean);
    keyList.replaceChildren(...candidates.map((k) => h('option', { value: k })));
    propKey = keys[0] || '';
    keyInput.value = propKey;
    loadProps(false);
  }

  function setKey(k) {
    if (!k || k === propKey) return;
    propKey = k;
    const keys = [k, ...remembered().filter((x) => x !== k)].slice(0, 10);
    setJSON(storeKey, keys);
    loadProps(false);
  }

  function closeEvent() {
    event = null;
    propsView.hidden = true;
    listView.hidden = false;
    loadEvents(false);
  }

  return {
    el,
    // While an event's keys are being probed, the probe loads its properties itself.
    refresh(silent) { return event ? (propKey ? loadProps(silent) : undefined) : loadEvents(silent); },
  };
}
