// One EventSource per dashboard: live stats in, connection status out.
// Status: connecting → live; on a drop "reconnecting" (EventSource retries by itself), and
// "offline" when the browser is offline or no connection came back for a while. If the
// browser gives up (CLOSED, e.g. the server answered an error) we retry after a pause.

const OFFLINE_AFTER_MS = 10000;
const RETRY_MS = 5000;

export function connectLive(url, { onStats, onStatus, onReconnect }) {
  let es = null;
  let closed = false;
  let hadError = false;
  let retry = null;
  let offlineTimer = null;
  let status = null;

  function set(s) {
    if (s !== 'reconnecting') { clearTimeout(offlineTimer); offlineTimer = null; }
    if (s === status) return;
    status = s;
    onStatus(s);
    if (s === 'reconnecting') offlineTimer = setTimeout(() => set('offline'), OFFLINE_AFTER_MS);
  }

  function open() {
    if (closed) return;
    es = new EventSource(url);
    es.addEventListener('stats', (e) => {
      let data;
      try { data = JSON.parse(e.data); } catch { return; }
      set('live');
      onStats(data);
    });
    es.onopen = () => {
      set('live');
      if (hadError) { hadError = false; onReconnect?.(); }
    };
    es.onerror = () => {
      hadError = true;
      if (!navigator.onLine || es.readyState === EventSource.CLOSED) set('offline');
      else if (status !== 'offline') set('reconnecting');
      if (es.readyState === EventSource.CLOSED) {
        clearTimeout(retry);
        retry = setTimeout(open, RETRY_MS);
      }
    };
  }

  const goOffline = () => set('offline');
  const goOnline = () => {
    if (es?.readyState === EventSource.OPEN) return;
    es?.close();
    clearTimeout(retry);
    hadError = true;
    set('reconnecting');
    open();
  };
  addEventListener('offline', goOffline);
  addEventListener('online', goOnline);

  set('connecting');
  open();

  return {
    close() {
      closed = true;
      clearTimeout(retry);
      clearTimeout(offlineTimer);
      es?.close();
      removeEventListener('offline', goOffline);
      removeEventListener('online', goOnline);
    },
  };
}
