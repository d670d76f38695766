// The playground page: sends the settings to the server, which trains, and draws the frames it streams back.
"use strict";

const $ = (id) => document.getElementById(id);
const form = $("settings");
// Colours of one output's low and high values (two classes), and of further classes.
const LOW = [245, 147, 34], HIGH = [8, 119, 189];
const PALETTE = [LOW, HIGH, [46, 160, 67], [208, 64, 43], [142, 68, 173], [120, 120, 120], [23, 190, 207]];

let session = null;   // {id, key, intro, events}
let frame = null;     // the latest frame
let upload = null;    // {name, csv} of the chosen file
let pending = null;   // the session being created

function settings() {
  const values = {};
  for (const element of form.elements) {
    if (element.name && element.value.trim() !== "") values[element.name] = element.value.trim();
  }
  if (values.dataset === "upload") values.dataset = upload ? upload.name : "";
  return values;
}

function showError(message) {
  $("error").textContent = message || "";
  $("error").hidden = !message;
}

async function call(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error; } catch (_) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

function closeSession() {
  if (!session) return;
  session.events.close();
  fetch(`/api/sessions/${session.id}`, { method: "DELETE", keepalive: true }).catch(() => {});
  session = null;
}

// The session for the current settings: the one open, or a new one (at epoch 0, paused).
async function ensureSession() {
  const values = settings();
  const useUpload = $("dataset").value === "upload";
  const key = JSON.stringify([values, useUpload && upload ? upload.csv.length : 0]);
  if (session && session.key === key) return session;
  if (pending && pending.key === key) return pending.promise;
  closeSession();
  const promise = (async () => {
    const body = { settings: values, upload: useUpload && upload ? upload : null };
    const intro = await (await call("POST", "/api/sessions", body)).json();
    const events = new EventSource(`/api/sessions/${intro.id}/events`);
    session = { id: intro.id, key, intro, events };
    events.onmessage = (message) => draw(JSON.parse(message.data));
    describe(intro);
    return session;
  })();
  pending = { key, promise };
  try {
    return await promise;
  } finally {
    if (pending && pending.promise === promise) pending = null;
  }
}

function describe(intro) {
  $("summary").textContent =
    `network ${intro.network} (${intro.parameters} parameters) · ${intro.hidden_activation} hidden · ` +
    `${intro.output_activation} output · ${intro.loss} loss · ${intro.optimizer} · ${intro.train_rows} training rows, ` +
    `${intro.held_out_rows} held out · ${intro.engine} engine on ${intro.device}` +
    (intro.runs > 1 ? ` · ${intro.runs} runs` : "");
  $("note").textContent = intro.note ? `note: ${intro.note}` : "";
  $("note").hidden = !intro.note;
  $("sweep").hidden = intro.runs < 2;
  $("multiples").replaceChildren();
}

// Applies the settings now: a new session that shows the data at epoch 0.
async function apply() {
  try {
    showError("");
    await ensureSession();
  } catch (error) {
    closeSession();
    showError(error.message);
  }
}

async function act(action) {
  try {
    showError("");
    const current = await ensureSession();
    const speed = $("speed").value;
    const body = action === "start" ? { epochs_per_second: speed ? Number(speed) : null } : undefined;
    await call("POST", `/api/sessions/${current.id}/${action}`, body);
  } catch (error) {
    showError(error.message);
  }
}

function colourOf(values, outputs, intro) {
  if (outputs === 1) {
    const [low, high] = intro.range;
    const t = high > low ? Math.min(1, Math.max(0, (values[0] - low) / (high - low))) : 0.5;
    return LOW.map((c, i) => c + t * (HIGH[i] - c));
  }
  const colour = [0, 0, 0];
  values.forEach((p, k) => PALETTE[k % PALETTE.length].forEach((c, i) => { colour[i] += p * c; }));
  return colour;
}

function pointColour(value, intro) {
  return intro.outputs === 1 ? colourOf([value], 1, intro) : PALETTE[value % PALETTE.length];
}

// Decision regions of one run on `canvas`, pale, with the points on top.
function drawRegions(canvas, values, intro, radius) {
  const { side, x, y } = intro.grid;
  const outputs = intro.outputs;
  const cells = document.createElement("canvas");
  cells.width = cells.height = side;
  const cellContext = cells.getContext("2d");
  const image = cellContext.createImageData(side, side);
  for (let k = 0; k < side * side; k++) {
    const colour = colourOf(values.slice(k * outputs, (k + 1) * outputs), outputs, intro);
    // Row 0 of the grid is the lowest x2: the bottom of the picture.
    const pixel = ((side - 1 - Math.floor(k / side)) * side + (k % side)) * 4;
    colour.forEach((c, i) => { image.data[pixel + i] = 255 - 0.45 * (255 - c); });
    image.data[pixel + 3] = 255;
  }
  cellContext.putImageData(image, 0, 0);
  const context = canvas.getContext("2d");
  context.imageSmoothingEnabled = true;
  context.drawImage(cells, 0, 0, canvas.width, canvas.height);
  const points = intro.points;
  for (let i = 0; i < points.x1.length; i++) {
    const px = (points.x1[i] - x[0]) / (x[1] - x[0]) * canvas.width;
    const py = (1 - (points.x2[i] - y[0]) / (y[1] - y[0])) * canvas.height;
    const [r, g, b] = pointColour(points.value[i], intro);
    context.beginPath();
    context.arc(px, py, radius, 0, 2 * Math.PI);
    context.lineWidth = points.held_out[i] ? 2 : 1;
    if (points.held_out[i]) {
      context.strokeStyle = `rgb(${r},${g},${b})`;
    } else {
      context.fillStyle = `rgb(${r},${g},${b})`;
      context.fill();
      context.strokeStyle = "#fff";
    }
    context.stroke();
  }
}

