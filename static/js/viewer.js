/* The image viewer: full bit-depth frames windowed in the browser (no new image per change),
   zoom, pan, stack scroll with prefetch, pixel values, distance, annotations, overlays, and
   linked viewers on the comparison page. Hand-written; no libraries. */
(function () {
  "use strict";
  if (window.misViewer) return; // the script is included once per viewer on the page

  const PRESETS = { lung: [-600, 1500], bone: [300, 1500], soft: [40, 400], brain: [40, 80] };
  const PRESET_KEYS = { 2: "default", 3: "lung", 4: "bone", 5: "soft", 6: "brain" };
  const PREFETCH = 4; // frames fetched ahead (and half as many behind) of the one shown
  const CACHE_FRAMES = 48;
  const viewers = [];
  window.misViewer = { viewers: viewers };

  function format(text, values) {
    return text.replace(/%\((\w+)\)s/g, function (_, key) { return values[key]; });
  }

  // --- frames -----------------------------------------------------------------------------------
  const frameCache = new Map(); // url -> Promise<frame>, least recently used first

  function typed(meta, buffer) {
    switch (meta.dtype) {
      case "int16": return new Int16Array(buffer);
      case "uint16": return new Uint16Array(buffer);
      case "int8": return new Int8Array(buffer);
      case "int32": return new Int32Array(buffer);
      case "float32": return new Float32Array(buffer);
      default: return new Uint8Array(buffer); // rgb8
    }
  }

  // A signed URL's frame of an uncompressed grey image holds the file's stored values
  // (rescaled: false): mask, rescale to modality values (HU) and find the range here, once.
  function toModality(meta, stored) {
    const n = stored.length;
    const slope = meta.rescale_slope, intercept = meta.rescale_intercept;
    const bits = meta.bits_allocated || 16;
    const mask = !meta.dtype.startsWith("int") && meta.bits_stored < bits ? (1 << meta.bits_stored) - 1 : 0;
    const integral = Number.isInteger(slope) && Number.isInteger(intercept);
    const out = integral ? new Int32Array(n) : new Float32Array(n);
    let min = Infinity, max = -Infinity;
    for (let i = 0; i < n; i++) {
      let v = stored[i];
      if (mask) v &= mask;
      v = v * slope + intercept;
      out[i] = v;
      if (v < min) min = v;
      if (v > max) max = v;
    }
    if (!n) { min = 0; max = 0; }
    meta.dtype = integral ? "int32" : "float32";
    meta.min = min;
    meta.max = max;
    meta.signed = meta.min < 0;
    if (!meta.window) meta.window = [(meta.min + meta.max) / 2, Math.max(meta.max - meta.min, 1)];
    meta.rescaled = true;
    return out;
  }

  async function fetchFrame(url) {
    const response = await fetch(url, { credentials: "same-origin" });
    if (!response.ok) {
      let message = response.status + " " + response.statusText;
      try { message = (await response.json()).error.message; } catch (e) { /* not JSON */ }
      throw new Error(message);
    }
    const meta = JSON.parse(response.headers.get("X-Frame-Metadata"));
    const data = typed(meta, await response.arrayBuffer());
    return { meta: meta, data: meta.rescaled === false ? toModality(meta, data) : data };
  }

  // url: the frame's own address (the cache's key); sign: adds the viewer's signed token.
  function loadFrame(url, sign) {
    let promise = frameCache.get(url);
    if (promise) {
      frameCache.delete(url);
    } else {
      promise = fetchFrame(sign ? sign(url) : url);
      promise.catch(function () { frameCache.delete(url); });
    }
    frameCache.set(url, promise);
    while (frameCache.size > CACHE_FRAMES) frameCache.delete(frameCache.keys().next().value);
    return promise;
  }

  // --- windowing ----------------------------------------------------------------------------------
  function grey(value, low, width) {
    const g = ((value - low) / width + 0.5) * 255;
    return g <= 0 ? 0 : g >= 255 ? 255 : Math.round(g);
  }

  function paint(frame, image, center, width, invert) {
    const meta = frame.meta;
    const data = frame.data;
    const out = new Uint32Array(image.data.buffer);
    const flip = invert !== meta.invert; // MONOCHROME1 shows low values white
    const n = meta.rows * meta.columns;
    if (meta.dtype === "rgb8") {
      for (let i = 0, j = 0; i < n; i++, j += 3) {
        let r = data[j], g = data[j + 1], b = data[j + 2];
        if (invert) { r = 255 - r; g = 255 - g; b = 255 - b; }
        out[i] = 0xff000000 | (b << 16) | (g << 8) | r;
      }
      return;
    }
    const w = Math.max(width, 1);
    const low = center - 0.5; // PS3.3 C.11.2.1.2, linear
    const span = Math.max(w - 1, 1e-6);
    const min = Math.floor(meta.min), max = Math.ceil(meta.max);
    if (meta.dtype !== "float32" && max - min < (1 << 22)) {
      const lut = new Uint32Array(max - min + 1);
      for (let v = min; v <= max; v++) {
        let g = grey(v, low, span);
        if (flip) g = 255 - g;
        lut[v - min] = 0xff000000 | (g << 16) | (g << 8) | g;
      }
      for (let i = 0; i < n; i++) out[i] = lut[data[i] - min];
      return;
    }
    for (let i = 0; i < n; i++) {
      let g = grey(data[i], low, span);
      if (flip) g = 255 - g;
      out[i] = 0xff000000 | (g << 16) | (g << 8) | g;
    }
  }

  // --- the viewer ---------------------------------------------------------------------------------
  class Viewer {
    constructor(root) {
      this.root = root;
      this.config = JSON.parse(document.getElementById(root.dataset.config).textContent);
      this.text = this.config.text;
      this.canvas = root.querySelector(".viewer-canvas");
      this.ctx = this.canvas.getContext("2d");
      this.offscreen = document.createElement("canvas");
      this.slider = root.querySelector(".viewer-slider");
      this.tool = "pan";
      this.seriesIndex = -1;
      this.stack = [];
      this.index = 0;
      this.frame = null;
      this.window = null;
      this.invert = false;
      this.zoom = 1;
      this.offset = [0, 0];
      this.measurements = new Map(); // "instance:frame" -> [[x1, y1, x2, y2], ...]
      this.annotations = [];
      this.overlays = new Map(); // instance id -> list
      this.overlayImage = null;
      this.drag = null;
      this.pending = null; // a shape drawn, waiting for its label
      this.selected = null;
      this.listeners = [];
      this.bind();
      this.resize();
      if (this.config.series.length) this.showSeries(0);
      else this.status("");
      if (this.config.can_see_annotations) this.loadAnnotations();
    }

    // -- state ---------------------------------------------------------------------------------
    get key() {
      const item = this.stack[this.index];
      return item ? item.instance.id + ":" + item.frame : "";
    }

    status(text) { this.root.querySelector("[data-info=status]").textContent = text || ""; }

    info(name, text) { this.root.querySelector("[data-info=" + name + "]").textContent = text; }

    notify(kind) { this.listeners.forEach((listener) => listener(this, kind)); }

    showSeries(n) {
      const series = this.config.series[n];
      this.seriesIndex = n;
      this.stack = [];
      series.instances.forEach((instance) => {
        for (let f = 0; f < Math.max(instance.frames, 1); f++) this.stack.push({ instance: instance, frame: f });
      });
      this.root.querySelectorAll(".series-thumb").forEach((b) => b.classList.toggle("active", Number(b.dataset.series) === n));
      this.slider.max = String(this.stack.length - 1);
      this.fitted = false;
      this.fullResolution = false;
      this.setIndex(0);
    }

    // Frames come through URLs signed when the page (or the grant endpoint) was audited;
    // an expired token is renewed in the background, and meanwhile the ordinary endpoint
    // answers (the URL without the token).
    sign(url) {
      const frames = this.config.frames || {};
      const now = Date.now() / 1000;
      if (frames.token && frames.expires - now < 30) this.renewToken();
      if (!frames.token || frames.expires - now < 2) return url;
      return url + (url.indexOf("?") < 0 ? "?" : "&") + frames.param + "=" + encodeURIComponent(frames.token);
    }

    renewToken() {
      if (this.renewing || !this.config.urls.grant) return;
      this.renewing = fetch(this.config.urls.grant, { credentials: "same-origin" })
        .then((response) => response.ok ? response.json() : null)
        .then((body) => {
          if (body && body.token) { this.config.frames.token = body.token; this.config.frames.expires = body.expires; }
        })
        .catch(() => {})
        .then(() => { setTimeout(() => { this.renewing = null; }, 5000); });
    }

    frameUrl(item) {
      const base = this.config.urls.raw + "/" + item.instance.id + "/frames/" + item.frame + ".raw";
      const big = Math.max(item.instance.rows || 0, item.instance.columns || 0) > this.config.max_size;
      return big && !this.fullResolution ? base + "?max_size=" + this.config.max_size : base;
    }

    async setIndex(i, fromSync) {
      if (!this.stack.length) return;
      i = Math.max(0, Math.min(this.stack.length - 1, i));
      this.index = i;
      this.slider.value = String(i);
      this.root.dataset.index = String(i);
      const item = this.stack[i];
      this.info("position", format(this.text.image, { n: i + 1, total: this.stack.length }) +
        (item.instance.frames > 1 ? " · " + format(this.text.frame, { n: item.frame + 1 }) : ""));
      if (!fromSync) this.notify("scroll");
      const token = (this.token = {});
      if (!this.frame) this.status(this.text.loading);
      let frame;
      try {
        frame = await loadFrame(this.frameUrl(item), (url) => this.sign(url));
      } catch (error) {
        if (token === this.token) this.status(format(this.text.error, { reason: error.message }));
        return;
      }
      if (token !== this.token) return;
      this.status("");
      this.setFrame(frame);
      this.loadOverlays(item);
      this.listAnnotations();
      this.prefetch();
    }

    prefetch() {
      for (let d = 1; d <= PREFETCH; d++) {
        [this.index + d, this.index - Math.ceil(d / 2)].forEach((j) => {
          if (j >= 0 && j < this.stack.length) loadFrame(this.frameUrl(this.stack[j]), (url) => this.sign(url)).catch(() => {});
        });
      }
    }

    setFrame(frame) {
      const meta = frame.meta;
      const first = !this.frame;
      this.frame = frame;
      if (this.offscreen.width !== meta.columns || this.offscreen.height !== meta.rows) {
        this.offscreen.width = meta.columns;
        this.offscreen.height = meta.rows;
        this.imageData = null;
      }
      if (!this.imageData) this.imageData = this.offscreen.getContext("2d").createImageData(meta.columns, meta.rows);
      if (!this.window) this.window = meta.window.slice();
      if (first || !this.fitted) { this.fit(); this.fitted = true; }
      this.root.dataset.loaded = this.key;
      this.root.dataset.scale = String(meta.scale);
      this.repaint();
    }

    repaint() {
      if (!this.frame) return;
      paint(this.frame, this.imageData, this.window[0], this.window[1], this.invert);
      this.offscreen.getContext("2d").putImageData(this.imageData, 0, 0);
      this.root.dataset.window = Math.round(this.window[0]) + "," + Math.round(this.window[1]);
      this.info("window", "WL " + Math.round(this.window[0]) + " / WW " + Math.round(this.window[1]) + (this.invert ? " · INV" : ""));
      this.draw();
    }

    setWindow(center, width, fromSync) {
      this.window = [center, Math.max(1, width)];
      this.repaint();
      if (!fromSync) this.notify("window");
    }

    preset(name) {
      if (!this.frame) return;
      const meta = this.frame.meta;
      if (name === "default") this.setWindow(meta.window[0], meta.window[1]);
      else if (name === "full") this.setWindow((meta.min + meta.max) / 2, meta.max - meta.min + 1);
      else this.setWindow(PRESETS[name][0], PRESETS[name][1]);
      this.root.querySelector("[data-preset]").value = name;
    }

    // -- geometry: image coordinates are the original frame's pixels ----------------------------
    get imageSize() {
      const meta = this.frame.meta;
      return [meta.original_columns, meta.original_rows];
    }

    toImage(sx, sy) { return [(sx - this.offset[0]) / this.zoom, (sy - this.offset[1]) / this.zoom]; }

    toScreen(ix, iy) { return [this.offset[0] + ix * this.zoom, this.offset[1] + iy * this.zoom]; }

    fit() {
      if (!this.frame) return;
      const [w, h] = this.imageSize;
      this.zoom = Math.min(this.canvas.width / w, this.canvas.height / h);
      this.offset = [(this.canvas.width - w * this.zoom) / 2, (this.canvas.height - h * this.zoom) / 2];
      this.draw();
    }

    zoomAt(factor, sx, sy) {
      const [ix, iy] = this.toImage(sx, sy);
      this.zoom = Math.max(0.02, Math.min(50, this.zoom * factor));
      this.offset = [sx - ix * this.zoom, sy - iy * this.zoom];
      this.draw();
    }

    actualSize() {
      this.zoomAt(1 / this.zoom, this.canvas.width / 2, this.canvas.height / 2);
    }

    reset() {
      this.invert = false;
      this.preset("default");
      this.fit();
    }

    resize() {
      const stage = this.canvas.parentElement;
      this.canvas.width = Math.max(200, stage.clientWidth);
      this.canvas.height = Math.max(200, stage.clientHeight);
      if (this.frame) this.fit();
    }

    // -- drawing ------------------------------------------------------------------------------------
    draw() {
      const ctx = this.ctx;
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.fillStyle = "#000";
      ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
      if (!this.frame) return;
      const [w, h] = this.imageSize;
      ctx.imageSmoothingEnabled = this.zoom < 1;
      ctx.drawImage(this.offscreen, this.offset[0], this.offset[1], w * this.zoom, h * this.zoom);
      const overlayOn = this.root.querySelector("[data-overlay-toggle]");
      if (this.overlayImage && this.overlayImage.complete && overlayOn && overlayOn.checked) {
        ctx.globalAlpha = Number(this.root.querySelector("[data-overlay-opacity]").value) / 100;
        ctx.drawImage(this.overlayImage, this.offset[0], this.offset[1], w * this.zoom, h * this.zoom);
        ctx.globalAlpha = 1;
      }
      this.root.dataset.zoom = this.zoom.toFixed(3);
      if (this.frame.meta.scale > 1 && this.zoom * this.frame.meta.scale > 1.5 && !this.fullResolution) {
        // Zoomed in past the downsampled pixels: fetch this series at full resolution.
        this.fullResolution = true;
        this.setIndex(this.index, true);
      }
      this.info("zoom", Math.round(this.zoom * 100) + "%");
      this.annotationsHere().forEach((a) => this.drawShape(a, a.id === this.selected ? "#ffeb3b" : "#00e5ff"));
      if (this.pending) this.drawShape(this.pending, "#ff9800");
      (this.measurements.get(this.key) || []).forEach((m) => this.drawMeasure(m));
      if (this.drag && this.drag.measure) this.drawMeasure(this.drag.measure);
    }

    drawShape(a, colour) {
      const ctx = this.ctx;
      const [cx, cy] = this.toScreen(a.x, a.y);
      const rw = (a.width * this.zoom) / 2, rh = (a.height * this.zoom) / 2;
      ctx.save();
      ctx.strokeStyle = colour;
      ctx.lineWidth = 2;
      ctx.translate(cx, cy);
      ctx.rotate(((a.angle || 0) * Math.PI) / 180);
      ctx.beginPath();
      if (a.shape === "ellipse") ctx.ellipse(0, 0, rw, rh, 0, 0, 2 * Math.PI);
      else ctx.rect(-rw, -rh, 2 * rw, 2 * rh);
      ctx.stroke();
      ctx.restore();
      if (a.label_name) {
        ctx.fillStyle = colour;
        ctx.font = "13px sans-serif";
        ctx.fillText(a.label_name, cx - rw, cy - rh - 4);
      }
    }

    distance(m) {
      const spacing = this.frame.meta.pixel_spacing; // [row, column] mm
      const dx = m[2] - m[0], dy = m[3] - m[1];
      if (!spacing) return Math.hypot(dx, dy).toFixed(1) + " " + this.text.no_spacing;
      return Math.hypot(dx * spacing[1], dy * spacing[0]).toFixed(1) + " mm";
    }

    drawMeasure(m) {
      const ctx = this.ctx;
      const a = this.toScreen(m[0], m[1]), b = this.toScreen(m[2], m[3]);
      ctx.strokeStyle = "#76ff03";
      ctx.fillStyle = "#76ff03";
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.moveTo(a[0], a[1]);
      ctx.lineTo(b[0], b[1]);
      ctx.stroke();
      ctx.font = "13px sans-serif";
      ctx.fillText(this.distance(m), b[0] + 6, b[1] - 6);
    }

    pixelInfo(sx, sy) {
      if (!this.frame) return;
      const meta = this.frame.meta;
      const [ix, iy] = this.toImage(sx, sy);
      const px = Math.floor(ix / meta.scale), py = Math.floor(iy / meta.scale);
      if (px < 0 || py < 0 || px >= meta.columns || py >= meta.rows) { this.info("pixel", ""); return; }
      const at = py * meta.columns + px;
      let text = "x " + Math.floor(ix) + " y " + Math.floor(iy) + " · ";
      if (meta.dtype === "rgb8") {
        text += "RGB " + this.frame.data[at * 3] + "," + this.frame.data[at * 3 + 1] + "," + this.frame.data[at * 3 + 2];
      } else {
        const value = this.frame.data[at];
        const shown = Number.isInteger(value) ? value : value.toFixed(2);
        if (meta.rescale_type === "HU") {
          const stored = (value - meta.rescale_intercept) / (meta.rescale_slope || 1);
          text += this.text.value + " " + Math.round(stored) + " · " + shown + " HU";
        } else {
          text += this.text.value + " " + shown;
        }
      }
      this.info("pixel", text);
      this.root.dataset.pixel = text;
    }

    // -- overlays -----------------------------------------------------------------------------------
    async loadOverlays(item) {
      const box = this.root.querySelector(".viewer-overlays");
      let list = this.overlays.get(item.instance.id);
      if (!list) {
        try {
          const response = await fetch(this.config.urls.overlays + "/" + item.instance.id + "/overlays/", { credentials: "same-origin" });
          list = response.ok ? (await response.json()).results : [];
        } catch (e) { list = []; }
        this.overlays.set(item.instance.id, list);
      }
      const here = list.filter((o) => o.frame === item.frame);
      box.hidden = !here.length;
      const select = box.querySelector("[data-overlay-select]");
      const previous = select.value;
      select.innerHTML = "";
      here.forEach((o) => {
        const option = document.createElement("option");
        option.value = o.url;
        option.textContent = [o.kind, o.label, o.source].filter(Boolean).join(" · ");
        select.appendChild(option);
      });
      if (here.some((o) => o.url === previous)) select.value = previous;
      this.setOverlay(here.length ? select.value : null);
    }

    setOverlay(url) {
      if (!url) { this.overlayImage = null; this.draw(); return; }
      if (this.overlayImage && this.overlayImage.dataset.url === url) { this.draw(); return; }
      const image = new Image();
      image.dataset.url = url;
      image.onload = () => this.draw();
      image.src = url;
      this.overlayImage = image;
    }

    // -- annotations -------------------------------------------------------------------------------
    annotationsHere() {
      const item = this.stack[this.index];
      if (!item) return [];
      return this.annotations.filter((a) => a.instance === item.instance.id && a.frame === item.frame);
    }

    async loadAnnotations() {
      const url = this.config.urls.annotations + "?study=" + this.config.study + "&page_size=500";
      try {
        const response = await fetch(url, { credentials: "same-origin" });
        if (!response.ok) return;
        this.annotations = (await response.json()).results;
      } catch (e) { return; }
      this.listAnnotations();
      this.draw();
    }

    listAnnotations() {
      const list = this.root.querySelector(".viewer-annotations");
      if (!list) return;
      list.innerHTML = "";
      const here = this.annotationsHere();
      this.root.dataset.annotations = String(here.length);
      if (!here.length) {
        const empty = document.createElement("li");
        empty.className = "muted";
        empty.textContent = this.text.none;
        list.appendChild(empty);
      }
      here.forEach((a) => {
        const li = document.createElement("li");
        li.className = "annotation" + (a.id === this.selected ? " selected" : "");
        li.dataset.id = a.id;
        const title = document.createElement("strong");
        title.textContent = a.label_name;
        li.appendChild(title);
        const by = document.createElement("span");
        by.className = "muted";
        by.textContent = " " + format(this.text.by, { name: a.author_name });
        li.appendChild(by);
        if (a.comment) {
          const comment = document.createElement("div");
          comment.textContent = a.comment;
          li.appendChild(comment);
        }
        li.addEventListener("click", () => { this.selected = a.id; this.listAnnotations(); this.draw(); });
        if (a.can_edit) {
          const edit = document.createElement("button");
          edit.type = "button";
          edit.textContent = this.text.edit;
          edit.dataset.annotationEdit = a.id;
          edit.addEventListener("click", (e) => { e.stopPropagation(); this.openForm(a); });
          const remove = document.createElement("button");
          remove.type = "button";
          remove.textContent = this.text.delete;
          remove.dataset.annotationDelete = a.id;
          remove.addEventListener("click", (e) => { e.stopPropagation(); this.deleteAnnotation(a); });
          li.appendChild(edit);
          li.appendChild(remove);
        }
        list.appendChild(li);
      });
    }

    csrf() {
      const input = this.root.querySelector("input[name=csrfmiddlewaretoken]");
      return input ? input.value : "";
    }

    openForm(annotation) {
      const form = this.root.querySelector(".annotation-form");
      if (!form) return;
      form.hidden = false;
      form.elements.id.value = annotation.id || "";
      if (annotation.label) form.elements.label.value = annotation.label;
      form.elements.angle.value = Math.round(annotation.angle || 0);
      form.elements.comment.value = annotation.comment || "";
      form.querySelector("[data-annotation-error]").textContent = "";
      form.elements.label.focus();
    }

    closeForm() {
      const form = this.root.querySelector(".annotation-form");
      if (form) form.hidden = true;
      this.pending = null;
      this.draw();
    }

    async saveAnnotation(form) {
      const id = form.elements.id.value;
      const body = {
        label: form.elements.label.value,
        comment: form.elements.comment.value,
        angle: Number(form.elements.angle.value) || 0,
      };
      let url = this.config.urls.annotations, method = "POST";
      if (id) {
        url += id + "/";
        method = "PATCH";
      } else {
        const p = this.pending;
        if (!p) return;
        Object.assign(body, { instance: p.instance, frame: p.frame, shape: p.shape, x: p.x, y: p.y, width: p.width, height: p.height });
      }
      const response = await fetch(url, {
        method: method,
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": this.csrf(), Accept: "application/json" },
        body: JSON.stringify(body),
      });
      if (!response.ok) {
        let message = response.statusText;
        try { message = (await response.json()).error.message; } catch (e) { /* not JSON */ }
        form.querySelector("[data-annotation-error]").textContent = message;
        return;
      }
      const saved = await response.json();
      this.selected = saved.id;
      this.closeForm();
      this.status(this.text.saved);
      setTimeout(() => { if (this.root.querySelector("[data-info=status]").textContent === this.text.saved) this.status(""); }, 2000);
      await this.loadAnnotations();
    }

    async deleteAnnotation(a) {
      if (!window.confirm(this.text.confirm_delete)) return;
      const response = await fetch(this.config.urls.annotations + a.id + "/", {
        method: "DELETE",
        credentials: "same-origin",
        headers: { "X-CSRFToken": this.csrf(), Accept: "application/json" },
      });
      if (response.ok) await this.loadAnnotations();
    }

    // -- input ---------------------------------------------------------------------------------------
    setTool(tool) {
      this.tool = tool;
      this.root.querySelectorAll("[data-tool]").forEach((b) => b.classList.toggle("active", b.dataset.tool === tool));
      this.root.dataset.tool = tool;
    }

    point(event) {
      const rect = this.canvas.getBoundingClientRect();
      return [(event.clientX - rect.left) * (this.canvas.width / rect.width), (event.clientY - rect.top) * (this.canvas.height / rect.height)];
    }

    bind() {
      const root = this.root, canvas = this.canvas;
      canvas.addEventListener("contextmenu", (e) => e.preventDefault());
      canvas.addEventListener("wheel", (e) => {
        e.preventDefault();
        const [sx, sy] = this.point(e);
        const zoom = e.ctrlKey || (this.stack.length <= 1 && !e.shiftKey);
        if (zoom) this.zoomAt(e.deltaY < 0 ? 1.15 : 1 / 1.15, sx, sy);
        else this.setIndex(this.index + (e.deltaY > 0 ? 1 : -1));
      }, { passive: false });
      canvas.addEventListener("mousedown", (e) => {
        if (!this.frame) return;
        root.focus({ preventScroll: true });
        const start = this.point(e);
        const image = this.toImage(start[0], start[1]);
        if (e.button === 2) {
          this.drag = { kind: "window", start: start, window: this.window.slice() };
        } else if (e.button === 0 && this.tool === "pan") {
          this.drag = { kind: "pan", start: start, offset: this.offset.slice() };
        } else if (e.button === 0 && this.tool === "measure") {
          this.drag = { kind: "measure", measure: [image[0], image[1], image[0], image[1]] };
        } else if (e.button === 0 && (this.tool === "rect" || this.tool === "ellipse")) {
          this.drag = { kind: "shape", image: image };
        }
        e.preventDefault();
      });
      window.addEventListener("mousemove", (e) => {
        const p = this.point(e);
        if (e.target === canvas) this.pixelInfo(p[0], p[1]);
        const drag = this.drag;
        if (!drag) return;
        if (drag.kind === "window") {
          const range = Math.max(1, this.frame.meta.max - this.frame.meta.min);
          const k = Math.max(range / 512, 0.05);
          this.setWindow(drag.window[0] - (p[1] - drag.start[1]) * k, drag.window[1] + (p[0] - drag.start[0]) * k);
        } else if (drag.kind === "pan") {
          this.offset = [drag.offset[0] + p[0] - drag.start[0], drag.offset[1] + p[1] - drag.start[1]];
          this.draw();
        } else if (drag.kind === "measure") {
          const image = this.toImage(p[0], p[1]);
          drag.measure[2] = image[0];
          drag.measure[3] = image[1];
          this.draw();
        } else if (drag.kind === "shape") {
          const b = this.toImage(p[0], p[1]), a = drag.image, item = this.stack[this.index];
          this.pending = {
            instance: item.instance.id, frame: item.frame, shape: this.tool, angle: 0,
            x: (a[0] + b[0]) / 2, y: (a[1] + b[1]) / 2, width: Math.abs(b[0] - a[0]), height: Math.abs(b[1] - a[1]),
          };
          this.draw();
        }
      });
      window.addEventListener("mouseup", () => {
        const drag = this.drag;
        this.drag = null;
        if (!drag) return;
        if (drag.kind === "measure") {
          const m = drag.measure;
          if (Math.hypot(m[2] - m[0], m[3] - m[1]) > 1) {
            const list = this.measurements.get(this.key) || [];
            list.push(m);
            this.measurements.set(this.key, list);
            this.root.dataset.measurement = this.distance(m);
          }
          this.draw();
        } else if (drag.kind === "shape") {
          if (this.pending && this.pending.width > 2 && this.pending.height > 2) this.openForm({});
          else this.pending = null;
          this.draw();
        }
      });
      root.addEventListener("keydown", (e) => this.key_(e));
      root.querySelectorAll("[data-tool]").forEach((b) => b.addEventListener("click", () => this.setTool(b.dataset.tool)));
      root.querySelectorAll("[data-action]").forEach((b) => b.addEventListener("click", () => this.action(b.dataset.action)));
      root.querySelector("[data-preset]").addEventListener("change", (e) => this.preset(e.target.value));
      this.slider.addEventListener("input", () => this.setIndex(Number(this.slider.value)));
      root.querySelectorAll(".series-thumb").forEach((b) => b.addEventListener("click", () => this.showSeries(Number(b.dataset.series))));
      const compare = root.querySelector("[data-compare]");
      if (compare) compare.addEventListener("change", () => {
        if (compare.value) window.location.href = this.config.urls.compare + "/" + compare.value + "/";
      });
      root.querySelector("[data-overlay-toggle]").addEventListener("change", () => this.draw());
      root.querySelector("[data-overlay-opacity]").addEventListener("input", () => this.draw());
      root.querySelector("[data-overlay-select]").addEventListener("change", (e) => this.setOverlay(e.target.value));
      const form = root.querySelector(".annotation-form");
      if (form) {
        form.addEventListener("submit", (e) => { e.preventDefault(); this.saveAnnotation(form); });
        form.querySelector("[data-annotation-cancel]").addEventListener("click", () => this.closeForm());
        form.elements.angle.addEventListener("input", () => {
          if (this.pending) { this.pending.angle = Number(form.elements.angle.value) || 0; this.draw(); }
        });
      }
      window.addEventListener("resize", () => this.resize());
    }

    action(name) {
      if (name === "invert") { this.invert = !this.invert; this.repaint(); this.notify("window"); }
      else if (name === "fit") this.fit();
      else if (name === "actual") this.actualSize();
      else if (name === "reset") this.reset();
      else if (name === "help") {
        const help = this.root.querySelector(".viewer-help");
        help.hidden = !help.hidden;
      }
    }

    key_(e) {
      if (e.target.closest("form, select, input, textarea")) return;
      const k = e.key;
      const c = this.window ? this.window[0] : 0, w = this.window ? this.window[1] : 1;
      const step = this.frame ? Math.max(1, (this.frame.meta.max - this.frame.meta.min) / 100) : 1;
      let handled = true;
      if (e.shiftKey && k === "ArrowLeft") this.setWindow(c, w - step);
      else if (e.shiftKey && k === "ArrowRight") this.setWindow(c, w + step);
      else if (e.shiftKey && k === "ArrowUp") this.setWindow(c + step, w);
      else if (e.shiftKey && k === "ArrowDown") this.setWindow(c - step, w);
      else if (k === "ArrowDown" || k === "ArrowRight") this.setIndex(this.index + 1);
      else if (k === "ArrowUp" || k === "ArrowLeft") this.setIndex(this.index - 1);
      else if (k === "PageDown") this.setIndex(this.index + 10);
      else if (k === "PageUp") this.setIndex(this.index - 10);
      else if (k === "Home") this.setIndex(0);
      else if (k === "End") this.setIndex(this.stack.length - 1);
      else if (k === "+" || k === "=") this.zoomAt(1.25, this.canvas.width / 2, this.canvas.height / 2);
      else if (k === "-") this.zoomAt(0.8, this.canvas.width / 2, this.canvas.height / 2);
      else if (PRESET_KEYS[k]) this.preset(PRESET_KEYS[k]);
      else if (k === "i" || k === "I") this.action("invert");
      else if (k === "f" || k === "F") this.fit();
      else if (k === "1") this.actualSize();
      else if (k === "0") this.reset();
      else if (k === "p" || k === "P") this.setTool("pan");
      else if (k === "m" || k === "M") this.setTool("measure");
      else if ((k === "r" || k === "R") && this.config.can_annotate) this.setTool("rect");
      else if ((k === "e" || k === "E") && this.config.can_annotate) this.setTool("ellipse");
      else if (k === "h" || k === "H" || k === "?") this.action("help");
      else if (k === "Escape") {
        this.root.querySelector(".viewer-help").hidden = true;
        this.measurements.delete(this.key);
        this.closeForm();
      } else handled = false;
      if (handled) e.preventDefault();
    }
  }

  // --- comparison: linked window and synchronised scrolling --------------------------------------
  function link(group) {
    const page = document.querySelector(".viewer-page") || document;
    const linkWindow = page.querySelector("[data-link-window]");
    const linkScroll = page.querySelector("[data-link-scroll]");
    group.forEach((viewer) => viewer.listeners.push(function (source, kind) {
      group.forEach((other) => {
        if (other === source) return;
        if (kind === "window" && (!linkWindow || linkWindow.checked) && source.window) {
          other.invert = source.invert;
          other.root.querySelector("[data-preset]").value = source.root.querySelector("[data-preset]").value;
          if (other.frame) other.setWindow(source.window[0], source.window[1], true);
          else other.window = source.window.slice();
        } else if (kind === "scroll" && (!linkScroll || linkScroll.checked) && other.stack.length) {
          const fraction = source.stack.length > 1 ? source.index / (source.stack.length - 1) : 0;
          other.setIndex(Math.round(fraction * (other.stack.length - 1)), true);
        }
      });
    }));
  }

  function start() {
    document.querySelectorAll(".mis-viewer").forEach((root) => viewers.push(new Viewer(root)));
    document.querySelectorAll(".viewer-compare").forEach((box) => {
      link(viewers.filter((v) => box.contains(v.root)));
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
