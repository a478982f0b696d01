"""Checking a generated teaching page in a real browser before anyone sees it.

MAIC-UI's released code declares every page valid; this module really looks. A page is
loaded into headless Chromium (`maic.browser`) and checked for six kinds of defect:

- console_error: `console.error` calls, and every request the page makes for something
  that is not a data:/about: URL. Pages must be self-contained, so each request is blocked
  (nothing reaches the network) and recorded; Chromium's own "Failed to load resource"
  line for a blocked request is folded into that finding instead of counted twice.
- uncaught_exception: Playwright's `pageerror` (uncaught exceptions and unhandled promise
  rejections), and a page that does not finish loading.
- missing_concept: every key concept must appear in the visible text
  (`document.body.innerText`), compared case-insensitively with whitespace, quotes and
  dashes normalised. Text that only shows after using a control counts (a step-through
  page shows step 3 only after Next), so the text of every state seen while exercising
  the controls is searched.
- dead_control: every visible input (range, number, text, checkbox, radio group), select,
  textarea, button, [onclick], [role=button] and summary is used once (a range or number
  moves to a quarter or three quarters of its span, a select picks another option, a text
  field is typed into and cleared again, the rest are clicked) and must change something:
  the visible text, the DOM (attributes and elements, so class/style/hidden/aria-* changes
  count), a canvas's pixels, another control's value, or open a dialog. A control's own
  value does not count, or every unwired slider would pass. Form inputs (text, number,
  checkbox, radio, select) may instead be read by the page's script later, the way a
  quiz's radio buttons are read by its Check button: the page is instrumented (before its
  scripts run) to record which inputs have their value/checked read by page code.
- overflow: at each width (phone, tablet, desktop by default), the document must not be
  wider than the viewport; the finding names the width and the element reaching furthest
  right (ignoring ones inside a clipping container).
- accessibility: axe-core (Deque's engine, the copy shipped in the `axe-playwright-python`
  wheel, MPL-2.0; we only read and inject the file) with the rules label, image-alt,
  color-contrast, button-name, select-name, input-image-alt, svg-img-alt, html-has-lang and
  document-title; one finding per violated rule, naming the elements.

Design decisions:
- Controls are exercised in one page, in document order, like a user would, rather than
  reloading the page between controls: a reload per control costs a page load each, and in
  the initial state a Reset or Prev button truly changes nothing. A control that changes
  nothing (or could not be used, being hidden or disabled) gets a second try after all the
  others have been used, so Prev is tried again once Next has moved on.
- A button that changes the page is clicked again (up to `EXPLORE_CLICKS` times, until the
  page stops changing or repeats a state) to see the later steps of a step-through.
- Parts of the page that change by themselves (an animation, a clock) are found by taking
  two snapshots before any control is used, and ignored when judging controls.
- Waiting: the page's requestAnimationFrame, setTimeout and setInterval are wrapped before
  its scripts run, so after a use the verifier waits one frame plus whatever frames and
  short timers the page has pending (up to `settle_ms`), not a fixed time; and a page with
  nothing scheduled is known not to be moving by itself, so it needs no extra snapshot.
  This made a 35-control page four times faster than fixed waits.
- Hangs: a step of the checks that does not return within CALL_TIMEOUT_MS (a handler that
  loops forever) ends the check with an uncaught_exception finding instead of waiting
  forever (`page.evaluate` has no time limit; `wait_for_function`'s is kept by Playwright's
  driver process). A form submitted without preventDefault is stopped and reported with
  its button, instead of replacing the page.
- Determinism: `Math.random` is replaced by a seeded generator before page scripts run,
  snapshots are hashed in the page, and the order of every check is fixed.
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from posttrain.maic.browser import chromium

KINDS = (
    "console_error",
    "uncaught_exception",
    "missing_concept",
    "dead_control",
    "overflow",
    "accessibility",
)
WIDTHS = (375, 768, 1280)
"""Phone, tablet and desktop viewport widths."""
HEIGHT = 900
AXE_RULES = (
    "label",
    "image-alt",
    "color-contrast",
    "button-name",
    "select-name",
    "input-image-alt",
    "svg-img-alt",
    "html-has-lang",
    "document-title",
)
EXPLORE_CLICKS = 6
MAX_CONTROLS = 40
"""Controls beyond this many are not exercised (recorded in the stats), to bound the time."""
LOAD_TIMEOUT_MS = 10_000
CALL_TIMEOUT_MS = 5_000
"""How long one step of the checks (a use of a control, a snapshot) may take before the page
counts as hung."""


@dataclass
class Finding:
    """One problem: its kind (one of KINDS), a sentence for people and models, and details
    (selectors, data-src line ranges, URLs, widths, axe rule ids)."""

    kind: str
    message: str
    detail: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown finding kind {self.kind!r}; expected one of {KINDS}")

    def to_dict(self) -> dict:
        return {"kind": self.kind, "message": self.message, "detail": self.detail}


@dataclass
class Findings:
    """Everything the browser found on one page, and what was checked (`stats`)."""

    items: list[Finding] = field(default_factory=list)
    stats: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.items

    def by_kind(self) -> dict[str, int]:
        """The number of findings of every kind, zeros included, in KINDS order."""
        counts = dict.fromkeys(KINDS, 0)
        for item in self.items:
            counts[item.kind] += 1
        return counts

    def to_prompt(self, limit: int = 25) -> str:
        """The findings as a compact list a model can act on when it regenerates the page."""
        if not self.items:
            return "The page passed every browser check."
        lines = [
            f"The page was loaded in a real browser (headless Chromium) and has "
            f"{len(self.items)} problem(s). Fix every one and keep the rest of the page:"
        ]
        for item in self.items[:limit]:
            lines.append(f"- {item.kind.replace('_', ' ')}: {item.message}")
        if len(self.items) > limit:
            lines.append(f"- ... and {len(self.items) - limit} more of the same kinds")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "counts": self.by_kind(),
            "items": [item.to_dict() for item in self.items],
            "stats": self.stats,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Findings:
        """The inverse of `to_dict` (for findings stored with a page version)."""
        items = [Finding(i["kind"], i["message"], dict(i.get("detail", {}))) for i in data["items"]]
        return cls(items, dict(data.get("stats", {})))


@cache
def axe_source() -> str:
    """axe-core's script text, from the axe-playwright-python wheel."""
    try:
        return resources.files("axe_playwright_python").joinpath("axe.min.js").read_text()
    except (ModuleNotFoundError, FileNotFoundError) as err:
        raise RuntimeError(
            "the accessibility check needs axe-core, shipped in the axe-playwright-python "
            "package (pip install axe-playwright-python)"
        ) from err


