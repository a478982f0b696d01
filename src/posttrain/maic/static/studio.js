"use strict";
// The studio's page: every call goes to the API with the token from this page's URL; the
// preview is a sandboxed frame on a one-version ticket URL, and picks arrive by postMessage.
const token = new URLSearchParams(location.search).get("token") || "";
const $ = (id) => document.getElementById(id);
const state = { project: null, data: null, picked: null };

function say(text, bad) {
  $("status").textContent = text;
  $("status").className = bad ? "error" : "";
}

async function api(path, options) {
  const init = Object.assign({ headers: {} }, options || {});
  init.headers = Object.assign({ authorization: "Bearer " + token }, init.headers);
  if (init.json !== undefined) {
    init.body = JSON.stringify(init.json);
    init.headers["content-type"] = "application/json";
    delete init.json;
  }
  const response = await fetch(path, init);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = body.error || body.detail || (body.error && body.error.message);
    throw new Error(typeof detail === "string" ? detail : JSON.stringify(body));
  }
  return body;
}

async function busy(label, work) {
  say(label + " ...");
  try {
    const result = await work();
    say(label + ": done");
    return result;
  } catch (error) {
    say(label + ": " + error.message, true);
    return null;
  }
}

async function loadProjects() {
  const body = await api("/api/projects");
  const list = $("projects");
  list.replaceChildren();
  for (const project of body.projects) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = project.name;
    button.dataset.id = project.id;
    button.addEventListener("click", () => openProject(project.id));
    item.append(button);
    if (project.id === state.project) { item.className = "current"; }
    list.append(item);
  }
}

async function openProject(id) {
  state.project = id;
  state.picked = null;
  await refresh();
  await loadProjects();
}

async function refresh() {
  const data = await api("/api/projects/" + state.project);
  state.data = data;
  $("analysis").value = JSON.stringify(data.analysis, null, 2);
  $("analyser").textContent = "made by: " + (data.analysis.analyser || "?");
  const versions = $("versions");
  versions.replaceChildren();
  for (const select of [$("compare-a"), $("compare-b")]) { select.replaceChildren(); }
  for (const v of data.versions) {
    const item = document.createElement("li");
    item.dataset.number = v.number;
    const what = v.origin === "generate"
      ? "generated (" + v.detail.mode + ", " + v.detail.source + ")"
      : "edit: " + v.detail.instruction;
    item.append("v" + v.number + " " + what + " ");
    const show = document.createElement("button");
    show.type = "button";
    show.textContent = "show";
    show.addEventListener("click", () => busy("show v" + v.number, async () => {
      await api("/api/projects/" + state.project + "/show/" + v.number, { method: "POST" });
      await refresh();
    }));
    item.append(show);
    if (v.number === data.current) { item.className = "current"; }
    versions.append(item);
    for (const select of [$("compare-a"), $("compare-b")]) {
      const option = document.createElement("option");
      option.value = v.number;
      option.textContent = "v" + v.number;
      select.append(option);
    }
  }
  if (data.versions.length > 1) {
    $("compare-a").value = data.versions[data.versions.length - 2].number;
    $("compare-b").value = data.versions[data.versions.length - 1].number;
  }
  const current = data.versions.find((v) => v.number === data.current);
  showFindings(current ? current.detail.findings : null);
  await preview(data.current);
}

function showFindings(findings) {
  const box = $("findings");
  if (!findings) { box.textContent = ""; return; }
  if (findings.ok) {
    box.innerHTML = '<p class="ok">Browser checks: no problems found.</p>';
    return;
  }
  const list = document.createElement("ul");
  for (const item of findings.items) {
    const li = document.createElement("li");
    li.textContent = item.kind + ": " + item.message;
    list.append(li);
  }
  const head = document.createElement("p");
  head.className = "bad";
  head.textContent = "Browser checks: " + findings.items.length + " problem(s)";
  box.replaceChildren(head, list);
}

