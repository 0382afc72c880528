// Report drafts save themselves: a change is sent a moment after typing stops (and when the
// page is left), and the editor says whether the text on screen is saved.
(function () {
  "use strict";
  var form = document.querySelector("form[data-autosave]");
  if (!form) { return; }
  var state = form.querySelector(".autosave-state");
  var url = form.getAttribute("data-autosave");
  var timer = null;
  var dirty = false;
  var inFlight = false;

  function show(text, name) {
    state.textContent = text;
    state.setAttribute("data-state", name);
    state.classList.toggle("error", name === "failed");
  }

  function save() {
    timer = null;
    if (!dirty || inFlight) { return; }
    dirty = false;
    inFlight = true;
    show(state.getAttribute("data-saving-text"), "saving");
    var data = new FormData(form);
    data.append("autosave", "1");
    fetch(url, { method: "POST", body: data, credentials: "same-origin",
                 headers: { "X-Requested-With": "XMLHttpRequest" } })
      .then(function (response) {
        return response.json().then(function (body) { return { ok: response.ok, body: body }; });
      })
      .then(function (result) {
        if (result.ok && result.body.saved) {
          show(state.getAttribute("data-saved-text") + " " + result.body.saved_at, "saved");
        } else {
          dirty = true;
          show(state.getAttribute("data-failed-text") + " " + (result.body.error || ""), "failed");
        }
      })
      .catch(function () {
        dirty = true;
        show(state.getAttribute("data-failed-text") + " " + state.getAttribute("data-offline-text"), "failed");
      })
      .finally(function () {
        inFlight = false;
        if (dirty && !timer) { timer = window.setTimeout(save, 5000); }
      });
  }

  function changed() {
    dirty = true;
    show(state.getAttribute("data-unsaved-text"), "unsaved");
    if (timer) { window.clearTimeout(timer); }
    timer = window.setTimeout(save, 1500);
  }

  form.addEventListener("input", changed);
  form.addEventListener("change", changed);
  form.addEventListener("submit", function () { dirty = false; if (timer) { window.clearTimeout(timer); } });
  window.addEventListener("beforeunload", function (event) {
    if (dirty) { event.preventDefault(); event.returnValue = ""; }
  });
})();