_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})
_DASHES = re.compile(r"[\u2010-\u2015\u2212]")


def normalise_text(text: str) -> str:
    """Case-folded, NFKC, curly quotes and dashes made plain, runs of whitespace one space."""
    text = _DASHES.sub("-", unicodedata.normalize("NFKC", text).translate(_QUOTES))
    return " ".join(text.casefold().split())


# Installed with add_init_script, so it runs before any of the page's own scripts.
_INIT_SCRIPT = r"""
(() => {
  if (window.__maicVerify) return;
  // Deterministic randomness: xorshift32 from a fixed seed.
  let seed = 0x9E3779B9 | 0;
  Math.random = () => {
    seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5;
    return (seed >>> 0) / 4294967296;
  };
  // Which form inputs page code reads: a quiz's radios are used by its Check button.
  const reads = new WeakSet();
  let tracking = false, paused = false;
  const mark = el => { if (tracking && !paused && el) reads.add(el); };
  const wrap = (proto, props) => {
    for (const p of props) {
      const d = Object.getOwnPropertyDescriptor(proto, p);
      if (!d || !d.get) continue;
      Object.defineProperty(proto, p, {
        configurable: true, enumerable: d.enumerable, set: d.set,
        get() { mark(this); return d.get.call(this); },
      });
    }
  };
  wrap(HTMLInputElement.prototype, ['value', 'checked', 'valueAsNumber']);
  wrap(HTMLSelectElement.prototype, ['value', 'selectedIndex', 'selectedOptions']);
  wrap(HTMLTextAreaElement.prototype, ['value']);
  const radios = Object.getOwnPropertyDescriptor(RadioNodeList.prototype, 'value');
  if (radios && radios.get) {
    Object.defineProperty(RadioNodeList.prototype, 'value', {
      configurable: true, set: radios.set,
      get() { for (const el of this) mark(el); return radios.get.call(this); },
    });
  }
  const NativeFormData = window.FormData;
  window.FormData = class FormData extends NativeFormData {
    constructor(form, submitter) {
      super(form, submitter);
      if (form && form.elements) for (const el of form.elements) mark(el);
    }
  };

  // A form submitted with nothing calling preventDefault would replace the page: stop it
  // (bubbling to window, this runs after the page's own handlers) and remember the form.
  // Installed by controls(), after loading: set_content's document.open() drops listeners.
  const unhandledSubmits = new WeakSet();
  const catchSubmits = event => {
    if (event.defaultPrevented) return;
    event.preventDefault();
    unhandledSubmits.add(event.target);
  };

  // Page callbacks (frames, timers, intervals): settle() waits for the pending ones instead
  // of a fixed time, and a page with nothing scheduled is known not to move by itself.
  const nativeFrame = window.requestAnimationFrame.bind(window);
  const nativeCancelFrame = window.cancelAnimationFrame.bind(window);
  const nativeTimeout = window.setTimeout.bind(window);
  const nativeClearTimeout = window.clearTimeout.bind(window);
  const nativeInterval = window.setInterval.bind(window);
  const nativeClearInterval = window.clearInterval.bind(window);
  const frames = new Set(), timers = new Set(), intervals = new Set();
  let ticks = 0, ticksAtSnapshot = 0;
  const run = (callback, args) =>
    (typeof callback === 'function' ? callback(...args) : (0, eval)(String(callback)));
  window.requestAnimationFrame = callback => {
    const id = nativeFrame(time => { frames.delete(id); ticks++; callback(time); });
    frames.add(id);
    return id;
  };
  window.cancelAnimationFrame = id => { frames.delete(id); nativeCancelFrame(id); };
  window.setTimeout = (callback, delay, ...args) => {
    const id = nativeTimeout(() => { timers.delete(id); ticks++; run(callback, args); }, delay);
    if (!(delay > 1000)) timers.add(id);  // a later timer is not part of a reaction
    return id;
  };
  window.clearTimeout = id => { timers.delete(id); nativeClearTimeout(id); };
  window.setInterval = (callback, delay, ...args) => {
    const id = nativeInterval(() => { ticks++; run(callback, args); }, delay);
    intervals.add(id);
    return id;
  };
  window.clearInterval = id => { intervals.delete(id); nativeClearInterval(id); };
  const busy = () => frames.size > 0 || timers.size > 0 || intervals.size > 0;
  // At least one frame, then while the page has frames or short timers pending, up to ms.
  const settle = async ms => {
    const start = performance.now();
    do { await new Promise(done => nativeFrame(done)); }
    while ((frames.size || timers.size) && performance.now() - start < ms);
  };

  const hash = s => {
    let h = 0x811c9dc5;
    for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 0x01000193); }
    return (h >>> 0).toString(16) + ':' + s.length;
  };
  const unique = sel => {
    try { return document.querySelectorAll(sel).length === 1; } catch (e) { return false; }
  };
  const selectorOf = el => {
    if (el.id && unique('#' + CSS.escape(el.id))) return '#' + CSS.escape(el.id);
    const parts = [];
    for (let e = el; e && e !== document.documentElement; e = e.parentElement) {
      if (e !== el && e.id && unique('#' + CSS.escape(e.id))) {
        parts.unshift('#' + CSS.escape(e.id));
        break;
      }
      let part = e.localName;
      const parent = e.parentElement;
      if (parent) {
        const same = [...parent.children].filter(c => c.localName === e.localName);
        if (same.length > 1) part += `:nth-of-type(${same.indexOf(e) + 1})`;
      }
      parts.unshift(part);
    }
    return parts.join(' > ');
  };
  const shown = el => {
    if (!el || !el.isConnected) return false;
    if (el.checkVisibility && !el.checkVisibility({visibilityProperty: true})) return false;
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  };
  const usable = el =>
    shown(el) && !el.matches(':disabled') && el.getAttribute('aria-disabled') !== 'true';
  const describe = el => {
    const label = (el.labels && el.labels[0] && el.labels[0].innerText)
      || el.getAttribute('aria-label') || el.innerText || el.value || el.name || '';
    return {
      selector: selectorOf(el), tag: el.localName, type: el.getAttribute('type') || '',
      label: label.trim().replace(/\s+/g, ' ').slice(0, 60),
      data_src: el.closest('[data-src]') ? el.closest('[data-src]').getAttribute('data-src') : null,
    };
  };
  const TEXT_TYPES = ['', 'text', 'search', 'email', 'url', 'tel', 'password'];
  const SKIP_TYPES = ['hidden', 'file', 'color', 'date', 'datetime-local', 'month', 'week', 'time'];
  const kindOf = el => {
    const tag = el.localName, type = (el.getAttribute('type') || '').toLowerCase();
    if (tag === 'input') {
      if (SKIP_TYPES.includes(type)) return null;
      if (type === 'range' || type === 'number') return type;
      if (type === 'checkbox') return 'checkbox';
      if (type === 'radio') return 'radio';
      if (['button', 'submit', 'reset', 'image'].includes(type)) return 'click';
      return TEXT_TYPES.includes(type) ? 'text' : null;
    }
    if (tag === 'textarea') return 'text';
    if (tag === 'select') return 'select';
    return 'click';
  };
  const radioGroup = el => {
    if (!el.name) return [el];
    const scope = el.form || document;
    return [...scope.querySelectorAll('input[type=radio]')]
      .filter(r => r.name === el.name && r.form === el.form);
  };
  const PASSIVE = ['text', 'number', 'checkbox', 'radio', 'select'];
  let controls = [];
  const live = c => (!c ? null : c.el.isConnected ? c.el : document.querySelector(c.selector));
  const stateOf = c => {
    const el = live(c);
    if (!el) return 'gone';
    if (c.kind === 'checkbox') return String(el.checked);
    if (c.kind === 'radio') return String(radioGroup(el).findIndex(r => r.checked));
    if (c.kind === 'click') return '';
    return String(el.value);
  };

  window.__maicVerify = {
    settle,
    track() { tracking = true; },
    controls() {
      window.addEventListener('submit', catchSubmits);
      const seen = new Set();
      controls = [];
      const sel = 'input, select, textarea, button, [onclick], [role=button], summary';
      for (const el of document.body.querySelectorAll(sel)) {
        const kind = kindOf(el);
        if (!kind) continue;
        if (kind === 'radio') {
          const group = radioGroup(el);
          if (group.some(r => seen.has(r))) continue;
          group.forEach(r => seen.add(r));
        }
        const parent = el.parentElement;
        if (el.localName === 'summary' && !(parent && parent.localName === 'details')) continue;
        seen.add(el);
        controls.push({el, kind, passive: PASSIVE.includes(kind), ...describe(el)});
      }
      return controls.map(({el, ...rest}) => rest);
    },
    snapshot() {
      ticksAtSnapshot = ticks;
      paused = true;
      try {
        const body = document.body;
        const out = {text: body ? body.innerText : '', dom: hash(body ? body.outerHTML : '')};
        document.querySelectorAll('canvas').forEach((c, i) => {
          let pixels = 'unreadable';
          try { pixels = hash(c.toDataURL()); } catch (e) { /* a tainted canvas */ }
          out['canvas' + i] = pixels;
        });
        controls.forEach((c, i) => { out['control' + i] = stateOf(c); });
        return out;
      } finally { paused = false; }
    },
    // Use control i; 'ok', 'unusable' (hidden, disabled, nothing to choose) or 'keyboard'
    // (a text field: focused and emptied, Playwright types into it).
    use(i) {
      const c = controls[i];  // none after the page navigated away (a form submitted)
      const el = c && live(c);
      if (!el || !usable(el)) return 'unusable';
      const fire = target => {
        target.dispatchEvent(new Event('input', {bubbles: true}));
        target.dispatchEvent(new Event('change', {bubbles: true}));
      };
      paused = true;
      try {
        if (c.kind === 'range' || c.kind === 'number') {
          const v = parseFloat(el.value) || 0, step = parseFloat(el.step) || 1;
          const bound = (attr, otherwise) =>
            isFinite(parseFloat(attr)) ? parseFloat(attr) : otherwise;
          const range = c.kind === 'range';
          const lo = bound(el.min, range ? 0 : v - 10 * step);
          const hi = bound(el.max, range ? 100 : v + 10 * step);
          const before = el.value;
          el.value = String(v <= (lo + hi) / 2 ? lo + 0.75 * (hi - lo) : lo + 0.25 * (hi - lo));
          if (el.value === before) el.value = String(v + step <= hi ? v + step : v - step);
          if (el.value === before) return 'unusable';
          fire(el);
        } else if (c.kind === 'select') {
          const options = [...el.options];
          const choices = options.map((o, k) => k)
            .filter(k => !options[k].disabled && k !== el.selectedIndex);
          if (!choices.length) return 'unusable';
          el.selectedIndex = choices.find(k => k > el.selectedIndex) ?? choices[0];
          fire(el);
        } else if (c.kind === 'radio') {
          const group = radioGroup(el).filter(usable);
          const at = group.findIndex(r => r.checked);
          const target = group.find((r, k) => k > at && !r.checked) || group.find(r => !r.checked);
          if (!target) return 'unusable';
          paused = false;
          target.click();
        } else if (c.kind === 'text') {
          el.focus();
          el.select && el.select();
          return 'keyboard';
        } else {
          paused = false;
          el.click();
        }
        return 'ok';
      } finally { paused = false; }
    },
    // use + settle + snapshot in one round trip; first, on a page that has something
    // scheduled (an animation a Play button started), a snapshot a frame later (`pre`)
    // shows what is moving by itself
    async act(i, ms) {
      let pre = null;
      if (busy() || ticks !== ticksAtSnapshot) {
        await settle(0);
        pre = this.snapshot();
      }
      const status = this.use(i);
      if (status !== 'ok') return {status, pre};
      await settle(ms);
      return {status, pre, snapshot: this.snapshot()};
    },
    async later(ms) { await settle(ms); return this.snapshot(); },
    typed(i) {
      const el = live(controls[i]);
      if (el) { el.dispatchEvent(new Event('change', {bubbles: true})); el.blur(); }
    },
    focusedValue() {
      paused = true;  // our own reading is not the page's
      try { return (document.activeElement || {}).value || ''; } finally { paused = false; }
    },
    restore(i, value) {
      const el = live(controls[i]);
      if (!el) return;
      paused = true;
      el.value = value;
      paused = false;
      el.dispatchEvent(new Event('input', {bubbles: true}));
      el.dispatchEvent(new Event('change', {bubbles: true}));
    },
    submitsUnhandled(i) {
      const el = live(controls[i]);
      if (!el || controls[i].kind !== 'click') return false;
      return Boolean(el.form && unhandledSubmits.has(el.form));
    },
    wasRead(i) {
      const el = live(controls[i]);
      if (!el) return false;
      const group = controls[i].kind === 'radio' ? radioGroup(el) : [el];
      return group.some(r => reads.has(r));
    },
    overflow() {
      const root = document.documentElement, width = root.clientWidth;
      if (root.scrollWidth <= width + 1) return null;
      const clipped = el => {
        for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
          if (getComputedStyle(a).overflowX !== 'visible') return true;
        }
        return false;
      };
      // how far right an element reaches: its box, or its content where that spills out
      // (an unwrapped line); the deepest of equals wins, the one that is really too wide
      let worst = null, right = width + 1, wide = 0;
      for (const el of document.body.querySelectorAll('*')) {
        const r = el.getBoundingClientRect();
        const spills = getComputedStyle(el).overflowX === 'visible' ? el.scrollWidth : 0;
        const reach = r.left + window.scrollX + Math.max(r.width, spills);
        if (reach < right || clipped(el)) continue;
        worst = el; right = reach; wide = Math.max(r.width, spills);
      }
      const about = worst ? describe(worst) : {};
      return {scroll_width: root.scrollWidth, client_width: width, ...about,
              element_width: worst ? Math.round(wide) : null};
    },
  };
})();
"""

