// Markdown to DOM nodes, with no HTML parsing at all: model output becomes text nodes and
// a few safe elements (paragraphs, headings, lists, code, emphasis, http(s) links), so an
// answer holding <script>, <img onerror=...> or javascript: links shows as text.

const INLINE = /(`[^`]+`)|(\*\*[^*]+\*\*)|(\*[^*\s][^*]*\*)|(\[[^\]]+\]\([^)\s]+\))/g;

function inline(parent, text) {
  let last = 0;
  for (const m of text.matchAll(INLINE)) {
    if (m.index > last) parent.append(text.slice(last, m.index));
    const t = m[0];
    if (m[1]) {
      const code = document.createElement("code");
      code.textContent = t.slice(1, -1);
      parent.append(code);
    } else if (m[2]) {
      const strong = document.createElement("strong");
      inline(strong, t.slice(2, -2));
      parent.append(strong);
    } else if (m[3]) {
      const em = document.createElement("em");
      inline(em, t.slice(1, -1));
      parent.append(em);
    } else {
      const [, label, href] = t.match(/^\[([^\]]+)\]\(([^)\s]+)\)$/);
      if (/^https?:\/\//i.test(href)) {
        const a = document.createElement("a");
        a.href = href;
        a.rel = "noopener noreferrer nofollow";
        a.target = "_blank";
        a.textContent = label;
        parent.append(a);
      } else {
        parent.append(t); // anything but http(s) stays text: no javascript:, data:, ...
      }
    }
    last = m.index + t.length;
  }
  if (last < text.length) parent.append(text.slice(last));
}

const normalize = (source) => source.replace(/\r\n?/g, "\n");

/** Renders `source` into `target`, replacing what was there. */
export function renderMarkdown(target, source) {
  target.replaceChildren(blocks(normalize(source).split("\n")));
}

/** Renders an answer that grows as it streams into `target`, and resets with it. The
 * blocks a blank line closed (outside a code block) are drawn once; only the open last
 * one is drawn again on each `update`, so a long answer costs what its last block does,
 * not what the whole answer does. The result is always what `renderMarkdown(target,
 * source)` draws: the renderer starts afresh after such a blank line. */
export function markdownStream(target) {
  let closed = ""; // the source drawn for good: it ends after a blank line
  let open = []; // the nodes of the rest, drawn again on each update
  return {
    update(source) {
      const text = normalize(source);
      if (!text.startsWith(closed)) {
        target.replaceChildren();
        closed = "";
        open = [];
      }
      const rest = text.slice(closed.length);
      const cut = closedPart(rest);
      for (const node of open) node.remove();
      if (cut > 0) {
        target.append(blocks(rest.slice(0, cut).split("\n")));
        closed += rest.slice(0, cut);
      }
      const tail = blocks(rest.slice(cut).split("\n"));
      open = [...tail.childNodes];
      target.append(tail);
    },
  };
}

/** How much of `text` ends with a finished blank line outside a code block (0 if none). */
function closedPart(text) {
  let fenced = false;
  let end = 0;
  let at = 0;
  for (;;) {
    const nl = text.indexOf("\n", at);
    if (nl < 0) return end; // the last line is still being written
    const line = text.slice(at, nl);
    if (line.startsWith("```")) fenced = !fenced;
    else if (!fenced && !line.trim()) end = nl + 1;
    at = nl + 1;
  }
}

/** The blocks of `lines`, as a fragment. */
function blocks(lines) {
  const target = document.createDocumentFragment();
  let list = null;
  let para = [];
  const flush = () => {
    if (para.length) {
      const p = document.createElement("p");
      inline(p, para.join(" "));
      target.append(p);
      para = [];
    }
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.startsWith("```")) {
      flush();
      list = null;
      const code = [];
      for (i++; i < lines.length && !lines[i].startsWith("```"); i++) code.push(lines[i]);
      const pre = document.createElement("pre");
      const c = document.createElement("code");
      c.textContent = code.join("\n");
      pre.append(c);
      target.append(pre);
      continue;
    }
    const heading = line.match(/^(#{1,4})\s+(.*)$/);
    const item = line.match(/^\s*(?:[-*+]|(\d+)[.)])\s+(.*)$/);
    if (heading) {
      flush();
      list = null;
      const h = document.createElement(`h${Math.min(heading[1].length + 3, 6)}`);
      inline(h, heading[2]);
      target.append(h);
    } else if (item) {
      flush();
      const kind = item[1] ? "OL" : "UL";
      if (!list || list.tagName !== kind) {
        list = document.createElement(kind.toLowerCase());
        // A list that goes on after a blank line ("1. a", "", "2. b") counts from its own
        // first number, as CommonMark does, instead of from 1 again.
        if (kind === "OL" && Number(item[1]) > 1) list.start = Number(item[1]);
        target.append(list);
      }
      const li = document.createElement("li");
      inline(li, item[2]);
      list.append(li);
    } else if (!line.trim()) {
      flush();
      list = null;
    } else {
      list = null;
      para.push(line.trim());
    }
  }
  flush();
  return target;
}
