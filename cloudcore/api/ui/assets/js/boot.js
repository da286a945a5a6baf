// Loaded before the modules, as a classic script, so that the page never stays at "Loading…":
// when a module of the dashboard fails to load (the browser fires "error" at the
// <script type="module"> when any module of its graph cannot be fetched) or the modules have not
// started 10 s after this script ran, the page reloads once, then says so.
(function () {
  var KEY = 'gantry.bootRetry';
  function failed(why) {
    if (window.gantryStarted) return;
    console.warn('gantry-boot: ' + why);
    if (!sessionStorage.getItem(KEY)) {
      sessionStorage.setItem(KEY, '1');
      location.reload();
      return;
    }
    sessionStorage.removeItem(KEY);
    var main = document.getElementById('main');
    var p = document.createElement('p');
    p.className = 'error';
    p.setAttribute('data-testid', 'boot-error');
    p.textContent = 'The dashboard\u2019s scripts did not load from cloudcore (' + why + '). Reload the page; ' +
      'if it happens again, check that cloudcore answers on this address.';
    if (main) main.replaceChildren(p);
  }
  window.addEventListener('error', function (e) {
    var t = e.target;
    if (t && t.tagName === 'SCRIPT' && t.type === 'module') failed('the modules of ' + t.src + ' did not load');
  }, true);
  // Module scripts run before DOMContentLoaded: a fetch that hangs holds the page, so the timer
  // starts here.
  setTimeout(function () { failed('the modules had not started after 10 s'); }, 10000);
})();
