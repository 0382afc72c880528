// "Add another" for Django formsets: clones the empty form template and bumps TOTAL_FORMS.
// Plain ES2017 (Firefox ESR), no dependencies.
(function () {
  "use strict";
  document.querySelectorAll("[data-formset-add]").forEach(function (button) {
    var prefix = button.getAttribute("data-formset-add");
    var template = document.getElementById(prefix + "-empty-form");
    var target = document.getElementById(prefix + "-rows");
    var total = document.getElementById("id_" + prefix + "-TOTAL_FORMS");
    if (!template || !target || !total) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      var index = parseInt(total.value, 10);
      var html = template.innerHTML.replace(/__prefix__/g, String(index));
      target.insertAdjacentHTML("beforeend", html);
      total.value = String(index + 1);
      var first = target.lastElementChild && target.lastElementChild.querySelector("select, input");
      if (first) first.focus();
    });
  });
})();
