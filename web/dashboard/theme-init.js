// Loaded before first paint (classic script): apply the saved theme so there is no flash.
(function () {
  try {
    var t = localStorage.getItem('ff:theme');
    if (t === 'light' || t === 'dark') document.documentElement.dataset.theme = t;
  } catch (e) { /* storage disabled: follow the system */ }
})();