// The loss curve on a log axis: training rows solid, held-out rows dashed.
function drawCurve(curve) {
  const canvas = $("curve");
  const context = canvas.getContext("2d");
  const [width, height, left, bottom] = [canvas.width, canvas.height, 48, 20];
  context.clearRect(0, 0, width, height);
  const all = curve.train.concat(curve.held_out).filter((v) => v !== null && v > 0 && isFinite(v));
  if (curve.epochs.length === 0 || all.length === 0) return;
  const low = Math.log10(Math.min(...all)), high = Math.log10(Math.max(...all));
  const span = Math.max(high - low, 0.1);
  const first = curve.epochs[0], last = Math.max(curve.epochs[curve.epochs.length - 1], first + 1);
  const at = (epoch, loss) => [
    left + (epoch - first) / (last - first) * (width - left - 8),
    8 + (1 - (Math.log10(loss) - low) / span) * (height - bottom - 16),
  ];
  context.fillStyle = "#555";
  context.font = "11px sans-serif";
  context.fillText(Math.pow(10, high).toPrecision(3), 2, 14);
  context.fillText(Math.pow(10, low).toPrecision(3), 2, height - bottom);
  context.fillText(`${first}`, left, height - 4);
  context.textAlign = "right";
  context.fillText(`epoch ${last}`, width - 4, height - 4);
  context.textAlign = "left";
  const line = (values, colour, dash) => {
    context.beginPath();
    context.setLineDash(dash);
    context.strokeStyle = colour;
    context.lineWidth = 2;
    let started = false;
    values.forEach((v, i) => {
      if (v === null || !(v > 0) || !isFinite(v)) return;
      const [px, py] = at(curve.epochs[i], v);
      if (started) context.lineTo(px, py); else context.moveTo(px, py);
      started = true;
    });
    context.stroke();
    context.setLineDash([]);
  };
  line(curve.train, "#0877bd", []);
  line(curve.held_out, "#d0402b", [5, 3]);
}

const number = (v, digits = 6) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));

function draw(next) {
  frame = next;
  const intro = session && session.intro;
  if (!intro) return;
  $("epoch").textContent = next.epoch;
  $("rate").textContent = next.running ? Math.round(next.epochs_per_second) : "–";
  $("loss").textContent = number(next.loss);
  $("held-out-loss").textContent = number(next.held_out_loss);
  $("accuracy").textContent = next.accuracy === null || next.accuracy === undefined
    ? "–" : `${(100 * next.accuracy).toFixed(1)}%`;
  $("converged").textContent = next.converged === null || next.converged === undefined
    ? "–" : `${next.converged} of ${next.runs}`;
  $("command").textContent = next.command;
  $("start").disabled = next.running;
  $("pause").disabled = !next.running;
  if (next.error) showError(next.error);
  if (!next.regions) return;
  drawRegions($("regions"), next.regions[0].values, intro, 5);
  drawCurve(next.curve);
  if (intro.runs > 1) drawMultiples(next, intro);
}

function drawMultiples(next, intro) {
  $("sweep-summary").textContent = (next.converged === null ? `${next.runs} runs` :
    `${next.converged} of ${next.runs} runs converged`) + `, best loss ${number(next.best_loss)}`;
  const multiples = $("multiples");
  next.regions.forEach((region, i) => {
    let figure = multiples.children[i];
    if (!figure) {
      figure = document.createElement("figure");
      figure.append(Object.assign(document.createElement("canvas"), { width: 130, height: 130 }));
      figure.append(document.createElement("figcaption"));
      multiples.append(figure);
    }
    drawRegions(figure.firstChild, region.values, intro, 2);
    const verdict = region.converged === null ? "" : region.converged ? " ✓" : " ✗";
    figure.lastChild.textContent = `seed ${region.seed} · ${number(region.loss, 4)}${verdict}`;
  });
}

async function save() {
  try {
    showError("");
    if (!session) throw new Error("start a run first");
    const blob = await (await call("GET", `/api/sessions/${session.id}/model`)).blob();
    const link = Object.assign(document.createElement("a"), {
      href: URL.createObjectURL(blob),
      download: "model.safetensors",
    });
    link.click();
    URL.revokeObjectURL(link.href);
  } catch (error) {
    showError(error.message);
  }
}

async function copy() {
  const text = $("command").textContent;
  try {
    await navigator.clipboard.writeText(text);
    $("copy").textContent = "Copied";
  } catch (_) {
    // No clipboard (an insecure context): select the command so that it can be copied by hand.
    getSelection().selectAllChildren($("command"));
  }
  setTimeout(() => { $("copy").textContent = "Copy command"; }, 1500);
}

$("start").onclick = () => act("start");
$("pause").onclick = () => act("pause");
$("step").onclick = () => act("step");
$("reset").onclick = () => act("reset");
$("save").onclick = save;
$("copy").onclick = copy;
$("dataset").onchange = () => {
  const file = $("dataset").value === "upload";
  $("upload-label").hidden = !file;
  // XOR's four rows leave none to hold out.
  $("test_split").value = $("dataset").value === "xor" || file ? "" : "0.2";
  if (!file || upload) apply();
};
$("upload").onchange = async () => {
  const file = $("upload").files[0];
  upload = file ? { name: file.name, csv: await file.text() } : null;
  apply();
};
let debounce = null;
form.oninput = (event) => {
  if (!event.target.name || event.target.name === "dataset") return;
  clearTimeout(debounce);
  debounce = setTimeout(apply, 400);
};
$("speed").onchange = () => { if (frame && frame.running) act("start"); };
addEventListener("pagehide", closeSession);
apply();
