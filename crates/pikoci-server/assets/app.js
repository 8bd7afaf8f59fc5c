// PikoCI's web UI: the little the pages cannot do as HTML.
// - Actions: a <form data-api="URL"> is sent to the JSON API as JSON (the session cookie is
//   the credential; the API checks the Origin), then `data-then` says what follows.
// - The pipeline graph: pan, zoom, and the highlight of a job's upstream and downstream path.
// - Build pages: step logs loaded when opened, links to lines, times, following a running
//   build over Server-Sent Events.
// - Live pages: their `data-live` part follows the server over Server-Sent Events.
"use strict";

(function () {
  // ---- toasts ----
  function toast(message, kind) {
    const box = document.getElementById("toasts");
    if (!box) return;
    const item = document.createElement("div");
    item.className = "toast" + (kind ? " " + kind : "");
    item.textContent = message;
    box.appendChild(item);
    setTimeout(() => item.remove(), kind === "error" ? 12000 : 4000);
  }

  // ---- actions ----
  // A form's fields as the API's JSON: `a.b` names nest, `data-type` converts, empty fields
  // marked `data-optional` are left out.
  function formJson(form) {
    const body = {};
    for (const field of form.elements) {
      if (!field.name || field.disabled || field.type === "submit" || field.type === "button") continue;
      let value;
      const type = field.dataset.type;
      if (field.type === "checkbox") value = field.checked;
      // Several options: one text, comma-separated, as the API takes them.
      else if (field.multiple) value = Array.from(field.selectedOptions, (o) => o.value).join(",");
      else {
        if (field.value === "" && field.hasAttribute("data-optional")) continue;
        value = convert(field.value, type);
      }
      const path = field.name.split(".");
      let at = body;
      for (const key of path.slice(0, -1)) at = at[key] = at[key] || {};
      at[path[path.length - 1]] = value;
    }
    return body;
  }
  function convert(value, type) {
    if (type === "number" && value !== "") return Number(value);
    if (type === "bool") return value === "true";
    return value;
  }

  document.addEventListener("submit", async (event) => {
    // The log search runs as it is typed; Enter must not reload the page.
    if (event.target.closest("form.log-find")) { event.preventDefault(); return; }
    const form = event.target.closest("form[data-api]");
    if (!form) return;
    event.preventDefault();
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => (b.disabled = true));
    try {
      // `{field}` in the URL takes the field's value (and leaves the body).
      const body = formJson(form);
      let refused = null;
      const url = form.dataset.api.replace(/\{(\w+)\}/g, (_, name) => {
        const value = body[name] == null ? "" : String(body[name]);
        delete body[name];
        if (value === "" || value === "." || value === "..") refused = name;
        return encodeURIComponent(value);
      });
      if (refused) { toast("\"" + refused + "\" cannot be empty, . or ..", "error"); return; }
      const method = form.dataset.method || "POST";
      const response = await fetch(url, {
        method: method,
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: method === "DELETE" ? undefined : JSON.stringify(body),
        credentials: "same-origin",
      });
      let json = null;
      try { json = await response.json(); } catch (_) { /* not JSON */ }
      if (!response.ok) {
        if (response.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search); return; }
        toast((json && json.error && json.error.message) || response.status + " " + response.statusText, "error");
        return;
      }
      const then = form.dataset.then || "reload";
      if (then.startsWith("show:")) {
        // A value shown once (a new API token): into the box, which is shown.
        const box = document.querySelector(then.slice(5));
        const field = box && box.querySelector("[data-token]");
        if (field) { field.value = json.data.token; box.hidden = false; field.select(); }
        form.reset();
      } else if (then === "follow") {
        location.href = json.data.url;
      } else if (then.startsWith("go:")) {
        const number = json && json.data && json.data.number;
        location.href = then.slice(3).replace("{number}", encodeURIComponent(number || ""));
      } else {
        location.reload();
      }
    } catch (error) {
      toast("The server could not be reached: " + error.message, "error");
    } finally {
      buttons.forEach((b) => (b.disabled = false));
    }
  });

  document.addEventListener("click", async (event) => {
    const logout = event.target.closest("[data-logout]");
    if (logout) {
      try {
        const response = await fetch("/api/v1/logout", { method: "POST", credentials: "same-origin" });
        // 401: the session had ended already.
        if (!response.ok && response.status !== 401) { toast("Logging out failed (" + response.status + ").", "error"); return; }
      } catch (error) { toast("The server could not be reached: " + error.message, "error"); return; }
      location.href = "/login";
      return;
    }
    const copy = event.target.closest("[data-copy]");
    if (copy) {
      const field = document.querySelector(copy.dataset.copy);
      if (!field) return;
      if (navigator.clipboard) {
        navigator.clipboard.writeText(field.value).then(() => toast("Copied."), () => { field.select(); toast("Press Ctrl+C to copy."); });
      } else {
        // Plain http: no clipboard API; the text is selected for the user to copy.
        field.select();
        toast("Press Ctrl+C to copy.");
      }
    }
  });

  function lostSession() {
    location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search + location.hash);
  }
  document.addEventListener("htmx:responseError", (event) => {
    if (event.detail.xhr.status === 401) { lostSession(); return; }
    toast("The page could not be updated (" + event.detail.xhr.status + ").", "error");
  });
  // A part of a page, asked for by a script: the server answers 401 rather than the login page.
  function part(url) {
    return fetch(url, { credentials: "same-origin", headers: { "HX-Request": "true" } });
  }

  // ---- the pipeline graph ----
  // The drag in progress, of whichever graph is on the page (the graph is replaced when its
  // part of the page refreshes; these two listeners stay).
  let graphDrag = null;
  window.addEventListener("pointermove", (event) => { if (graphDrag) graphDrag.move(event); });
  window.addEventListener("pointerup", () => { if (graphDrag) { graphDrag.end(); graphDrag = null; } });

  function setUpGraph(box) {
    const svg = box.querySelector("svg.graph");
    if (!svg || svg.dataset.ready) return;
    svg.dataset.ready = "1";
    const full = svg.viewBox.baseVal;
    const natural = { x: full.x, y: full.y, w: full.width, h: full.height };
    svg.removeAttribute("width");
    svg.removeAttribute("height");
    let view = Object.assign({}, natural);
    const saved = sessionStorage.getItem("pikoci-graph:" + location.pathname);
    if (saved) { try { view = JSON.parse(saved); } catch (_) { /* the natural view */ } }
    function apply() {
      svg.setAttribute("viewBox", [view.x, view.y, view.w, view.h].join(" "));
      sessionStorage.setItem("pikoci-graph:" + location.pathname, JSON.stringify(view));
    }
    function zoom(factor, cx, cy) {
      const w = Math.min(Math.max(view.w * factor, 100), natural.w * 4 + 400);
      const f = w / view.w;
      view.x = cx - (cx - view.x) * f; view.y = cy - (cy - view.y) * f;
      view.w = w; view.h = view.h * f; apply();
    }
    // The whole graph, centred, never drawn larger than its size.
    function fit() {
      const ratio = box.clientWidth / Math.max(box.clientHeight, 1);
      const w = Math.max(natural.w, natural.h * ratio, box.clientWidth), h = w / ratio;
      view = { x: natural.x - (w - natural.w) / 2, y: natural.y - (h - natural.h) / 2, w: w, h: h };
      apply();
    }
    if (!saved) fit(); else apply();
    box.addEventListener("wheel", (event) => {
      event.preventDefault();
      const rect = svg.getBoundingClientRect();
      const cx = view.x + ((event.clientX - rect.left) / rect.width) * view.w;
      const cy = view.y + ((event.clientY - rect.top) / rect.height) * view.h;
      zoom(event.deltaY > 0 ? 1.15 : 1 / 1.15, cx, cy);
    }, { passive: false });
    box.addEventListener("pointerdown", (event) => {
      if (event.target.closest("button, a")) return;
      const start = { x: event.clientX, y: event.clientY, view: Object.assign({}, view) };
      box.classList.add("dragging");
      window.pikociGraphBusy = true;
      graphDrag = {
        move(moved) {
          const rect = svg.getBoundingClientRect();
          view.x = start.view.x - ((moved.clientX - start.x) / rect.width) * view.w;
          view.y = start.view.y - ((moved.clientY - start.y) / rect.height) * view.h;
          apply();
        },
        end() { box.classList.remove("dragging"); window.pikociGraphBusy = false; },
      };
    });
    box.addEventListener("click", (event) => {
      const button = event.target.closest("[data-zoom]");
      if (!button) return;
      const how = button.dataset.zoom;
      if (how === "fit") fit(); else zoom(how === "in" ? 1 / 1.3 : 1.3, view.x + view.w / 2, view.y + view.h / 2);
    });
    box.addEventListener("keydown", (event) => {
      if (event.target !== box) return;
      const step = view.w / 10;
      const keys = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
      if (keys[event.key]) { view.x += keys[event.key][0]; view.y += keys[event.key][1]; apply(); event.preventDefault(); }
      else if (event.key === "+" || event.key === "=") zoom(1 / 1.3, view.x + view.w / 2, view.y + view.h / 2);
      else if (event.key === "-") zoom(1.3, view.x + view.w / 2, view.y + view.h / 2);
      else if (event.key === "0") fit();
    });
    // Highlight: the node, everything upstream of it and everything downstream.
    const edges = Array.from(svg.querySelectorAll(".edge"), (e) => ({ el: e, from: e.dataset.from, to: e.dataset.to }));
    function highlight(node) {
      svg.querySelectorAll(".lit").forEach((el) => el.classList.remove("lit"));
      if (!node) { svg.classList.remove("highlight"); return; }
      const lit = new Set([node.dataset.node]);
      for (const [near, far] of [["to", "from"], ["from", "to"]]) {
        const queue = [node.dataset.node];
        const seen = new Set(queue);
        while (queue.length) {
          const at = queue.shift();
          for (const edge of edges) {
            if (edge[near] !== at) continue;
            edge.el.classList.add("lit");
            if (!seen.has(edge[far])) { seen.add(edge[far]); lit.add(edge[far]); queue.push(edge[far]); }
          }
        }
      }
      svg.querySelectorAll(".node").forEach((el) => { if (lit.has(el.dataset.node)) el.classList.add("lit"); });
      svg.classList.add("highlight");
    }
    svg.addEventListener("pointerover", (event) => highlight(event.target.closest(".node")));
    svg.addEventListener("pointerleave", () => highlight(null));
    svg.addEventListener("focusin", (event) => highlight(event.target.closest(".node")));
    svg.addEventListener("focusout", () => highlight(null));
  }

  // ---- build pages ----
  function stepOf(el) { return el.closest("details.step"); }

  async function loadLog(step, query) {
    const url = step.dataset.log;
    if (!url) return null;
    const box = step.querySelector(".log");
    // Only the newest request of a step writes its log (a line link and the step's opening
    // may both ask).
    const mine = (Number(step.dataset.asked || 0) + 1);
    step.dataset.asked = String(mine);
    const response = await part(url + (query ? "&" + query : ""));
    if (response.status === 401) { lostSession(); return null; }
    if (!response.ok) { toast("The log could not be read (" + response.status + ").", "error"); return null; }
    const html = await response.text();
    if (String(mine) !== step.dataset.asked) return null;
    box.innerHTML = html;
    step.dataset.loaded = "1";
    if (window.htmx) htmx.process(box);
    return box;
  }

  function lastLine(step) {
    const pages = step.querySelectorAll(".log .log-page");
    const last = pages[pages.length - 1];
    return last ? Number(last.dataset.last) : 0;
  }

  async function openStep(step, query) {
    if (!step.open) { step.dataset.opening = "1"; step.open = true; }
    if (!step.dataset.loaded || query) {
      const box = await loadLog(step, query);
      if (box && !query && followOn()) box.scrollTop = box.scrollHeight;
    }
  }

  function followOn() {
    const follow = document.querySelector("[data-follow]");
    return follow && follow.checked;
  }

  async function goToLine(hash) {
    const match = /^#s(\d+)-L(\d+)$/.exec(hash);
    if (!match) return;
    const step = document.getElementById("step-" + match[1]);
    if (!step) return;
    const follow = document.querySelector("[data-follow]");
    if (follow) follow.checked = false;
    await openStep(step, "line=" + match[2]);
    const line = document.getElementById("s" + match[1] + "-L" + match[2]);
    if (line) {
      document.querySelectorAll(".line.target").forEach((l) => l.classList.remove("target"));
      line.classList.add("target");
      line.scrollIntoView({ block: "center" });
    }
  }

  function setUpBuild(build) {
    document.addEventListener("toggle", (event) => {
      const step = event.target;
      if (!step.matches || !step.matches("details.step") || !step.open) return;
      // Opened by a script that loads what it wants itself.
      if (step.dataset.opening) { delete step.dataset.opening; return; }
      openStep(step);
    }, true);
    const linked = /^#s(\d+)-L\d+$/.exec(location.hash);
    build.querySelectorAll("details.step[open]").forEach((step) => {
      if (linked && step.dataset.step === linked[1]) return;
      openStep(step);
    });
    const times = document.querySelector("[data-toggle-times]");
    if (times) {
      times.checked = localStorage.getItem("pikoci-times") === "1";
      build.classList.toggle("show-times", times.checked);
      times.addEventListener("change", () => {
        build.classList.toggle("show-times", times.checked);
        localStorage.setItem("pikoci-times", times.checked ? "1" : "0");
      });
    }
    document.addEventListener("click", (event) => {
      const link = event.target.closest(".log-results a.ln, .log a.ln");
      if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
      event.preventDefault();
      history.replaceState(null, "", link.getAttribute("href"));
      goToLine(link.getAttribute("href"));
    });
    goToLine(location.hash);
    window.addEventListener("hashchange", () => goToLine(location.hash));
    if (build.dataset.running === "true" && build.dataset.events && window.EventSource) follow(build);
  }

  // Following a running build: new lines are appended to the open steps' logs; the step tree
  // and the head are refreshed when the build's status changes.
  function follow(build) {
    const source = new EventSource(build.dataset.events);
    const pending = new Set();
    let timer = null;
    source.addEventListener("log", (event) => {
      let chunk;
      try { chunk = JSON.parse(event.data); } catch (_) { return; }
      if (String(chunk.attempt) !== build.dataset.attempt) return;
      pending.add(String(chunk.step));
      schedule();
    });
    source.addEventListener("status", () => { pending.add("status"); schedule(); });
    source.addEventListener("end", () => { source.close(); pending.add("status"); schedule(); });
    source.addEventListener("error", () => { /* EventSource reconnects by itself */ });
    let busy = false;
    function schedule() { if (!timer && !busy) timer = setTimeout(flush, 400); }
    async function flush() {
      timer = null;
      if (busy) return;
      busy = true;
      try { await flushNow(); } finally {
        busy = false;
        if (pending.size) schedule();
      }
    }
    async function flushNow() {
      const todo = Array.from(pending);
      pending.clear();
      if (todo.includes("status")) await refresh(build);
      for (const index of todo) {
        const step = document.getElementById("step-" + index);
        if (!step || !step.open || !step.dataset.loaded) continue;
        // Only a log shown to its end follows (not one opened at a linked line).
        const pages = step.querySelectorAll(".log .log-page");
        const tail = pages[pages.length - 1];
        if (!tail || tail.dataset.last !== tail.dataset.total) continue;
        const box = step.querySelector(".log");
        const response = await part(step.dataset.log + "&after=" + lastLine(step));
        if (response.status === 401) { lostSession(); return; }
        if (!response.ok) continue;
        const html = await response.text();
        const holder = document.createElement("div");
        holder.innerHTML = html;
        const page = holder.querySelector(".log-page");
        if (!page || !page.querySelector(".line")) continue;
        const empty = box.querySelector(".empty");
        if (empty) empty.remove();
        box.appendChild(page);
        if (followOn()) box.scrollTop = box.scrollHeight;
      }
    }
  }

  // Refreshes the build's head and step rows from the page, keeping the open steps' logs.
  async function refresh(build) {
    const response = await part(location.pathname + location.search);
    if (response.status === 401) { lostSession(); return; }
    if (!response.ok) return;
    const doc = new DOMParser().parseFromString(await response.text(), "text/html");
    const fresh = doc.getElementById("build");
    // A new attempt started: its steps are other steps.
    if (fresh && fresh.dataset.attempt !== build.dataset.attempt) { location.reload(); return; }
    const head = doc.getElementById("build-head");
    if (head) document.getElementById("build-head").replaceWith(head);
    const steps = document.getElementById("steps");
    let previous = null;
    doc.querySelectorAll("details.step").forEach((fresh) => {
      const mine = document.getElementById(fresh.id);
      if (mine) {
        mine.className = fresh.className;
        mine.querySelector("summary").replaceWith(fresh.querySelector("summary"));
        previous = mine;
      } else {
        const node = document.importNode(fresh, true);
        if (previous) previous.after(node); else steps.prepend(node);
        const empty = steps.querySelector(":scope > p.muted");
        if (empty) empty.remove();
        if (window.htmx) htmx.process(node);
        if (node.open) openStep(node);
        previous = node;
      }
    });
    if (fresh && fresh.dataset.running !== "true") {
      build.dataset.running = "false";
      const follow = document.querySelector("[data-follow]");
      if (follow) follow.closest("label").remove();
    }
  }

  // ---- the pipeline editor ----
  // The lines of `before` and `after` as a diff: [" " | "-" | "+", line] in order (the longest
  // common subsequence; files of a few thousand lines at most).
  function lineDiff(before, after) {
    const a = before.split("\n"), b = after.split("\n");
    const n = a.length, m = b.length;
    const width = m + 1;
    const lcs = new Uint32Array((n + 1) * width);
    for (let i = n - 1; i >= 0; i--) {
      for (let j = m - 1; j >= 0; j--) {
        lcs[i * width + j] = a[i] === b[j] ? lcs[(i + 1) * width + j + 1] + 1
          : Math.max(lcs[(i + 1) * width + j], lcs[i * width + j + 1]);
      }
    }
    const out = [];
    let i = 0, j = 0;
    while (i < n && j < m) {
      if (a[i] === b[j]) { out.push([" ", a[i]]); i++; j++; }
      else if (lcs[(i + 1) * width + j] >= lcs[i * width + j + 1]) out.push(["-", a[i++]]);
      else out.push(["+", b[j++]]);
    }
    while (i < n) out.push(["-", a[i++]]);
    while (j < m) out.push(["+", b[j++]]);
    return out;
  }

  function setUpEditor(editor) {
    const source = document.getElementById("source");
    const saved = document.getElementById("saved").value;
    const gutter = editor.querySelector(".gutter");
    const list = document.getElementById("diagnostics");
    const verdict = document.getElementById("verdict");
    const diffBox = document.getElementById("diff");
    const showDiff = document.getElementById("show-diff");
    let marks = new Map(); // line -> "error" | "warning"
    let timer = null, asked = 0;

    function drawGutter() {
      const lines = source.value.split("\n").length;
      const out = [];
      for (let n = 1; n <= lines; n++) {
        const mark = marks.get(n);
        out.push(mark ? '<span class="' + mark + '">' + n + "</span>" : String(n));
      }
      gutter.innerHTML = out.join("\n");
      gutter.scrollTop = source.scrollTop;
    }
    function goToLine(line) {
      const lines = source.value.split("\n");
      let at = 0;
      for (let n = 1; n < line && n <= lines.length; n++) at += lines[n - 1].length + 1;
      source.focus();
      source.setSelectionRange(at, at + (lines[line - 1] || "").length);
      const height = source.scrollHeight / Math.max(lines.length, 1);
      source.scrollTop = Math.max(0, (line - 5) * height);
    }
    function show(validation) {
      marks = new Map();
      list.textContent = "";
      const all = validation.errors.map((d) => ["error", d]).concat(validation.warnings.map((d) => ["warning", d]));
      for (const [kind, d] of all) {
        if (d.line && marks.get(d.line) !== "error") marks.set(d.line, kind);
        const item = document.createElement("li");
        item.className = kind;
        const place = document.createElement(d.line ? "button" : "span");
        place.className = "place";
        place.textContent = d.line ? "line " + d.line + (d.column ? ":" + d.column : "") : kind;
        if (d.line) { place.type = "button"; place.addEventListener("click", () => goToLine(d.line)); }
        item.appendChild(place);
        item.appendChild(document.createTextNode(" " + d.message + (d.help ? " (" + d.help + ")" : "")));
        list.appendChild(item);
      }
      const errors = validation.errors.length, warnings = validation.warnings.length;
      verdict.className = errors ? "bad" : "good";
      verdict.textContent = errors
        ? errors + (errors === 1 ? " error" : " errors")
        : "Valid" + (warnings ? ", " + warnings + (warnings === 1 ? " warning" : " warnings") : "");
      drawGutter();
    }
    async function validate() {
      const mine = ++asked;
      verdict.className = "";
      verdict.textContent = "Checking…";
      const response = await fetch(editor.dataset.validate, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ config: source.value }),
        credentials: "same-origin",
      });
      if (mine !== asked) return; // a newer text was sent meanwhile
      let json = null;
      try { json = await response.json(); } catch (_) { /* not JSON */ }
      if (!response.ok) {
        verdict.className = "bad";
        verdict.textContent = (json && json.error && json.error.message) || "The file could not be checked (" + response.status + ").";
        return;
      }
      show(json.data);
    }
    function drawDiff() {
      if (!showDiff.checked) { diffBox.hidden = true; return; }
      const rows = lineDiff(saved, source.value);
      diffBox.textContent = "";
      if (!rows.some(([op]) => op !== " ")) { diffBox.textContent = "No change from the saved file."; }
      for (const [op, line] of rows) {
        if (op === " ") continue;
        const row = document.createElement("div");
        row.className = op === "+" ? "added" : "removed";
        row.textContent = op + " " + line;
        diffBox.appendChild(row);
      }
      diffBox.hidden = false;
    }
    source.addEventListener("input", () => {
      drawGutter();
      if (showDiff.checked) drawDiff();
      clearTimeout(timer);
      timer = setTimeout(validate, 400);
    });
    source.addEventListener("scroll", () => { gutter.scrollTop = source.scrollTop; });
    source.addEventListener("keydown", (event) => {
      if (event.key === "Tab" && !event.shiftKey && !event.ctrlKey && !event.altKey) {
        // Two spaces, as HCL files are indented; Escape then Tab leaves the field.
        if (source.dataset.escaped) { delete source.dataset.escaped; return; }
        event.preventDefault();
        source.setRangeText("  ", source.selectionStart, source.selectionEnd, "end");
        source.dispatchEvent(new Event("input"));
      } else if (event.key === "Escape") {
        source.dataset.escaped = "1";
      } else if ((event.ctrlKey || event.metaKey) && event.key === "s") {
        event.preventDefault();
        save();
      }
    });
    showDiff.addEventListener("change", drawDiff);
    async function save() {
      const response = await fetch(editor.dataset.save, {
        method: "PUT",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ config: source.value }),
        credentials: "same-origin",
      });
      let json = null;
      try { json = await response.json(); } catch (_) { /* not JSON */ }
      if (response.ok) { location.href = editor.dataset.done; return; }
      if (json && json.error && json.error.code === "invalid_pipeline") {
        const details = json.error.details || [];
        show({ errors: details.filter((d) => d.severity === "error"), warnings: details.filter((d) => d.severity !== "error") });
      }
      toast((json && json.error && json.error.message) || "Saving failed (" + response.status + ").", "error");
    }
    document.getElementById("save").addEventListener("click", save);
    drawGutter();
    validate();
  }

  // ---- live pages ----
  // The part of a page marked `data-live` follows the server over Server-Sent Events
  // (`GET /live`) while the tab is visible: each `update` event is the part's new HTML. An
  // update waits while the visitor works in the part (see `busy`), and `gone` (the session
  // ended, the page was deleted) loads the page again.
  function setUpLive(box) {
    let source = null, pending = null, waiting = null, retry = null, backoff = 2000, keyAt = 0;
    // keyup too: a Tab into the part goes down outside it.
    box.addEventListener("keydown", () => { keyAt = Date.now(); });
    box.addEventListener("keyup", () => { keyAt = Date.now(); });
    // Busy: a field of the part in use, the keyboard used in the part in the last 10 s (moving
    // through its links and buttons, or the graph), the pointer on the graph, a drag. A button
    // or link clicked keeps the focus, and blocks nothing.
    function busy() {
      const focus = document.activeElement;
      if (focus && box.contains(focus)) {
        if (focus.matches("input, select, textarea, [contenteditable]")) return true;
        if (Date.now() - keyAt < 10000) return true;
      }
      return window.pikociGraphBusy || box.querySelector(".graph-box:hover") !== null;
    }
    function apply() {
      waiting = null;
      if (pending === null) return;
      if (busy()) { waiting = setTimeout(apply, 500); return; }
      box.innerHTML = pending;
      pending = null;
      if (window.htmx) htmx.process(box);
      box.querySelectorAll(".graph-box").forEach(setUpGraph);
    }
    function open() {
      if (source || document.hidden) return;
      clearTimeout(retry);
      source = new EventSource("/live?page=" + encodeURIComponent(location.pathname + location.search) +
        "&hash=" + encodeURIComponent(box.dataset.liveHash || ""));
      source.addEventListener("update", (event) => {
        pending = event.data;
        box.dataset.liveHash = event.lastEventId;
        if (waiting === null) apply();
      });
      source.addEventListener("open", () => { backoff = 2000; });
      // The browser retries a dropped connection by itself, but not an answer that is not a
      // stream (a proxy's 502 while the server restarts): open again, later and later.
      source.addEventListener("error", () => {
        if (!source || source.readyState !== EventSource.CLOSED) return;
        source = null;
        retry = setTimeout(open, backoff);
        backoff = Math.min(backoff * 2, 60000);
      });
      source.addEventListener("gone", () => { close(); location.reload(); });
    }
    function close() { clearTimeout(retry); if (source) { source.close(); source = null; } }
    document.addEventListener("visibilitychange", () => (document.hidden ? close() : open()));
    if (!document.hidden) open();
  }

  function start() {
    document.querySelectorAll("[data-live]").forEach(setUpLive);
    document.querySelectorAll(".graph-box").forEach(setUpGraph);
    const build = document.getElementById("build");
    if (build) setUpBuild(build);
    const editor = document.getElementById("editor");
    if (editor) setUpEditor(editor);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
