"""Click-to-locate: from a click in the preview to the page's source lines and a unique selector.

The studio injects `LOCATE_SCRIPT` into the previewed page. In pick mode a click (caught in
the capture phase, so the page's own handlers never see it) is resolved to the nearest element
carrying `data-src` (see `posttrain.maic.page`), and the script reports

    {selector, data_src, tag, text, outer_html_head}

to `window.__maicPicked(info)` when the host defines it (Playwright, tests) and to the parent
window as `postMessage({type: "maic-pick", ...info}, "*")` (the studio's iframe). The edit
prompt then shows `numbered_context` of those lines.

Why not MAIC-UI's released approach (kept here as `anchor_locate` / `anchor_selector`, only so
tests can show where it fails): it finds the element's source by the FIRST line that contains
its start tag, which is wrong for every repeated item after the first; and it builds selectors
as `tag + "." + class attribute`, which for `class="step item"` reads as a descendant selector
(`li.step item`, matching nothing) and for a shared class matches several elements. Here the
line range is read off the element itself, and the selector is built from `#id` (only when that
id is unique) or `tag:nth-of-type(n)` steps up to the nearest uniquely-id'd ancestor or <body>,
ids passed through `CSS.escape`, class names never used, and the result is checked to match
exactly the clicked element.
"""

from __future__ import annotations

from posttrain.maic.page import page_text_lines, strip_src

__all__ = ["LOCATE_SCRIPT", "anchor_locate", "anchor_selector", "numbered_context"]

LOCATE_SCRIPT = r"""
(function () {
  "use strict";
  if (window.__maicLocate) { return; }
  var HIGHLIGHT = "2px solid #d9480f";
  var state = { pick: true, hovered: null, box: null };

  function esc(value) {
    if (window.CSS && typeof window.CSS.escape === "function") { return window.CSS.escape(value); }
    return String(value).replace(/[^a-zA-Z0-9_-]/g, function (c) { return "\\" + c; });
  }
  function count(selector) {
    try { return document.querySelectorAll(selector).length; } catch (e) { return -1; }
  }
  function uniqueId(el) {
    return !!el.id && count("#" + esc(el.id)) === 1;
  }
  function step(el) {
    var n = 1;
    for (var s = el.previousElementSibling; s; s = s.previousElementSibling) {
      if (s.localName === el.localName) { n += 1; }
    }
    return esc(el.localName) + ":nth-of-type(" + n + ")";
  }
  function selectorFor(el) {
    if (uniqueId(el)) { return "#" + esc(el.id); }
    var steps = [];
    var node = el;
    while (node && node.nodeType === 1) {
      if (node !== el && uniqueId(node)) { steps.unshift("#" + esc(node.id)); break; }
      if (node === document.body) { steps.unshift("body"); break; }
      if (node === document.documentElement) { steps.unshift("html"); break; }
      steps.unshift(step(node));
      node = node.parentElement;
    }
    var selector = steps.join(" > ");
    var found = document.querySelectorAll(selector);
    if (found.length === 1 && found[0] === el) { return selector; }
    // cannot happen for a connected element; say so rather than report a wrong selector
    return null;
  }
  function startTag(el) {
    var parts = ["<" + el.localName];
    for (var i = 0; i < el.attributes.length; i += 1) {
      var a = el.attributes[i];
      var value = a.value.replace(/&/g, "&amp;").replace(/"/g, "&quot;");
      parts.push(" " + a.name + "=\"" + value + "\"");
    }
    return parts.join("") + ">";
  }
  function target(event) {
    var el = event.target;
    if (el && el.nodeType !== 1) { el = el.parentElement; }
    return el && el.closest ? el.closest("[data-src]") : null;
  }
  function info(el) {
    var text = (el.innerText !== undefined ? el.innerText : el.textContent) || "";
    return {
      selector: selectorFor(el),
      data_src: el.getAttribute("data-src"),
      tag: el.localName,
      text: text.replace(/\s+/g, " ").trim().slice(0, 200),
      outer_html_head: startTag(el)
    };
  }
  // The highlight is a box laid over the element, outside <body>: the page's own elements are
  // never touched, so a pick reports their attributes exactly as written.
  function box() {
    if (!state.box) {
      var b = document.createElement("div");
      b.setAttribute("aria-hidden", "true");
      b.style.cssText = "position:fixed;pointer-events:none;z-index:2147483647;display:none;" +
        "outline:" + HIGHLIGHT + ";background:rgba(217,72,15,0.08)";
      document.documentElement.appendChild(b);
      state.box = b;
    }
    return state.box;
  }
  function place() {
    var el = state.hovered;
    if (!el || !el.isConnected) { box().style.display = "none"; return; }
    var r = el.getBoundingClientRect();
    var b = box();
    b.style.left = r.left + "px";
    b.style.top = r.top + "px";
    b.style.width = r.width + "px";
    b.style.height = r.height + "px";
    b.style.display = "block";
  }
  function unhighlight() {
    state.hovered = null;
    if (state.box) { state.box.style.display = "none"; }
  }
  function highlight(el) {
    state.hovered = el || null;
    place();
  }
  function report(picked) {
    if (typeof window.__maicPicked === "function") { window.__maicPicked(picked); }
    if (window.parent && window.parent !== window) {
      var message = { type: "maic-pick" };
      for (var key in picked) { message[key] = picked[key]; }
      window.parent.postMessage(message, "*");
    }
  }
  document.addEventListener("mouseover", function (event) {
    if (state.pick) { highlight(target(event)); }
  }, true);
  document.addEventListener("mouseout", function (event) {
    if (state.pick && !event.relatedTarget) { unhighlight(); }
  }, true);
  document.addEventListener("click", function (event) {
    if (!state.pick) { return; }
    var el = target(event);
    if (!el) { return; }
    event.preventDefault();
    event.stopPropagation();
    report(info(el));
  }, true);
  window.addEventListener("scroll", place, true);
  window.addEventListener("resize", place);
  window.addEventListener("message", function (event) {
    var data = event.data || {};
    if (data.type === "maic-pick-mode") {
      state.pick = !!data.on;
      if (!state.pick) { unhighlight(); }
    }
  });
  window.__maicLocate = {
    selectorFor: selectorFor,
    info: info,
    setPickMode: function (on) { state.pick = !!on; if (!state.pick) { unhighlight(); } },
    isPicking: function () { return state.pick; }
  };
})();
"""
"""JS for the preview: pick mode is on when injected; the parent turns it off and on with
`postMessage({type: "maic-pick-mode", on: false|true})` (or `__maicLocate.setPickMode`)."""


