// Number, duration, percentage, date and country formatting.

const LOCALE = undefined; // the browser's locale
const compact = new Intl.NumberFormat('en', { notation: 'compact', maximumFractionDigits: 1 });
const whole = new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 2 });

/** 950 → "950", 1234 → "1.2k", 3_400_000 → "3.4M". */
export function formatNumber(n) {
  if (n == null || Number.isNaN(n)) return '–';
  if (Math.abs(n) < 1000) return Number.isInteger(n) ? whole.format(n) : decimal.format(n);
  return compact.format(n).replace('K', 'k');
}

/** Full number with grouping, for tooltips and titles. */
export function formatExact(n) {
  if (n == null || Number.isNaN(n)) return '–';
  return Number.isInteger(n) ? whole.format(n) : decimal.format(n);
}

/** Seconds → "45s", "3m 20s", "1h 2m". */
export function formatDuration(seconds) {
  if (seconds == null || Number.isNaN(seconds)) return '–';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = s % 60;
  if (h > 0) return m ? `${h}h ${m}m` : `${h}h`;
  return rest ? `${m}m ${rest}s` : `${m}m`;
}

export function formatPercent(p) {
  if (p == null || Number.isNaN(p)) return '–';
  const r = Math.round(p * 10) / 10;
  return `${Number.isInteger(r) ? r : r.toFixed(1)}%`;
}

/** How each top-line metric is shown. */
export const METRICS = {
  visitors: { label: 'Visitors', format: formatNumber, exact: formatExact },
  visits: { label: 'Visits', format: formatNumber, exact: formatExact },
  pageviews: { label: 'Pageviews', format: formatNumber, exact: formatExact },
  views_per_visit: { label: 'Views per visit', format: (v) => (v == null ? '–' : decimal.format(v)), exact: (v) => decimal.format(v ?? 0) },
  bounce_rate: { label: 'Bounce rate', format: formatPercent, exact: formatPercent, lowerIsBetter: true },
  visit_duration: { label: 'Visit duration', format: formatDuration, exact: formatDuration },
};

let flagSupport = null;
/** Does this system draw flag emoji? (Windows, for one, shows two letters instead.) */
export function supportsFlags() {
  if (flagSupport !== null) return flagSupport;
  flagSupport = false;
  try {
    const c = document.createElement('canvas');
    c.width = 24; c.height = 24;
    const ctx = c.getContext('2d', { willReadFrequently: true });
    ctx.font = '18px sans-serif';
    ctx.textBaseline = 'top';
    ctx.fillText('\u{1F1E9}\u{1F1EA}', 0, 0);
    const d = ctx.getImageData(0, 0, 24, 24).data;
    for (let i = 0; i < d.length; i += 4) {
      if (d[i + 3] > 100 && (Math.abs(d[i] - d[i + 1]) > 50 || Math.abs(d[i + 1] - d[i + 2]) > 50)) { flagSupport = true; break; }
    }
  } catch { /* no canvas: letters it is */ }
  return flagSupport;
}

/** ISO 3166-1 alpha-2 → flag emoji ("DE" → 🇩🇪). */
export function flag(code) {
  if (!code || !/^[A-Za-z]{2}$/.test(code)) return '🌐';
  const base = 0x1f1e6 - 65;
  const up = code.toUpperCase();
  return String.fromCodePoint(base + up.charCodeAt(0), base + up.charCodeAt(1));
}

let regionNames = null;
export function countryName(code) {
  if (!code) return 'Unknown';
  try {
    regionNames ??= new Intl.DisplayNames(['en'], { type: 'region' });
    return regionNames.of(code.toUpperCase()) || code;
  } catch {
    return code;
  }
}

// Time labels from the API are wall-clock times in the site's zone ("2026-11-21T14:00:00",
// "2026-11-21", "2026-11-01"). Format them as-is: parse as UTC, print in UTC.
function parseLabel(label) {
  const [d, t = '00:00:00'] = String(label).split('T');
  return new Date(`${d}T${t.slice(0, 8)}Z`);
}

const fmtCache = new Map();
function fmt(opts) {
  const key = JSON.stringify(opts);
  if (!fmtCache.has(key)) fmtCache.set(key, new Intl.DateTimeFormat(LOCALE, { timeZone: 'UTC', ...opts }));
  return fmtCache.get(key);
}

/** Short axis label for a bucket. */
export function formatBucket(label, unit) {
  const d = parseLabel(label);
  if (unit === 'hour') return fmt({ hour: 'numeric' }).format(d);
  if (unit === 'month') return fmt({ month: 'short', year: '2-digit' }).format(d);
  return fmt({ day: 'numeric', month: 'short' }).format(d);
}

/** Long tooltip label for a bucket. */
export function formatBucketLong(label, unit) {
  const d = parseLabel(label);
  if (unit === 'hour') return fmt({ weekday: 'short', day: 'numeric', month: 'short', hour: 'numeric', minute: '2-digit' }).format(d);
  if (unit === 'month') return fmt({ month: 'long', year: 'numeric' }).format(d);
  return fmt({ weekday: 'short', day: 'numeric', month: 'short', year: 'numeric' }).format(d);
}

/** "YYYY-MM-DD" → "21 Nov 2026" */
export function formatDay(ymd, withYear = true) {
  return fmt(withYear ? { day: 'numeric', month: 'short', year: 'numeric' } : { day: 'numeric', month: 'short' })
    .format(parseLabel(ymd));
}

/** The date (YYYY-MM-DD) of an instant (default: now) in an IANA time zone. */
export function todayIn(timeZone, at = new Date()) {
  try {
    return new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' }).format(at);
  } catch {
    return at.toISOString().slice(0, 10);
  }
}

/** The current wall-clock hour in a zone as "YYYY-MM-DDTHH:00:00". */
export function nowHourIn(timeZone) {
  try {
    const parts = Object.fromEntries(new Intl.DateTimeFormat('en-CA', {
      timeZone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', hourCycle: 'h23',
    }).formatToParts(new Date()).map((p) => [p.type, p.value]));
    return `${parts.year}-${parts.month}-${parts.day}T${parts.hour}:00:00`;
  } catch {
    return new Date().toISOString().slice(0, 13) + ':00:00';
  }
}

/** Add days to a YYYY-MM-DD string. */
export function addDays(ymd, n) {
  const d = parseLabel(ymd);
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}

export function daysBetween(a, b) {
  return Math.round((parseLabel(b) - parseLabel(a)) / 86400000);
}

export function plural(n, one, many) {
  return `${formatNumber(n)} ${n === 1 ? one : many}`;
}
