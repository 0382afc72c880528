// The upload page: many files, folders, ZIPs or a CD's DICOMDIR folder, sent ONE file per
// request to POST /api/v1/instances/, with a progress bar per file and overall, and a result
// line per file (a ZIP gives one line per member). Hand-written, no dependencies.
(function () {
  "use strict";
  var form = document.getElementById("upload-form");
  if (!form) { return; }
  var api = form.getAttribute("data-api");
  var messages = JSON.parse(document.getElementById("upload-messages").textContent);
  var list = document.getElementById("upload-results");
  var overall = document.getElementById("overall-progress");
  var overallText = document.getElementById("overall-text");
  var csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  var JUNK = /^(\.DS_Store|Thumbs\.db|desktop\.ini|\._.*)$/i;
  var queue = [];
  var running = false;
  var totals = { files: 0, done: 0, bytes: 0, sent: 0, imported: 0, duplicate: 0, rejected: 0 };

  function text(node, value) { node.textContent = value; return node; }

  function el(tag, cls, content) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (content !== undefined) { text(node, content); }
    return node;
  }

  function format(template, values) {
    return template.replace(/\{(\w+)\}/g, function (_, key) { return values[key]; });
  }

  function updateOverall() {
    overall.max = Math.max(totals.bytes, 1);
    overall.value = totals.sent;
    text(overallText, format(messages.summary, {
      done: totals.done, total: totals.files, imported: totals.imported,
      duplicate: totals.duplicate, rejected: totals.rejected
    }));
  }

  function addResult(item, status, name, message) {
    var line = el("li", "result status-" + status);
    line.setAttribute("data-status", status);
    line.appendChild(el("span", "badge status-" + status, messages[status] || status));
    line.appendChild(document.createTextNode(" " + name));
    if (message) { line.appendChild(el("span", "reason", " — " + message)); }
    item.results.appendChild(line);
    if (totals[status] !== undefined) { totals[status] += 1; }
  }

  function enqueue(file, path) {
    var name = path || file.webkitRelativePath || file.name;
    var row = el("li", "upload-file");
    row.appendChild(el("span", "name", name));
    var bar = el("progress");
    bar.max = Math.max(file.size, 1);
    bar.value = 0;
    row.appendChild(bar);
    var state = el("span", "state", messages.waiting);
    row.appendChild(state);
    var results = el("ul", "plain member-results");
    row.appendChild(results);
    list.appendChild(row);
    var item = { file: file, name: name, bar: bar, state: state, results: results, sent: 0 };
    totals.files += 1;
    if (file.name.toUpperCase() === "DICOMDIR" || JUNK.test(file.name)) {
      totals.done += 1;
      text(state, "");
      addResult(item, "skipped", name, file.name.toUpperCase() === "DICOMDIR" ? messages.dicomdir : "");
      bar.value = bar.max;
      updateOverall();
      return;
    }
    totals.bytes += file.size;
    queue.push(item);
    updateOverall();
    if (!running) { next(); }
  }

  function fields() {
    var data = new FormData();
    ["department", "urgency", "clinical_question", "patient", "category", "body_part",
      "view_position"].forEach(function (key) {
      var input = form.elements[key];
      if (input && input.value.trim() !== "") { data.append(key, input.value.trim()); }
    });
    return data;
  }

  function errorMessage(xhr) {
    try {
      var body = JSON.parse(xhr.responseText);
      if (body && body.error && body.error.message) { return body.error.message; }
    } catch (ignored) { /* not JSON */ }
    return messages.failed + " (HTTP " + xhr.status + ")";
  }

  function send(item, done) {
    var data = fields();
    data.append("file", item.file, item.name);
    var xhr = new XMLHttpRequest();
    xhr.open("POST", api);
    xhr.setRequestHeader("X-CSRFToken", csrf);
    xhr.setRequestHeader("Accept", "application/json");
    text(item.state, messages.uploading);
    xhr.upload.onprogress = function (event) {
      if (!event.lengthComputable) { return; }
      var sent = Math.min(item.file.size, event.loaded * item.file.size / Math.max(event.total, 1));
      totals.sent += sent - item.sent;
      item.sent = sent;
      item.bar.value = sent;
      updateOverall();
    };
    xhr.onload = function () {
      text(item.state, "");
      if (xhr.status === 200) {
        var body = JSON.parse(xhr.responseText);
        body.results.forEach(function (r) { addResult(item, r.status, r.name, r.message); });
      } else {
        addResult(item, "rejected", item.name, errorMessage(xhr));
      }
      done();
    };
    xhr.onerror = function () {
      text(item.state, "");
      addResult(item, "rejected", item.name, messages.failed);
      done();
    };
    xhr.send(data);
  }

  function next() {
    var item = queue.shift();
    if (!item) { running = false; updateOverall(); return; }
    running = true;
    send(item, function () {
      totals.sent += item.file.size - item.sent;
      item.sent = item.file.size;
      item.bar.value = item.bar.max;
      totals.done += 1;
      updateOverall();
      next();
    });
  }

  function addFiles(files) {
    for (var i = 0; i < files.length; i += 1) { enqueue(files[i]); }
  }

  // Dropped folders are walked with the File and Directory Entries API (Firefox ESR has it).
  function walk(entry, path) {
    if (entry.isFile) {
      entry.file(function (file) { enqueue(file, path + file.name); });
    } else if (entry.isDirectory) {
      var reader = entry.createReader();
      var read = function () {
        reader.readEntries(function (entries) {
          if (!entries.length) { return; }
          entries.forEach(function (child) { walk(child, path + entry.name + "/"); });
          read();  // readEntries returns at most 100 entries per call
        });
      };
      read();
    }
  }

  var zone = document.getElementById("drop-zone");
  zone.addEventListener("dragover", function (event) {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", function () { zone.classList.remove("over"); });
  zone.addEventListener("drop", function (event) {
    event.preventDefault();
    zone.classList.remove("over");
    var items = event.dataTransfer.items;
    if (items && items.length && items[0].webkitGetAsEntry) {
      var entries = [];
      for (var i = 0; i < items.length; i += 1) {
        var entry = items[i].webkitGetAsEntry();
        if (entry) { entries.push(entry); }
      }
      entries.forEach(function (entry) { walk(entry, ""); });
    } else {
      addFiles(event.dataTransfer.files);
    }
  });
  ["file-input", "folder-input"].forEach(function (id) {
    var input = document.getElementById(id);
    input.addEventListener("change", function () {
      addFiles(input.files);
      input.value = "";
    });
  });
})();
