// Updates the archive's progress in place (no reload, which would reset focus and a screen reader's place); without JavaScript the page's meta refresh does it.
(function () {
  var progress = document.getElementById('archive-progress');
  var match = /^\/archives\/([0-9a-f-]{36})$/.exec(location.pathname);
  if (!progress || !match || !window.fetch) return;
  var url = '/archives/' + match[1] + '/progress';
  var refresh = document.querySelector('meta[http-equiv="refresh"]');
  var seconds = (refresh && parseInt(refresh.getAttribute('content'), 10)) || 5;

  function text(id, value) {
    var el = document.getElementById(id);
    if (el && el.textContent !== value) el.textContent = value;
  }

  function show(p) {
    text('archive-state', p.stateText);
    text('archive-written', p.written);
    if (p.percent === null) {
      progress.removeAttribute('value');
      text('archive-percent', '');
    } else {
      progress.value = p.percent;
      progress.textContent = p.percent + ' %';
      text('archive-percent', p.percent + ' %');
    }
    text('progress-live', p.stateText + (p.percent === null ? '' : ', ' + p.percent + ' %'));
  }

  function poll() {
    fetch(url, { headers: { accept: 'application/json' }, credentials: 'same-origin', cache: 'no-store' })
      .then(function (response) {
        if (!response.ok) throw new Error('status ' + response.status);
        return response.json();
      })
      .then(function (p) {
        show(p);
        // Finished (ready, failed, cancelled): one reload shows the finished page with its own actions.
        if (p.working) setTimeout(poll, seconds * 1000);
        else location.reload();
      })
      // Signed out or the portal is unreachable: a reload shows the reason, or retries.
      .catch(function () {
        setTimeout(function () {
          location.reload();
        }, seconds * 1000);
      });
  }

  // Taking over: the meta refresh goes, and window.stop() cancels the reload it already scheduled
  // (removing the element alone does not). Done after load, so it stops nothing else still loading.
  function takeOver() {
    if (refresh && refresh.parentNode) refresh.parentNode.removeChild(refresh);
    window.stop();
    text('progress-note', 'This page updates itself. We also email you when the archive is ready, so you may close it.');
    setTimeout(poll, seconds * 1000);
  }
  if (document.readyState === 'complete') takeOver();
  else window.addEventListener('load', takeOver);
})();
