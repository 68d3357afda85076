// Live refreshes: run `task` at most once per `minGap` ms, trailing, never two at a time,
// never while the tab is hidden (once it is visible again instead), and back off when the
// server is slow: the gap is at least 3× the last run, so refreshing keeps the server busy
// at most a third of the time.

export function createThrottle(task, { minGap = 1500 } = {}) {
  let timer = null;
  let running = false;
  let again = false;
  let dirty = false;
  let lastRun = 0;
  let gap = minGap;
  let disposed = false;

  async function fire() {
    timer = null;
    if (disposed) return;
    if (document.hidden) { dirty = true; return; }
    if (running) { again = true; return; }
    running = true;
    lastRun = performance.now();
    try { await task(); } catch { /* the task shows its own errors */ } finally { running = false; }
    gap = Math.max(minGap, 3 * (performance.now() - lastRun));
    if (again) { again = false; schedule(); }
  }

  function schedule() {
    if (timer || disposed) return;
    timer = setTimeout(fire, Math.max(0, lastRun + gap - performance.now()));
  }

  function onVisible() {
    if (!document.hidden && dirty) { dirty = false; schedule(); }
  }
  document.addEventListener('visibilitychange', onVisible);

  return {
    schedule,
    /** Something else just fetched everything: count that as a run. */
    touch() { lastRun = performance.now(); },
    dispose() {
      disposed = true;
      clearTimeout(timer);
      document.removeEventListener('visibilitychange', onVisible);
    },
  };
}