_AXE_RUN = """async (rules) => {
  const result = await axe.run(document, {runOnly: {type: 'rule', values: rules},
                                          resultTypes: ['violations']});
  return result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    targets: v.nodes.map(n => n.target.join(' ')),
    data_src: v.nodes.map(n => {
      const el = document.querySelector(n.target[n.target.length - 1]);
      const src = el && el.closest('[data-src]');
      return src ? src.getAttribute('data-src') : null;
    }),
  }));
}"""


@dataclass
class _Session:
    """What the page's event handlers collected while it was being checked."""

    phase: str = "load"
    console: list[dict] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    blocked: list[dict] = field(default_factory=list)
    dialogs: int = 0


def _where(control: dict) -> str:
    label = f' "{control["label"]}"' if control.get("label") else ""
    lines = f", lines {control['data_src']}" if control.get("data_src") else ""
    kind = control["type"] or control["tag"]
    return f"the {kind}{label} ({control['selector']}{lines})"


def _changed(before: dict, after: dict, volatile: set[str]) -> list[str]:
    keys = (set(before) | set(after)) - volatile
    return sorted(k for k in keys if before.get(k) != after.get(k))


def verify_page(
    html: str,
    key_concepts: Sequence[str],
    *,
    browser: Any = None,
    widths: Sequence[int] = WIDTHS,
    settle_ms: int = 60,
) -> Findings:
    """Load `html` in headless Chromium and check it (see the module docstring).

    `browser`: a Playwright Browser to reuse (from `maic.browser.chromium()`); without one,
    a browser is launched for this page and closed after. `settle_ms`: the longest wait
    after each use of a control (twice that after loading) for the page's pending
    animation frames and short timers; a page with none pending is read after one frame."""
    if browser is None:
        with chromium() as launched:
            return verify_page(
                html, key_concepts, browser=launched, widths=widths, settle_ms=settle_ms
            )
    started = time.perf_counter()
    widths = sorted(set(widths)) or [WIDTHS[-1]]
    session = _Session()
    context = browser.new_context(viewport={"width": widths[0], "height": HEIGHT})
    try:
        context.add_init_script(_INIT_SCRIPT)
        context.route("**/*", lambda route: _block(route, session))
        page = context.new_page()
        page.set_default_timeout(LOAD_TIMEOUT_MS)
        page.on("console", lambda message: _on_console(message, session))
        page.on("pageerror", lambda error: _on_error(error, session))
        page.on("dialog", lambda dialog: _on_dialog(dialog, session))
        findings: list[Finding] = []
        stats: dict = {"widths": list(widths)}
        try:
            page.set_content(html, wait_until="load", timeout=LOAD_TIMEOUT_MS)
            page.evaluate("ms => window.__maicVerify.settle(ms)", settle_ms * 2)
        except Exception as err:  # a hung or crashed page: nothing else can be checked
            if "Timeout" not in type(err).__name__ and "crash" not in str(err).lower():
                raise
            findings.append(
                Finding(
                    "uncaught_exception",
                    f"the page did not finish loading within {LOAD_TIMEOUT_MS / 1000:.0f} s "
                    "(a script that never returns?)",
                    {"phase": "load", "error": str(err).splitlines()[0]},
                )
            )
            stats["seconds"] = round(time.perf_counter() - started, 3)
            return Findings(findings + _script_findings(session), stats)
        try:
            findings += _overflow(page, widths, session)
            session.phase = "during the accessibility check"
            findings += _accessibility(page)
            texts, controls = _exercise_controls(page, session, settle_ms, stats)
            findings += _missing_concepts(key_concepts, texts)
            findings += controls
            _call(page, "() => 0")  # let events still in flight arrive
        except _Hung:
            findings.append(
                Finding(
                    "uncaught_exception",
                    f"the page stopped responding ({session.phase}) for "
                    f"{CALL_TIMEOUT_MS / 1000:.0f} s (a script that never returns?); the "
                    "remaining checks were not run",
                    {"phase": session.phase},
                )
            )
        stats["seconds"] = round(time.perf_counter() - started, 3)
        return Findings(_script_findings(session) + findings, stats)
    finally:
        context.close()


