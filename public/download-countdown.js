// Counts down the download link's remaining seconds; without JavaScript the page just says to reload.
(function () {
  var el = document.getElementById('link-countdown');
  if (!el) return;
  var left = Number(el.getAttribute('data-seconds'));
  if (!(left > 0)) return;
  // Counted from when the page arrived, so a wrong clock on this computer does not matter.
  var end = Date.now() + left * 1000;
  function tick() {
    var s = Math.max(0, Math.round((end - Date.now()) / 1000));
    if (s > 0) {
      el.textContent = 'The link works for ' + s + ' more second' + (s === 1 ? '' : 's') + '.';
      setTimeout(tick, 1000);
    } else {
      el.textContent = 'The link has run out. Reload this page for a fresh one.';
      var link = document.getElementById('download-link');
      if (link) link.removeAttribute('href');
    }
  }
  tick();
})();