def numbered_context(html: str, start: int, end: int, around: int = 8) -> str:
    """Lines `start - around` .. `end + around` of the page, numbered, the picked lines
    `start`..`end` marked with `>`:

        ` 10 | <ul>` / `>11 |   <li>Step</li>` (numbers right-aligned to a common width)
    """
    lines = page_text_lines(html)
    if not 1 <= start <= end <= len(lines):
        raise ValueError(f"lines {start}-{end} are outside the page's {len(lines)} lines")
    if around < 0:
        raise ValueError(f"around must be >= 0, got {around}")
    first, last = max(1, start - around), min(len(lines), end + around)
    width = max(3, len(str(last)))
    return "\n".join(
        f"{'>' if start <= number <= end else ' '}{number:>{width}} | {lines[number - 1]}"
        for number in range(first, last + 1)
    )


def _squash(text: str) -> str:
    return " ".join(text.split())


def anchor_locate(html: str, outer_html: str) -> int:
    """MAIC-UI's released approach, for comparison only: the 1-based number of the FIRST
    source line containing the element's start tag (whitespace collapsed; `data-src`, which
    the anchor's pages do not have, removed from both), or 0 when no line contains it.
    Repeated markup makes every later copy resolve to the first one."""
    head = outer_html[: outer_html.find(">") + 1] if ">" in outer_html else outer_html
    wanted = _squash(strip_src(head))
    if not wanted:
        return 0
    for number, line in enumerate(page_text_lines(strip_src(html)), start=1):
        if wanted in _squash(line):
            return number
    return 0


def anchor_selector(tag: str, class_attr: str | None) -> str:
    """MAIC-UI's released selector, for comparison only: the tag, then "." and the class
    attribute as written. `class="step item"` gives `li.step item` (a descendant selector
    that matches nothing); a class shared by siblings matches all of them."""
    return f"{tag}.{class_attr}" if class_attr else tag