class _Hung(Exception):
    """The page's script did not give control back within CALL_TIMEOUT_MS."""


def _call(page: Any, function: str, arg: Any = None) -> Any:
    """`page.evaluate(function, arg)` with a time limit: evaluate waits forever on a page
    whose handler loops, wait_for_function's limit is kept by Playwright's driver process."""
    wrapped = f"async (arg) => ({{value: await ({function})(arg)}})"
    try:
        handle = page.wait_for_function(wrapped, arg=arg, timeout=CALL_TIMEOUT_MS)
    except Exception as err:
        if "Timeout" in type(err).__name__:
            raise _Hung() from err
        raise
    return handle.json_value()["value"]


def _block(route: Any, session: _Session) -> None:
    url = route.request.url
    if url.startswith(("data:", "about:", "blob:")):
        route.continue_()
        return
    session.blocked.append({"url": url, "phase": session.phase})
    route.abort()


def _on_console(message: Any, session: _Session) -> None:
    if message.type != "error":
        return
    location = message.location or {}
    session.console.append(
        {"text": message.text, "url": location.get("url", ""), "phase": session.phase}
    )


def _on_error(error: Any, session: _Session) -> None:
    text = getattr(error, "message", None) or str(error)
    session.errors.append(
        {"text": f"{getattr(error, 'name', '') or 'Error'}: {text}", "phase": session.phase}
    )


