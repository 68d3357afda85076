// Preferences kept in localStorage, which may be unavailable (storage blocked, a share link in
// a third-party iframe): reads fall back to a default, writes are dropped. Never throws.

export function getPref(key, fallback = null) {
  try {
    const v = localStorage.getItem(key);
    return v === null ? fallback : v;
  } catch {
    return fallback;
  }
}

/** Stores `value`, or removes the key when it is null. */
export function setPref(key, value) {
  try {
    if (value === null) localStorage.removeItem(key);
    else localStorage.setItem(key, value);
  } catch {
    /* not kept: the preference lasts for this page only */
  }
}

export function getJSON(key, fallback) {
  try {
    return JSON.parse(getPref(key) ?? 'null') ?? fallback;
  } catch {
    return fallback;
  }
}

export const setJSON = (key, value) => setPref(key, JSON.stringify(value));
