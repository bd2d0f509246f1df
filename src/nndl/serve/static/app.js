// nndl serve: the page's script. Hand-written, no libraries, nothing from the internet.
// Three views (Draw, Mistakes, Curves), each backed by the JSON endpoints in nndl/serve/app.py.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { model: null, strokes: 0, drawSeq: 0, mistakesOffset: 0, histories: [], shown: new Set() };

function showMessage(text) {
  $("message").textContent = text;
  $("message").hidden = !text;
}

async function api(path, body) {
  const options = body === undefined ? {} :
    { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const response = await fetch(path, options);
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

// Paint ink values (0 = background, 1 = ink) as dark ink on white, like the book's figures.
function paint(canvas, width, height, ink, left = 0, top = 0) {
  blank(canvas);
  const img = canvas.getContext("2d").createImageData(width, height);
  for (let i = 0; i < width * height; i++) {
    const v = Math.round(255 * (1 - Math.min(1, Math.max(0, ink[i]))));
    img.data.set([v, v, v, 255], 4 * i);
  }
  canvas.getContext("2d").putImageData(img, left, top);
}

function escapeHtml(text) {
  return text.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

function blank(canvas) {
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
}

// ---- views ------------------------------------------------------------------------
const loaders = { draw: () => {}, mistakes: () => loadMistakes(true), curves: loadCurves };

function showView() {
  const view = (location.hash || "#draw").slice(1);
  const name = loaders[view] ? view : "draw";
  for (const v of Object.keys(loaders)) $("view-" + v).hidden = v !== name;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.view === name);
  document.body.dataset.view = name;
  loaders[name]();
}

// ---- Draw -------------------------------------------------------------------------
const pad = $("pad");
const padCtx = pad.getContext("2d", { willReadFrequently: true });
let drawing = null;

function padPoint(event) {
  const r = pad.getBoundingClientRect();
  return [(event.clientX - r.left) * pad.width / r.width, (event.clientY - r.top) * pad.height / r.height];
}

function startStroke(event) {
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  drawing = padPoint(event);
  padCtx.lineWidth = 20;  // about 2 MNIST pixels once a 200-pixel digit is shrunk to 20
  padCtx.lineCap = padCtx.lineJoin = "round";
  padCtx.strokeStyle = "#000";
  padCtx.beginPath();
  padCtx.moveTo(...drawing);
  padCtx.lineTo(drawing[0] + 0.01, drawing[1]);  // a click leaves a dot
  padCtx.stroke();
}

function moveStroke(event) {
  if (!drawing) return;
  event.preventDefault();
  const p = padPoint(event);
  padCtx.beginPath();
  padCtx.moveTo(...drawing);
  padCtx.lineTo(...p);
  padCtx.stroke();
  drawing = p;
}

function endStroke() {
  if (!drawing) return;
  drawing = null;
  state.strokes += 1;
  classify();
}

function clearPad() {
  padCtx.clearRect(0, 0, pad.width, pad.height);
  state.strokes = 0;
  state.drawSeq += 1;  // answers still on their way are for the old drawing
  for (const id of ["step-raw", "step-fit", "step-input"]) blank($(id));
  $("prediction").textContent = "–";
  $("confidence").textContent = "";
  $("bars").replaceChildren();
  document.body.dataset.strokes = "0";
  delete document.body.dataset.answeredBy;
}

// The drawing's ink: the canvas is transparent where nothing was drawn, so alpha = ink.
function padInk() {
  const rgba = padCtx.getImageData(0, 0, pad.width, pad.height).data;
  const ink = new Array(pad.width * pad.height);
  for (let i = 0; i < ink.length; i++) ink[i] = Math.round(rgba[4 * i + 3] / 255 * 1000) / 1000;
  return ink;
}

async function classify() {
  const seq = ++state.drawSeq;
  const strokes = state.strokes;
  try {
    const steps = await api("/api/preprocess", { width: pad.width, height: pad.height, pixels: padInk() });
    if (seq !== state.drawSeq) return;
    showSteps(steps);
    if (state.model) {
      const answer = await api("/api/predict", { model: state.model, pixels: steps.image });
      if (seq !== state.drawSeq) return;
      showBars(answer);
    }
    showMessage("");
  } catch (e) {
    if (seq === state.drawSeq) showMessage(e.message);
  }
  if (seq === state.drawSeq) document.body.dataset.strokes = String(strokes);  // the page is up to date
}

function showSteps(steps) {
  const raw = $("step-raw").getContext("2d");
  raw.fillStyle = "#fff";
  raw.fillRect(0, 0, 280, 280);
  raw.drawImage(pad, 0, 0);
  const [top, bottom, left, right] = steps.box;
  raw.strokeStyle = "#c8372d";
  raw.lineWidth = 2;
  raw.strokeRect(left, top, right - left, bottom - top);
  const f = steps.fitted;
  paint($("step-fit"), f.width, f.height, f.pixels, Math.floor((20 - f.width) / 2), Math.floor((20 - f.height) / 2));
  paint($("step-input"), 28, 28, steps.image);
}

function showBars(answer) {
  const p = answer.probabilities;
  const bars = $("bars");
  bars.replaceChildren();
  p.forEach((v, digit) => {
    const bar = document.createElement("div");
    bar.className = "bar" + (digit === answer.prediction ? " top" : "");
    bar.dataset.digit = digit;
    bar.dataset.p = v;
    bar.innerHTML = `<span class="pct">${(100 * v).toFixed(v < 0.1 ? 1 : 0)}%</span>` +
      `<span class="fill" style="height:${(150 * v).toFixed(1)}px"></span><span class="digit">${digit}</span>`;
    bars.append(bar);
  });
  $("prediction").textContent = answer.prediction;
  $("confidence").textContent = `(${(100 * p[answer.prediction]).toFixed(1)}%)`;
  $("rescaled-note").hidden = !answer.rescaled;
  document.body.dataset.answeredBy = answer.model;
}

pad.addEventListener("pointerdown", startStroke);
pad.addEventListener("pointermove", moveStroke);
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);
$("clear").addEventListener("click", clearPad);

// ---- Mistakes ---------------------------------------------------------------------
const PAGE = 120;

async function loadMistakes(fresh) {
  if (!state.model) {
    $("mistake-count").textContent = "No model loaded: start nndl serve with a model file.";
    return;
  }
  if (fresh) state.mistakesOffset = 0;
  const query = new URLSearchParams({ model: state.model, true: $("filter-true").value,
    predicted: $("filter-predicted").value, offset: state.mistakesOffset, limit: PAGE });
  $("mistake-count").textContent = "Finding the misclassified test images…";
  try {
    const m = await api("/api/mistakes?" + query);
    showMistakes(m, fresh);
    showMessage("");
  } catch (e) {
    showMessage(e.message);
  }
}

function showMistakes(m, fresh) {
  const count = $("mistake-count");
  count.textContent = `${m.count} of ${m.total} test images misclassified ` +
    `(${m.correct} / ${m.total} correct, ${(100 * m.correct / m.total).toFixed(2)}%)`;
  count.dataset.count = m.count;
  const filtered = $("filter-true").value !== "" || $("filter-predicted").value !== "";
  $("matching").textContent = filtered ? `${m.matching} match the filter` : "";
  const grid = $("grid");
  if (fresh) grid.replaceChildren();
  for (const item of m.items) {
    const fig = document.createElement("figure");
    fig.title = `test image #${item.index}: a ${item.true}, read as ${item.predicted}`;
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = 28;
    const bytes = atob(item.image);
    const ink = Array.from(bytes, (c) => c.charCodeAt(0) / 256);
    paint(canvas, 28, 28, ink);
    const cap = document.createElement("figcaption");
    cap.innerHTML = `${item.true} → <span class="wrong">${item.predicted}</span> ${(100 * item.confidence).toFixed(0)}%`;
    fig.append(canvas, cap);
    grid.append(fig);
  }
  state.mistakesOffset = m.offset + m.items.length;
  $("more").hidden = state.mistakesOffset >= m.matching;
  showConfusion(m.confusion);
}

function showConfusion(confusion) {
  const table = $("confusion");
  const head = "<tr><th></th>" + confusion.map((_, j) => `<th>${j}</th>`).join("") + "</tr>";
  const max = Math.max(1, ...confusion.flatMap((row, i) => row.filter((_, j) => j !== i)));
  const t = $("filter-true").value, p = $("filter-predicted").value;
  const rows = confusion.map((row, i) => `<tr><th>${i}</th>` + row.map((v, j) => {
    if (i === j) return `<td class="diag">${v}</td>`;
    const shade = v ? `background: rgba(200, 55, 45, ${(0.08 + 0.7 * v / max).toFixed(2)})` : "";
    const chosen = String(i) === t && String(j) === p ? " chosen" : "";
    return `<td class="off${chosen}" data-true="${i}" data-predicted="${j}" style="${shade}">${v || ""}</td>`;
  }).join("") + "</tr>");
  table.innerHTML = head + rows.join("");
}

$("confusion").addEventListener("click", (event) => {
  const cell = event.target.closest("td.off");
  if (!cell) return;
  $("filter-true").value = cell.dataset.true;
  $("filter-predicted").value = cell.dataset.predicted;
  loadMistakes(true);
});
for (const id of ["filter-true", "filter-predicted"]) {
  const select = $(id);
  select.innerHTML = '<option value="">any</option>' +
    [...Array(10).keys()].map((d) => `<option value="${d}">${d}</option>`).join("");
  select.addEventListener("change", () => loadMistakes(true));
}
$("more").addEventListener("click", () => loadMistakes(false));

// ---- Curves -----------------------------------------------------------------------
const COLOURS = ["#2f6fdf", "#d9480f", "#2d8a4e", "#9c36b5", "#c99400", "#0c8599", "#e64980", "#5c677d"];
const DASHES = { test: "", validation: "6 4", training: "2 3" };

async function loadCurves() {
  try {
    const data = await api("/api/histories");
    state.histories = data.histories;
    if (state.shown.size === 0) state.histories.forEach((h) => state.shown.add(h.name));
    const list = $("runs");
    list.replaceChildren();
    if (!state.histories.length) {
      list.innerHTML = "<li class='note'>No histories: start nndl serve with --history run.json " +
        "(written by nndl train --history).</li>";
    }
    state.histories.forEach((h, k) => {
      const li = document.createElement("li");
      li.innerHTML = `<label><input type="checkbox" ${state.shown.has(h.name) ? "checked" : ""}>` +
        `<span class="swatch" style="background:${COLOURS[k % COLOURS.length]}"></span><span class="name"></span>` +
        ` <span class="note">${h.epochs} epochs</span></label>`;
      li.querySelector(".name").textContent = h.name;  // a file name, not HTML
      li.querySelector("input").addEventListener("change", (e) => {
        if (e.target.checked) state.shown.add(h.name); else state.shown.delete(h.name);
        drawCharts();
      });
      list.append(li);
    });
    drawCharts();
  } catch (e) {
    showMessage(e.message);
  }
}

function drawCharts() {
  for (const metric of ["accuracy", "cost"]) {
    const series = [];
    state.histories.forEach((h, k) => {
      if (!state.shown.has(h.name)) return;
      for (const split of ["test", "validation", "training"]) {
        const values = h.data[`${split}_${metric}`];
        if (values && values.length) {
          series.push({ values, colour: COLOURS[k % COLOURS.length], dash: DASHES[split],
            label: escapeHtml(`${h.name} ${split}`) });
        }
      }
    });
    lineChart($("chart-" + metric), series, metric === "accuracy");
  }
}

// Round tick steps: 1, 2 or 5 times a power of ten, about `count` of them.
function ticks(lo, hi, count) {
  const raw = (hi - lo) / count;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = mag * ([1, 2, 5, 10].find((m) => m * mag >= raw) || 10);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toFixed(10));
  return out;
}