def _on_dialog(dialog: Any, session: _Session) -> None:
    session.dialogs += 1
    dialog.accept()


def _collapse(records: Iterable[dict], key: Callable[[dict], str]) -> list[tuple[dict, int]]:
    """Records with the same key once each, in first-seen order, with how many there were."""
    counts: dict[str, list] = {}
    for record in records:
        counts.setdefault(key(record), [record, 0])[1] += 1
    return [(record, n) for record, n in counts.values()]


def _script_findings(session: _Session) -> list[Finding]:
    findings = []
    blocked_urls = {b["url"] for b in session.blocked}
    for record, n in _collapse(session.blocked, lambda r: r["url"]):
        findings.append(
            Finding(
                "console_error",
                f"the page requested {record['url']} ({record['phase']}); pages must be "
                "self-contained: inline the data, script or image (or use a data: URL)",
                {"url": record["url"], "phase": record["phase"], "count": n},
            )
        )
    console = [
        c
        for c in session.console
        if not (c["text"].startswith("Failed to load resource") and c["url"] in blocked_urls)
    ]
    for record, n in _collapse(console, lambda r: r["text"]):
        findings.append(
            Finding(
                "console_error",
                f"console error ({record['phase']}): {record['text'][:300]}",
                {"text": record["text"], "phase": record["phase"], "count": n},
            )
        )
    for record, n in _collapse(session.errors, lambda r: r["text"]):
        findings.append(
            Finding(
                "uncaught_exception",
                f"uncaught exception ({record['phase']}): {record['text'][:300]}",
                {"text": record["text"], "phase": record["phase"], "count": n},
            )
        )
    return findings


