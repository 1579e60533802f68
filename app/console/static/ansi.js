// A job's log line with its ANSI colours, as DOM nodes: text nodes, and spans whose classes
// (pages.css) carry the colours. The line stays text whatever it holds: no HTML is ever parsed,
// and the strict CSP (no style attributes) is kept because colours are classes, not styles.
//
// Ansible closes its colours on the line that opened them, so each line is rendered on its own:
// a line shows the same wherever it is loaded (the tail, "load earlier", a live follow).
// Select Graphic Rendition (SGR: colours, bold, reset) is rendered; every other escape (cursor
// moves, window titles, ...) and control character is dropped.

// One escape sequence, or one control character, at a time:
//   CSI      ESC [ params intermediates final
//   strings  ESC ] (OSC), ESC P (DCS), ESC X, ESC ^, ESC _ ... up to BEL or ESC \ (or the line's end)
//   others   ESC intermediates final (ESC ( B, ESC c, ...), or a lone ESC
//   a C0 or C1 control character other than tab.
const ESCAPE =
  /\x1b\[([0-?]*)([ -/]*)([@-~])|\x1b[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[ -/]*[0-~]?|[\x00-\x08\x0a-\x1f\x7f-\x9f]/g;

function fresh() {
  return { bold: false, dim: false, italic: false, underline: false, fg: null, bg: null };
}

// Apply one SGR sequence's parameters ("1;31", "38;5;9", "" = reset) to `state`.
function applySgr(state, params) {
  const codes = params === "" ? [0] : params.split(/[;:]/).map((p) => (p === "" ? 0 : Number(p)));
  for (let i = 0; i < codes.length; i += 1) {
    const code = codes[i];
    if (code === 0) Object.assign(state, fresh());
    else if (code === 1) state.bold = true;
    else if (code === 2) state.dim = true;
    else if (code === 3) state.italic = true;
    else if (code === 4) state.underline = true;
    else if (code === 22) state.bold = state.dim = false;
    else if (code === 23) state.italic = false;
    else if (code === 24) state.underline = false;
    else if (code >= 30 && code <= 37) state.fg = code - 30;
    else if (code === 39) state.fg = null;
    else if (code >= 40 && code <= 47) state.bg = code - 40;
    else if (code === 49) state.bg = null;
    else if (code >= 90 && code <= 97) state.fg = code - 90 + 8;
    else if (code >= 100 && code <= 107) state.bg = code - 100 + 8;
    else if (code === 38 || code === 48) {
      // 256 colours (5;n) or true colour (2;r;g;b): the 16 basic ones have a class; the others
      // are left at the default colour (a class per colour would be 256 rules for little gain).
      const mode = codes[i + 1];
      if (mode === 5) {
        const n = codes[i + 2];
        if (Number.isInteger(n) && n >= 0 && n < 16) {
          if (code === 38) state.fg = n;
          else state.bg = n;
        }
        i += 2;
      } else if (mode === 2) {
        i += 4;
      } else {
        i = codes.length; // malformed: the rest of this sequence means nothing reliable
      }
    }
    // Any other code (blink, inverse, fonts...) is dropped.
  }
}

function classesOf(state) {
  const out = [];
  if (state.bold) out.push("ansi-bold");
  if (state.dim) out.push("ansi-dim");
  if (state.italic) out.push("ansi-italic");
  if (state.underline) out.push("ansi-underline");
  if (state.fg !== null) out.push(`ansi-fg-${state.fg}`);
  if (state.bg !== null) out.push(`ansi-bg-${state.bg}`);
  return out.join(" ");
}

// The pieces of `line`: [{text, classes}], classes "" for plain text; adjacent pieces with the
// same classes are merged.
export function parseAnsi(line) {
  const text = String(line ?? "");
  const pieces = [];
  const state = fresh();
  let classes = "";
  let last = 0;
  const push = (chunk) => {
    if (!chunk) return;
    const prev = pieces[pieces.length - 1];
    if (prev && prev.classes === classes) prev.text += chunk;
    else pieces.push({ text: chunk, classes });
  };
  ESCAPE.lastIndex = 0;
  let match;
  while ((match = ESCAPE.exec(text)) !== null) {
    push(text.slice(last, match.index));
    last = ESCAPE.lastIndex;
    const [, params, intermediates, final] = match;
    if (final === "m" && !intermediates && /^[0-9;:]*$/.test(params)) {
      applySgr(state, params);
      classes = classesOf(state);
    }
  }
  push(text.slice(last));
  return pieces;
}

// The line as DOM nodes: a text node for plain text, a <span class="ansi-..."> for coloured text.
export function ansiNodes(line) {
  return parseAnsi(line).map(({ text, classes }) => {
    if (!classes) return document.createTextNode(text);
    const span = document.createElement("span");
    span.className = classes;
    span.textContent = text;
    return span;
  });
}

// Text without its escapes and control characters, line breaks kept: a failed task's message
// or output, shown as plain text.
export function stripAnsi(text) {
  return String(text ?? "")
    .split(/\r?\n/)
    .map((line) =>
      parseAnsi(line)
        .map((p) => p.text)
        .join(""),
    )
    .join("\n");
}
