// xterm.js under a strict Content-Security-Policy.
//
// The server sends `default-src 'self'`, which blocks every <style> element
// a script creates. xterm.js 6's DOM renderer puts its colours, cursor and
// cell layout in such elements, so under that policy the terminal would
// lose its colours and cell layout. Constructed style sheets
// (document.adoptedStyleSheets) are not inline styles, and the policy
// allows them: this copies the text of xterm's <style> elements into
// constructed sheets (the approach xterm.js itself took for a while, PR
// #4611). Where the policy does not block them, the copies change nothing.
//
// xterm writes these elements when it opens, resizes and changes options;
// the page calls sync() after each, and a MutationObserver on the elements
// catches other rewrites. (Not covered: the per-cell `style` attributes
// xterm sets for 24-bit colours, which the policy also blocks.)

const mirrors = new Map(); // <style> element -> {sheet, text}
let root = null;

function sync() {
  if (!root) return;
  const elements = [...root.querySelectorAll("style"), ...document.head.querySelectorAll("style")];
  let changed = false;
  for (const el of elements) {
    let mirror = mirrors.get(el);
    if (!mirror) {
      mirror = { sheet: new CSSStyleSheet(), text: null };
      mirrors.set(el, mirror);
      observer.observe(el, { childList: true, characterData: true, subtree: true });
      changed = true;
    }
    const text = el.textContent || "";
    if (mirror.text !== text) {
      try {
        mirror.sheet.replaceSync(text);
      } catch {
        // A rule this browser cannot parse: keep the sheet as it was.
      }
      mirror.text = text;
    }
  }
  for (const el of [...mirrors.keys()]) {
    if (!el.isConnected) {
      mirrors.delete(el);
      changed = true;
    }
  }
  if (changed) {
    const ours = new Set([...mirrors.values()].map((m) => m.sheet));
    const others = document.adoptedStyleSheets.filter((s) => !ours.has(s) && !s.xtermMirror);
    for (const s of ours) s.xtermMirror = true;
    document.adoptedStyleSheets = [...others, ...ours];
  }
}

const observer = new MutationObserver(sync);

/** Mirrors the styles of the terminal opened in `container`; returns the
 * function to call after a resize or an options change. */
export function adoptXtermStyles(container) {
  root = container;
  sync();
  return sync;
}