def _overflow(page: Any, widths: Sequence[int], session: _Session) -> list[Finding]:
    """Overflow at each width, narrowest first (the page was loaded at the narrowest, as a
    phone would; a resize handler runs before the two frames the check waits for)."""
    findings = []
    for index, width in enumerate(widths):
        session.phase = f"at {width} px wide"
        if index:
            page.set_viewport_size({"width": width, "height": HEIGHT})
        found = _call(
            page, "() => window.__maicVerify.settle(0).then(window.__maicVerify.overflow)"
        )
        if found is None:
            continue
        culprit = (
            f"; the widest element is {_where(found)}, {found['element_width']} px wide"
            if found.get("selector")
            else ""
        )
        findings.append(
            Finding(
                "overflow",
                f"at {width} px wide the page scrolls sideways (content {found['scroll_width']}"
                f" px){culprit}",
                {"width": width, **found},
            )
        )
    return findings


def _accessibility(page: Any) -> list[Finding]:
    page.add_script_tag(content=axe_source())
    violations = _call(page, _AXE_RUN, list(AXE_RULES))
    findings = []
    for v in violations:
        targets = v["targets"]
        shown = ", ".join(targets[:5]) + (
            f" and {len(targets) - 5} more" if len(targets) > 5 else ""
        )
        lines = sorted({s for s in v["data_src"] if s})
        where = f" (lines {', '.join(lines[:5])})" if lines else ""
        findings.append(
            Finding(
                "accessibility",
                f"{v['id']}: {v['help']}: {shown}{where}",
                {"rule": v["id"], "impact": v["impact"], "targets": targets, "data_src": lines},
            )
        )
    return findings


