// Warns before the session ends for inactivity and offers to stay signed in. The timeout and
// the warning come from the page (data attributes on <body>); any keep-alive POST (this
// button, the viewer) resets the server's idle clock.
(function () {
  var body = document.body;
  var timeout = parseInt(body.dataset.idleTimeout || "0", 10);
  var warning = parseInt(body.dataset.idleWarning || "0", 10);
  if (!timeout) return;
  var banner = document.getElementById("idle-warning");
  var timers = [];
  function csrf() {
    var m = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  }
  function schedule() {
    timers.forEach(clearTimeout);
    banner.hidden = true;
    timers = [
      setTimeout(function () { banner.hidden = false; }, Math.max(0, timeout - warning) * 1000),
      setTimeout(function () { window.location.reload(); }, (timeout + 5) * 1000),
    ];
  }
  window.misKeepAlive = function () {
    return fetch(body.dataset.keepaliveUrl, {
      method: "POST", credentials: "same-origin", headers: {"X-CSRFToken": csrf()},
    }).then(function (r) { if (r.ok) schedule(); else window.location.reload(); });
  };
  document.getElementById("idle-stay").addEventListener("click", function () { window.misKeepAlive(); });
  schedule();
})();