function lineChart(svg, series, percent) {
  const W = 560, H = 300, L = 52, R = 12, T = 12, B = 34;
  const parts = [];
  const finite = series.flatMap((s) => s.values.filter((v) => v !== null));
  if (!finite.length) {
    svg.innerHTML = `<text x="${W / 2}" y="${H / 2}" text-anchor="middle">nothing to plot</text>`;
    return;
  }
  const n = Math.max(...series.map((s) => s.values.length));
  let lo = Math.min(...finite), hi = Math.max(...finite);
  if (hi - lo < 1e-9) { lo -= 0.5 * (Math.abs(lo) || 1); hi += 0.5 * (Math.abs(hi) || 1); }
  const pad = 0.05 * (hi - lo);
  lo -= pad; hi += pad;
  const x = (i) => L + (n > 1 ? i / (n - 1) : 0.5) * (W - L - R);
  const y = (v) => T + (hi - v) / (hi - lo) * (H - T - B);
  for (const v of ticks(lo, hi, 5)) {
    parts.push(`<line class="gridline" x1="${L}" x2="${W - R}" y1="${y(v)}" y2="${y(v)}"/>`,
      `<text x="${L - 6}" y="${y(v) + 4}" text-anchor="end">${percent ? (100 * v).toFixed(1) + "%" : v}</text>`);
  }
  for (const i of ticks(0, n - 1, Math.min(8, Math.max(1, n - 1))).filter(Number.isInteger)) {
    parts.push(`<text x="${x(i)}" y="${H - B + 16}" text-anchor="middle">${i}</text>`);
  }
  parts.push(`<text x="${(L + W - R) / 2}" y="${H - 4}" text-anchor="middle">epoch</text>`,
    `<line class="axis" x1="${L}" x2="${L}" y1="${T}" y2="${H - B}"/>`,
    `<line class="axis" x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}"/>`);
  for (const s of series) {
    let d = "";
    s.values.forEach((v, i) => { if (v !== null) d += `${d && s.values[i - 1] !== null ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`; });
    parts.push(`<path d="${d}" fill="none" stroke="${s.colour}" stroke-width="2" stroke-dasharray="${s.dash}">` +
      `<title>${s.label}</title></path>`);
    s.values.forEach((v, i) => {  // a value with no neighbour draws no line: mark it with a dot
      if (v !== null && (s.values[i - 1] ?? null) === null && (s.values[i + 1] ?? null) === null) {
        parts.push(`<circle cx="${x(i).toFixed(1)}" cy="${y(v).toFixed(1)}" r="3" fill="${s.colour}"><title>${s.label}</title></circle>`);
      }
    });
  }
  svg.innerHTML = parts.join("");
}

// ---- start --------------------------------------------------------------------------
async function start() {
  const select = $("model");
  try {
    const data = await api("/api/models");
    for (const m of data.models) {
      const option = document.createElement("option");
      option.value = option.textContent = m.name;
      option.title = `${m.description}, ${m.params} parameters`;
      select.append(option);
    }
    state.model = data.models.length ? data.models[0].name : null;
    if (!state.model) {
      select.innerHTML = "<option>none loaded</option>";
      select.disabled = true;
    }
  } catch (e) {
    showMessage(e.message);
  }
  select.addEventListener("change", () => {
    state.model = select.value;
    if (state.strokes) classify();
    if (document.body.dataset.view === "mistakes") loadMistakes(true);
  });
  window.addEventListener("hashchange", showView);
  clearPad();
  showView();
  document.body.dataset.ready = "1";
}

start();