def _snapshot(page: Any, session: _Session, settle_ms: int | None = None) -> dict:
    """The page's state now, or once settled (see `settle_ms` of verify_page) if given."""
    script = "ms => ms === null ? window.__maicVerify.snapshot() : window.__maicVerify.later(ms)"
    return {**_call(page, script, settle_ms), "dialogs": session.dialogs}


def _use(
    page: Any, session: _Session, index: int, settle_ms: int
) -> tuple[dict | None, dict | None, dict]:
    """Use control `index` once and let the page react. Returns the page's state just
    before (None if nothing was scheduled to move it since the last snapshot), just after
    (None if the control could not be used: hidden, disabled, nothing else to choose), and
    once the use is over (a typed text is cleared again, so a filter box does not hide the
    controls it filters)."""
    result = _call(page, "([i, ms]) => window.__maicVerify.act(i, ms)", [index, settle_ms])
    pre = None if result["pre"] is None else {**result["pre"], "dialogs": session.dialogs}
    if result["status"] == "unusable":
        return pre, None, pre or {}
    if result["status"] == "keyboard":
        value = _call(page, "() => window.__maicVerify.focusedValue()")
        page.keyboard.type("7" if value == "42" else "42")
        _call(page, "i => window.__maicVerify.typed(i)", index)
        after = _snapshot(page, session, settle_ms)
        _call(page, "([i, v]) => window.__maicVerify.restore(i, v)", [index, value])
        return pre, after, _snapshot(page, session, settle_ms)
    after = {**result["snapshot"], "dialogs": session.dialogs}
    return pre, after, after


