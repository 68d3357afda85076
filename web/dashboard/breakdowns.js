// Which breakdown panels the dashboard has, and how a result row is labelled.
import { countryName, flag, supportsFlags } from './format.js';

const DEVICE_ICONS = { desktop: '🖥️', mobile: '📱', tablet: '📲', laptop: '💻' };

/** API row → list row for a dimension. */
export function rowFor(dimension, r) {
  const value = r.dimensions[0] ?? '';
  const row = { key: value, value, values: [r.metrics[0]], pct: r.metrics[1] };
  switch (dimension) {
    case 'visit:country':
      if (supportsFlags()) row.icon = flag(value);
      else if (value) row.badge = value.toUpperCase();
      row.label = value ? countryName(value) : 'Unknown';
      break;
    case 'visit:region': {
      // ISO 3166-2 codes ("US-CA"): the country's flag, the code, the country's name.
      const cc = /^[A-Za-z]{2}-/.test(value) ? value.slice(0, 2).toUpperCase() : '';
      if (cc && supportsFlags()) row.icon = flag(cc);
      else if (cc) row.badge = cc;
      row.label = value || 'Unknown';
      if (cc) row.sub = countryName(cc);
      break;
    }
    case 'visit:device':
      row.icon = DEVICE_ICONS[value.toLowerCase()] || '';
      row.label = value || 'Unknown';
      break;
    case 'visit:source':
      row.label = value || 'Direct / None';
      break;
    default:
      row.label = value === '' ? '(none)' : value;
  }
  return row;
}

/** Panel definitions; `titles` resolves page titles for a list of paths. */
export function panelDefs({ titles }) {
  return [
    {
      id: 'pages', title: 'Pages', tabs: [
        { id: 'top', label: 'Top pages', keyLabel: 'Page', dimension: 'event:page', subs: titles },
        { id: 'entry', label: 'Entry', keyLabel: 'Entry page', dimension: 'visit:entry_page', subs: titles },
        { id: 'exit', label: 'Exit', keyLabel: 'Exit page', dimension: 'visit:exit_page', subs: titles },
      ],
    },
    {
      id: 'sources', title: 'Sources', tabs: [
        { id: 'sources', label: 'Sources', keyLabel: 'Source', dimension: 'visit:source' },
        { id: 'referrers', label: 'Referrers', keyLabel: 'Referrer', dimension: 'visit:referrer' },
        { id: 'utm', label: 'Campaigns', keyLabel: 'UTM source', variants: [
          { id: 'source', label: 'UTM source', dimension: 'visit:utm_source' },
          { id: 'medium', label: 'UTM medium', dimension: 'visit:utm_medium' },
          { id: 'campaign', label: 'UTM campaign', dimension: 'visit:utm_campaign' },
        ] },
      ],
    },
    {
      id: 'locations', title: 'Locations', tabs: [
        { id: 'countries', label: 'Countries', keyLabel: 'Country', dimension: 'visit:country' },
        { id: 'regions', label: 'Regions', keyLabel: 'Region', dimension: 'visit:region' },
        { id: 'cities', label: 'Cities', keyLabel: 'City', dimension: 'visit:city' },
      ],
    },
    {
      id: 'devices', title: 'Devices', tabs: [
        { id: 'browsers', label: 'Browsers', keyLabel: 'Browser', dimension: 'visit:browser' },
        { id: 'os', label: 'OS', keyLabel: 'Operating system', dimension: 'visit:os' },
        { id: 'devices', label: 'Devices', keyLabel: 'Device', dimension: 'visit:device' },
      ],
    },
  ];
}
