// The study page's AI section: while analyses are pending, fetch the section again every two
// seconds and swap it in, so statuses, progress and results appear without a reload.
(function () {
  "use strict";
  var INTERVAL_MS = 2000;
  var MAX_POLLS = 900; // half an hour, then the page's own reload shows the rest

  function section() {
    return document.getElementById("ai");
  }

  function poll(count) {
    var current = section();
    if (!current || current.getAttribute("data-pending") === "0" || count > MAX_POLLS) {
      return;
    }
    window.setTimeout(function () {
      fetch(current.getAttribute("data-ai-url"), {
        credentials: "same-origin",
        headers: { "X-Requested-With": "fetch" },
      })
        .then(function (response) {
          if (!response.ok) {
            throw new Error("HTTP " + response.status);
          }
          return response.text();
        })
        .then(function (html) {
          var holder = document.createElement("div");
          holder.innerHTML = html.trim();
          var fresh = holder.querySelector("#ai");
          if (fresh) {
            section().replaceWith(fresh);
          }
          poll(count + 1);
        })
        .catch(function () {
          poll(count + 1); // a network hiccup: keep trying, the interval bounds the load
        });
    }, INTERVAL_MS);
  }

  document.addEventListener("DOMContentLoaded", function () {
    poll(0);
  });
})();