def _exercise_controls(
    page: Any, session: _Session, settle_ms: int, stats: dict
) -> tuple[list[str], list[Finding]]:
    """Use every control; returns the visible texts seen and the dead_control findings."""
    controls = _call(page, "() => window.__maicVerify.controls()")
    stats["controls"] = len(controls)
    if len(controls) > MAX_CONTROLS:
        stats["controls_not_exercised"] = len(controls) - MAX_CONTROLS
        controls = controls[:MAX_CONTROLS]
    first = _snapshot(page, session)
    _call(page, "ms => window.__maicVerify.settle(ms)", max(settle_ms, 100))
    second = _snapshot(page, session)
    volatile = set(_changed(first, second, set()))
    stats["volatile"] = sorted(volatile)
    texts = {first["text"], second["text"]}
    _call(page, "() => window.__maicVerify.track()")
    live: set[int] = set()
    tried: set[int] = set()
    before = second
    for _ in range(2):  # the second pass retries what changed nothing or was unusable
        for index, control in enumerate(controls):
            if index in live:
                continue
            session.phase = f"using {_where(control)}"
            pre, after, resting = _use(page, session, index, settle_ms)
            # what changed since the last snapshot with no control used is moving by
            # itself now (an animation a Play button started): no evidence either way
            moving = set(_changed(before, pre, set())) if pre is not None else set()
            before = pre or before
            if after is None:
                continue
            tried.add(index)
            texts.add(after["text"])
            # the control's own value is not a change it made to the page
            ignore = volatile | moving | {f"control{index}"}
            if _changed(before, after, ignore):
                live.add(index)
                if control["kind"] == "click":
                    explored, resting = _explore(page, session, index, settle_ms, ignore, after)
                    texts |= explored
            before = resting
    stats["controls_exercised"] = len(tried)
    session.phase = "after using the controls"
    dead = []
    for index in sorted(tried - live):
        control = controls[index]
        if control["passive"] and _call(page, "i => window.__maicVerify.wasRead(i)", index):
            continue
        why = ""
        if _call(page, "i => window.__maicVerify.submitsUnhandled(i)", index):
            why = (
                " (it submits its form, which would reload the page: handle the submit event"
                " and call event.preventDefault())"
            )
        dead.append(
            Finding(
                "dead_control",
                f"{_where(control)} changes nothing on the page when used{why}",
                {k: control[k] for k in ("selector", "tag", "type", "label", "data_src", "kind")},
            )
        )
    return sorted(texts), dead


def _explore(
    page: Any, session: _Session, index: int, settle_ms: int, ignore: set[str], state: dict
) -> tuple[set[str], dict]:
    """Click a live button again while it keeps producing new states: the texts seen and
    the last state."""
    seen = {_state_key(state, ignore)}
    texts = set()
    for _ in range(EXPLORE_CLICKS):
        now = _use(page, session, index, settle_ms)[1]
        if now is None:
            break
        texts.add(now["text"])
        key = _state_key(now, ignore)
        state = now
        if key in seen:
            break
        seen.add(key)
    return texts, state


def _state_key(snapshot: dict, volatile: set[str]) -> str:
    return json.dumps({k: v for k, v in snapshot.items() if k not in volatile}, sort_keys=True)


def _missing_concepts(concepts: Sequence[str], texts: Iterable[str]) -> list[Finding]:
    seen = [normalise_text(t) for t in texts]
    findings = []
    for concept in concepts:
        wanted = normalise_text(concept)
        if wanted and not any(wanted in text for text in seen):
            findings.append(
                Finding(
                    "missing_concept",
                    f'the key concept "{concept}" does not appear in the visible text '
                    "(it may be missing, hidden, or only drawn on a canvas)",
                    {"concept": concept},
                )
            )
    return findings
