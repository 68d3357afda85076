// Loaded before first paint (classic script): sets data-theme on <html> to "light" or "dark" —
// the saved choice, else the system's, followed as it changes — so the CSS has one dark palette
// and there is no flash. theme.js calls window.ffApplyTheme after a choice.
(function () {
  var root = document.documentElement;
  var mq = window.matchMedia ? window.matchMedia('(prefers-color-scheme: dark)') : null;
  function saved() {
    try {
      var t = localStorage.getItem('ff:theme');
      return t === 'light' || t === 'dark' ? t : null;
    } catch (e) {
      return null; // storage disabled: follow the system
    }
  }
  // `choice`: what was just picked, so it applies even when storage can't keep it.
  function apply(choice) {
    var picked = choice === 'light' || choice === 'dark' ? choice : null;
    root.dataset.theme = picked || saved() || (mq && mq.matches ? 'dark' : 'light');
  }
  window.ffApplyTheme = apply;
  apply();
  if (mq && mq.addEventListener) mq.addEventListener('change', function () { apply(); });
})();
