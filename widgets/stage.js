// The stage's front end: it draws the data stage.py computed from a trace and never decides
// anything about KVM.  Stepping replays the trace's diffs in the page, so it paints at once,
// needs no kernel and works the same in JupyterLab, an exported page and a slide.

const GLYPH = { written: "\u270e", changed: "\u0394", read: "\u2022", pointer: "\u25c0" };
const SPEEDS = [["slow", 1500], ["normal", 700], ["fast", 300]];

function esc(value) {
  return String(value).replace(/[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function h(tag, attrs = {}, html = "") {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  el.innerHTML = html;
  return el;
}

// The value of every path after each step (index 0: before the first step).
function replay(data) {
  const first = data.paths.map((_, p) => (p < data.initial.length ? data.initial[p] : ""));
  const out = [first];
  for (const step of data.steps) {
    const values = out[out.length - 1].slice();
    for (const [p, value] of step.diff) values[p] = value;
    out.push(values);
  }
  return out;
}

function headerHtml(d) {
  const back = d.back_to_l1 ? " (L2 ran, then its exit took the vCPU back to L1)" : "";
  const text = `${d.isa.toUpperCase()} \u00b7 ${d.variant} \u00b7 scenario ${d.scenario}: ${d.description}` +
    ` \u2192 ${d.outcome}${back} in ${d.steps.length} steps`;
  return `<span title="${esc(text)}"><b>${esc(d.isa.toUpperCase())} \u00b7 ${esc(d.variant)} \u00b7 ` +
    `${esc(d.scenario)}</b>: ${esc(d.description)} \u2192 <b>${esc(d.outcome)}</b>${esc(back)} ` +
    `in ${d.steps.length} steps</span>`;
}

function cardHtml(d, i) {
  const s = d.steps[i], n = d.steps.length;
  const label = s.label ? ` <span class="nvs-fail">\u2192 ${esc(s.label)}</span>` : "";
  const manual = s.manual ? `<span class="nvs-minor"> \u00b7 ${esc(s.manual)}</span>` : "";
  const notes = s.notes.map((t) => `<div class="nvs-note">\u2192 ${esc(t)}</div>`).join("");
  const end = i === n - 1
    ? `<div class="nvs-note"><b>Outcome: ${esc(d.outcome)}${d.failure ? ` (${esc(d.failure)})` : ""}</b></div>` : "";
  const tip = `${s.id}${s.manual ? " \u00b7 " + s.manual : ""}`;
  return `<div class="nvs-title" data-step="${i}" data-step-id="${esc(s.id)}" title="${esc(tip)}">Step ${i + 1}/${n}: ` +
    `${esc(s.title)}${label}</div>` +
    `<div class="nvs-meta"><span class="nvs-phase">${esc(s.phase)} ${esc(s.phase_title)}</span> \u00b7 ` +
    `<a href="${esc(s.url)}" target="_blank" rel="noopener"><code>${esc(s.function)}()</code></a> in ` +
    `${esc(s.file)} @ ${esc(d.commit)}${manual}<span class="nvs-minor"> \u00b7 id <code>${esc(s.id)}</code></span></div>` +
    `<div class="nvs-why"><i>Why here:</i> ${esc(s.reason)}</div>${notes}${end}`;
}

// The rows on show: the lesson's focus, the rows the trace writes, or every row.
function shownRows(d, showAll) {
  const pick = (row) => showAll || (d.focused ? row.focus : row.default);
  const groups = d.table.groups.map((g) => ({ ...g, rows: g.rows.filter(pick) })).filter((g) => g.rows.length);
  const vcpu = d.vcpu.filter((r) => showAll || !d.focused || r.focus);
  return { groups, vcpu };
}

// The state tables, built once per trace and per "every field"; each step only refills cells.
function buildState(box, d, showAll) {
  const { groups, vcpu } = shownRows(d, showAll);
  const cols = d.table.columns.map((_, c) => groups.some((g) => g.rows.some((r) => r.cells[c] >= 0)));
  const cells = [];           // [td, path, column]
  const heads = [];
  box.innerHTML = "";
  const count = groups.reduce((k, g) => k + g.rows.length, 0) + vcpu.length;
  if (d.focused && !showAll) {
    box.appendChild(h("div", { class: "nvs-focus" },
      `focused on ${count} field${count === 1 ? "" : "s"}; tick \u201cevery field\u201d for all`));
  }
  if (groups.length) {
    const table = h("table", { class: "nvs-tbl" });
    const head = h("tr", {}, "<th></th>");
    d.table.columns.forEach((label, c) => {
      if (!cols[c]) return;
      const th = h("th", { "data-col": label }, esc(label));
      heads.push([th, label]);
      head.appendChild(th);
    });
    table.appendChild(head);
    for (const g of groups) {
      const body = h("tbody", g.folded && showAll ? { class: "nvs-folded" } : {});
      const title = h("tr", { class: "nvs-group" },
        `<th colspan="${heads.length + 1}">${g.folded && showAll ? "\u25b8 " : ""}${esc(g.title)}</th>`);
      title.addEventListener("click", () => body.classList.toggle("nvs-open"));
      table.appendChild(title);
      for (const row of g.rows) {
        const tr = h("tr", { class: "nvs-row" }, `<th>${esc(row.field)}</th>`);
        row.cells.forEach((p, c) => {
          if (!cols[c]) return;
          const td = h("td");
          if (p >= 0) td.setAttribute("data-path", d.paths[p]);
          tr.appendChild(td);
          cells.push([td, p, d.table.columns[c]]);
        });
        body.appendChild(tr);
      }
      table.appendChild(body);
    }
    box.appendChild(table);
  }
  if (vcpu.length) {
    const table = h("table", { class: "nvs-tbl nvs-vcpu" });
    for (const r of vcpu) {
      const tr = h("tr", { class: "nvs-row" }, `<th>${esc(d.paths[r.path])}</th>`);
      const td = h("td", { "data-path": d.paths[r.path] });
      tr.appendChild(td);
      cells.push([td, r.path, null]);
      table.appendChild(tr);
    }
    box.appendChild(table);
  }
  box.appendChild(h("div", { class: "nvs-legend" },
    `<span class="nvs-w">${GLYPH.written} written</span> <span class="nvs-w nvs-c">` +
    `${GLYPH.written}${GLYPH.changed} changed</span> (hover: old value) <span class="nvs-r">${GLYPH.read} read</span> ` +
    `<span class="nvs-ptr">${GLYPH.pointer}</span> current ${d.isa === "svm" ? "VMCB" : "VMCS"}`));
  return { cells, heads };
}

function fillState(tables, d, values, i) {
  const s = d.steps[i];
  const written = new Set(s.written), read = new Set(s.read);
  const current = values[d.table.pointer];
  for (const [th, label] of tables.heads) {
    const cur = label === current;
    if (th.classList.contains("nvs-cur") === cur && th.firstChild) continue;
    th.className = cur ? "nvs-cur" : "";
    th.innerHTML = esc(label) + (cur ? ` <span class="nvs-ptr">${GLYPH.pointer} ${esc(d.table.pointer_name)}</span>` : "");
  }
  for (const [td, p, column] of tables.cells) {
    const classes = column !== null && column === current ? ["nvs-curcol"] : [];
    if (p < 0) { set(td, classes.join(" "), "", ""); continue; }
    let glyph = "", title = d.paths[p];
    if (String(p) in s.was) {
      classes.push("nvs-w", "nvs-c");
      glyph = GLYPH.written + GLYPH.changed + " ";
      title = `${d.paths[p]}: was ${s.was[p]}`;
    } else if (written.has(p)) {
      classes.push("nvs-w");
      glyph = GLYPH.written + " ";
    } else if (read.has(p)) {
      classes.push("nvs-r");
      glyph = GLYPH.read + " ";
    }
    set(td, classes.join(" "), title, glyph + values[p]);
  }
}

// Most cells look the same from one step to the next: touching only those that change keeps a
// step's layout and paint small.
function set(td, className, title, text) {
  if (td.className !== className) td.className = className;
  if (td.title !== title) td.title = title;
  if (td.textContent !== text) td.textContent = text;
}

const PALETTE = ["#56B4E9", "#E69F00", "#009E73", "#CC79A7", "#F0E442", "#0072B2", "#D55E00", "#999999"];

function buildTimeline(box, d) {
  const n = d.timeline.states;
  const names = d.timeline.rows.map((r) => `<div>${esc(r.title)}</div>`).join("");
  const tracks = d.timeline.rows.map((r) => `<div class="nvs-track">` + r.runs.map(([start, len, label, colour]) =>
    `<div class="nvs-run" style="left:${(100 * start) / n}%;width:${(100 * len) / n}%;` +
    `background:${PALETTE[colour % PALETTE.length]}" title="${esc(label)}">${esc(label)}</div>`).join("") +
    "</div>").join("");
  box.innerHTML = `<div class="nvs-tl-names">${names}</div><div class="nvs-tl-tracks">${tracks}` +
    `<div class="nvs-mark" style="left:0;width:${100 / n}%"></div></div>`;
  return box.querySelector(".nvs-mark");
}

const SVG_NS = "http://www.w3.org/2000/svg";

function buildDiagram(box, d) {
  if (!d.diagram.svg) {
    box.innerHTML = `<div class="nvs-note">${esc(d.diagram.missing || "no diagram")}</div>`;
    return null;
  }
  box.innerHTML = d.diagram.svg;
  const mark = document.createElementNS(SVG_NS, "rect");
  mark.setAttribute("class", "nvs-node-mark");
  mark.setAttribute("rx", "6");
  box.querySelector("g.graph, svg > g").appendChild(mark);
  return mark;
}

function placeDiagramMark(box, mark, d, i) {
  const b = d.diagram.boxes[d.steps[i].node];
  if (!mark || !b) return;
  mark.setAttribute("x", b[0] - 5); mark.setAttribute("y", b[1] - 5);
  mark.setAttribute("width", b[2] + 10); mark.setAttribute("height", b[3] + 10);
  const r = mark.getBoundingClientRect(), c = box.getBoundingClientRect();
  if (r.width) {              // centre the current step in the scrolled diagram
    box.scrollTop += r.top - c.top - (c.height - r.height) / 2;
    box.scrollLeft += r.left - c.left - (c.width - r.width) / 2;
  }
}

function skeleton() {
  const speeds = SPEEDS.map(([name, ms]) => `<option value="${ms}"${name === "normal" ? " selected" : ""}>${name}</option>`).join("");
  return `<div class="nvs-head"></div>
<div class="nvs-bar">
  <button class="nvs-go" data-go="first" title="first step (Home)" aria-label="first step">|\u25c0</button>
  <button class="nvs-go" data-go="prev" title="previous step (\u2190)" aria-label="previous step">\u25c0</button>
  <button class="nvs-play" title="play or pause (space); pausing stays on the step">\u25b6 Play</button>
  <button class="nvs-go" data-go="next" title="next step (\u2192)" aria-label="next step">\u25b6</button>
  <button class="nvs-go" data-go="last" title="last step (End)" aria-label="last step">\u25b6|</button>
  <input class="nvs-slider" type="range" min="1" step="1" aria-label="step">
  <span class="nvs-count"></span>
  <select class="nvs-jump" aria-label="jump to a step"></select>
  <select class="nvs-speed" aria-label="speed">${speeds}</select>
  <label class="nvs-alllabel" title="every field of every structure"><input type="checkbox" class="nvs-all"> every field</label>
  <label class="nvs-preslabel" title="text of at least 20 px for a projector"><input type="checkbox" class="nvs-pres"> presenter</label>
</div>
<div class="nvs-main"><div class="nvs-card"></div><div class="nvs-state"></div></div>
<div class="nvs-pos"><div class="nvs-chain"></div><button class="nvs-flowbtn" aria-expanded="false">flow diagram \u25be</button></div>
<div class="nvs-tl"></div>
<div class="nvs-flow" hidden></div>`;
}

function render({ model, el }) {
  const root = h("div", { class: "nvs", tabindex: "0", "data-lm-suppress-shortcuts": "true" }, skeleton());
  el.appendChild(root);
  const $ = (sel) => root.querySelector(sel);
  const slider = $(".nvs-slider"), jump = $(".nvs-jump"), play = $(".nvs-play"), speed = $(".nvs-speed");
  const flowBox = $(".nvs-flow"), flowBtn = $(".nvs-flowbtn"), chainBox = $(".nvs-chain");
  let d, values, tables, tlMark, diagramMark, painted = -1, timer = null;

  const count = () => d.steps.length;
  const clamp = (i) => Math.max(0, Math.min(i, count() - 1));

  function paint(i) {
    i = clamp(i);
    painted = i;
    $(".nvs-card").innerHTML = cardHtml(d, i);
    fillState(tables, d, values[i + 1], i);
    slider.value = String(i + 1);
    // the closed step list costs a layout of its own: it follows once the step is on screen
    requestAnimationFrame(() => setTimeout(() => { if (painted === i) jump.value = String(i); }, 0));
    $(".nvs-count").textContent = `step ${i + 1} / ${count()}`;
    const chain = d.steps[i].chain.map((fn) => `<code>${esc(fn)}</code>`).join(" \u203a ");
    if (chainBox.innerHTML !== chain) chainBox.innerHTML = chain;
    tlMark.style.transform = `translateX(${100 * (i + 1)}%)`;     // one state wide: moved, not laid out
    if (!flowBox.hidden) showDiagram(i);
  }

  function showDiagram(i) {
    if (!flowBox.firstChild) diagramMark = buildDiagram(flowBox, d);
    placeDiagramMark(flowBox, diagramMark, d, i);
  }

  function go(i) {
    i = clamp(i);
    if (i !== painted) paint(i);
    if (model.get("step") !== i) { model.set("step", i); model.save_changes(); }
  }

  function stop() {
    clearInterval(timer);
    timer = null;
    play.textContent = "\u25b6 Play";
  }

  function start() {
    if (painted >= count() - 1) go(0);
    play.textContent = "\u275a\u275a Pause";
    timer = setInterval(() => (painted >= count() - 1 ? stop() : go(painted + 1)), Number(speed.value));
  }

  function rebuildState() {
    tables = buildState($(".nvs-state"), d, model.get("show_all"));
  }

  function load() {
    d = model.get("data");
    if (!d || !d.steps || !d.steps.length) return;
    values = replay(d);
    $(".nvs-head").innerHTML = headerHtml(d);
    slider.max = String(count());
    jump.innerHTML = d.steps.map((s, k) => `<option value="${k}">${k + 1}. ${esc(s.id)} \u00b7 ${esc(s.function)}()</option>`).join("");
    rebuildState();
    tlMark = buildTimeline($(".nvs-tl"), d);
    diagramMark = null;                      // drawn when first opened: most steps never need it
    flowBox.innerHTML = "";
    root.classList.toggle("nvs-vmx", d.isa === "vmx");
    paint(model.get("step"));
  }

  // A slide is a projector: the stage is in presenter mode there whatever the notebook said.
  function presenter() {
    const on = model.get("presenter") || Boolean(el.closest(".reveal"));
    root.classList.toggle("nvs-presenter", on);
    $(".nvs-pres").checked = on;
  }

  root.addEventListener("click", (e) => {
    const go_ = e.target.closest("[data-go]");
    if (!go_) return;
    stop();
    go({ first: 0, prev: painted - 1, next: painted + 1, last: count() - 1 }[go_.dataset.go]);
  });
  play.addEventListener("click", () => (timer ? stop() : start()));
  speed.addEventListener("change", () => { if (timer) { stop(); start(); } });
  slider.addEventListener("input", () => { stop(); go(Number(slider.value) - 1); });
  jump.addEventListener("change", () => { stop(); go(Number(jump.value)); });
  $(".nvs-all").addEventListener("change", (e) => { model.set("show_all", e.target.checked); model.save_changes(); });
  $(".nvs-pres").addEventListener("change", (e) => { model.set("presenter", e.target.checked); model.save_changes(); });
  flowBtn.addEventListener("click", () => {
    flowBox.hidden = !flowBox.hidden;
    flowBtn.setAttribute("aria-expanded", String(!flowBox.hidden));
    flowBtn.textContent = flowBox.hidden ? "flow diagram \u25be" : "flow diagram \u25b4";
    if (!flowBox.hidden) showDiagram(painted);
  });
  // Keys step whenever the stage has focus, not only the slider; the lists keep their own keys.
  root.addEventListener("keydown", (e) => {
    if (e.target.tagName === "SELECT" || e.altKey || e.ctrlKey || e.metaKey) return;
    const to = { ArrowLeft: painted - 1, ArrowRight: painted + 1, Home: 0, End: count() - 1 }[e.key];
    if (to !== undefined) {
      stop();
      go(to);
    } else if (e.key === " " && e.target.tagName !== "BUTTON" && e.target.type !== "checkbox") {
      timer ? stop() : start();
    } else {
      return;
    }
    e.preventDefault();
    e.stopPropagation();
  });

  const onStep = () => { if (model.get("step") !== painted) paint(model.get("step")); };
  const onAll = () => { $(".nvs-all").checked = model.get("show_all"); rebuildState(); paint(painted); };
  model.on("change:data", load);
  model.on("change:step", onStep);
  model.on("change:show_all", onAll);
  model.on("change:presenter", presenter);
  presenter();
  // The page may attach the stage after render() returns (the slides do): only then can it
  // know it sits in a slide, so look again once it is in the document.
  let tries = 600;
  const onceInPage = () => { if (el.isConnected) presenter(); else if (--tries > 0) requestAnimationFrame(onceInPage); };
  requestAnimationFrame(onceInPage);
  $(".nvs-all").checked = model.get("show_all");
  load();
  return () => {
    stop();
    model.off("change:data", load);
    model.off("change:step", onStep);
    model.off("change:show_all", onAll);
    model.off("change:presenter", presenter);
  };
}

export default { render };