async function preview(number) {
  const frame = $("preview");
  $("shown").textContent = number ? "(v" + number + ")" : "";
  if (!number) { frame.removeAttribute("src"); return; }
  const ticket = await api("/api/projects/" + state.project + "/preview/" + number,
    { method: "POST" });
  frame.src = ticket.url;
}

function setPickMode() {
  const frame = $("preview");
  if (frame.contentWindow) {
    frame.contentWindow.postMessage({ type: "maic-pick-mode", on: $("pick").checked }, "*");
  }
}

window.addEventListener("message", async (event) => {
  if (event.source !== $("preview").contentWindow) { return; }
  const data = event.data || {};
  if (data.type !== "maic-pick" || !data.data_src) { return; }
  state.picked = {
    selector: data.selector, data_src: data.data_src, tag: data.tag, text: data.text,
  };
  $("picked").textContent = "<" + data.tag + "> " + data.selector + "  lines " + data.data_src +
    (data.text ? "  \u201c" + data.text.slice(0, 80) + "\u201d" : "");
  const match = /^L(\d+)-L(\d+)$/.exec(data.data_src);
  if (match) {
    const context = await api("/api/projects/" + state.project + "/context?start=" + match[1] +
      "&end=" + match[2]);
    $("context").textContent = context.text;
  }
  $("instruction").focus();
});

$("preview").addEventListener("load", setPickMode);
$("pick").addEventListener("change", setPickMode);

$("upload").addEventListener("click", () => busy("upload", async () => {
  const file = $("file").files[0];
  if (!file) { throw new Error("choose a file first"); }
  const project = await api("/api/projects?filename=" + encodeURIComponent(file.name),
    { method: "POST", body: file, headers: { "content-type": "application/octet-stream" } });
  await openProject(project.id);
}));

$("save-analysis").addEventListener("click", () => busy("save analysis", async () => {
  let edited;
  try { edited = JSON.parse($("analysis").value); } catch (error) {
    throw new Error("the analysis is not valid JSON: " + error.message);
  }
  await api("/api/projects/" + state.project + "/analysis", { method: "PUT", json: edited });
  await refresh();
}));

$("generate").addEventListener("click", () => busy("generate", async () => {
  await api("/api/projects/" + state.project + "/generate",
    { method: "POST", json: { mode: $("mode").value } });
  await refresh();
}));

$("apply-edit").addEventListener("click", () => busy("edit", async () => {
  if (!state.picked) { throw new Error("pick an element in the preview first"); }
  const result = await api("/api/projects/" + state.project + "/edit", {
    method: "POST", json: { picked: state.picked, instruction: $("instruction").value },
  });
  const report = result.edit.applied;
  $("edit-result").textContent = (result.applied ? "applied" : "NOT applied: the page is unchanged")
    + "\n" + (report.hunks || []).map((h) =>
      "hunk " + h.index + ": " + (h.stage || "failed") + (h.message ? " (" + h.message + ")" : "")
    ).join("\n") + (report.reasons && report.reasons.length ? "\n" + report.reasons.join("\n") : "");
  if (!result.applied) { throw new Error("the edit did not apply; nothing changed"); }
  state.picked = null;
  $("picked").textContent = "Nothing picked yet: click an element in the preview.";
  $("context").textContent = "";
  await refresh();
}));

for (const [id, path] of [["undo", "undo"], ["redo", "redo"]]) {
  $(id).addEventListener("click", () => busy(id, async () => {
    await api("/api/projects/" + state.project + "/" + path, { method: "POST" });
    await refresh();
  }));
}

$("verify").addEventListener("click", () => busy("browser checks", async () => {
  const findings = await api("/api/projects/" + state.project + "/verify", { method: "POST" });
  showFindings(findings);
}));

$("compare").addEventListener("click", () => busy("compare", async () => {
  const body = await api("/api/projects/" + state.project + "/compare?a=" + $("compare-a").value +
    "&b=" + $("compare-b").value);
  $("diff").textContent = body.diff || "(the two versions are the same)";
}));

loadProjects().then(() => say("ready")).catch((error) => say(error.message, true));
