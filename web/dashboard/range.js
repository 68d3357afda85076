// Date ranges: what the picker offers, and how a range becomes a query.
import { addDays, daysBetween, formatDay, nowHourIn, todayIn } from './format.js';

export const RANGES = [
  { id: 'day', label: 'Today', key: 't' },
  { id: 'yesterday', label: 'Yesterday', key: 'y' },
  { id: '7d', label: 'Last 7 days', key: 'w' },
  { id: '30d', label: 'Last 30 days', key: 'd' },
  { id: 'month', label: 'This month', key: 'm' },
  { id: '12mo', label: 'Last 12 months', key: 'l' },
];

export const DEFAULT_RANGE = '7d';

/** A real calendar day (no 2026-02-31) from 1970 on, as the Stats API accepts. */
export function isValidDay(s) {
  if (typeof s !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(s) || s < '1970-01-01') return false;
  const d = new Date(`${s}T00:00:00Z`);
  return !Number.isNaN(d.getTime()) && d.toISOString().slice(0, 10) === s;
}

/** A human label for the selected range. */
export function rangeLabel(state) {
  if (state.range === 'custom') {
    if (state.from === state.to) return formatDay(state.from);
    const sameYear = state.from.slice(0, 4) === state.to.slice(0, 4);
    return `${formatDay(state.from, !sameYear)} – ${formatDay(state.to)}`;
  }
  return RANGES.find((r) => r.id === state.range)?.label ?? 'Last 7 days';
}

/**
 * The query pieces for a range in a site's zone:
 * {date_range, date?, unit: 'hour'|'day'|'month', includesToday, nowLabel}
 */
export function rangeQuery(state, timeZone) {
  const today = todayIn(timeZone);
  let q;
  switch (state.range) {
    case 'day': q = { date_range: 'day', unit: 'hour', includesToday: true }; break;
    case 'yesterday': q = { date_range: 'day', date: addDays(today, -1), unit: 'hour', includesToday: false }; break;
    case '30d': q = { date_range: '30d', unit: 'day', includesToday: true }; break;
    case 'month': q = { date_range: 'month', unit: 'day', includesToday: true }; break;
    case '12mo': q = { date_range: '12mo', unit: 'month', includesToday: true }; break;
    case 'custom': {
      const days = daysBetween(state.from, state.to) + 1;
      const unit = days <= 1 ? 'hour' : days <= 92 ? 'day' : 'month';
      q = { date_range: [state.from, state.to], unit, includesToday: state.from <= today && state.to >= today };
      break;
    }
    default: q = { date_range: '7d', unit: 'day', includesToday: true };
  }
  // The bucket holding "now": the chart draws the line up to it and no further.
  q.nowLabel = q.unit === 'hour' ? nowHourIn(timeZone) : q.unit === 'day' ? today : `${today.slice(0, 7)}-01`;
  q.today = today;
  return q;
}
