// The DICOM tag browser: filter rows by any text in them.
(function () {
  "use strict";
  document.querySelectorAll("[data-tag-filter]").forEach(function (input) {
    var table = document.querySelector(input.getAttribute("data-tag-filter"));
    input.addEventListener("input", function () {
      var wanted = input.value.trim().toLowerCase();
      table.querySelectorAll("tbody tr").forEach(function (row) {
        row.hidden = wanted !== "" && row.textContent.toLowerCase().indexOf(wanted) === -1;
      });
    });
  });
})();
