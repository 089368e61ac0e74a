// Markdown for replies, built as DOM nodes. Text only ever enters the page as text nodes, links only
// with an http, https or mailto address, and no attribute takes model text but a checked href: so
// nothing a model writes can run, load or style anything.
//
// The subset models write: paragraphs, headings, emphasis, strikethrough, inline code, fenced code,
// lists (nested, ordered), block quotes, rules, tables and links. No raw HTML: it shows as written.

const SAFE_PROTOCOLS = new Set(["http:", "https:", "mailto:"]);
const PUNCTUATION = /[!-/:-@[-`{-~]/;

const BLANK = /^[ \t]*$/;
const FENCE = /^( {0,3})(`{3,}|~{3,})(.*)$/;
const HEADING = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
const RULE = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const QUOTE = /^ {0,3}> ?(.*)$/;
const ITEM = /^( {0,3})([-*+]|\d{1,9}[.)])(?:[ \t]+(.*))?$/;
const DELIMITER_ROW = /^ {0,3}\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$/;

/** The address to link to, or null unless it is an absolute http, https or mailto URL. */
export function safeHref(raw) {
  const href = raw.trim();
  if (!/^(?:https?:\/\/|mailto:)/i.test(href)) return null;
  try {
    const url = new URL(href);
    return SAFE_PROTOCOLS.has(url.protocol) ? url.href : null;
  } catch {
    return null;
  }
}

/** Markdown text as a DocumentFragment. */
export function renderMarkdown(text) {
  const fragment = document.createDocumentFragment();
  appendBlocks(fragment, parseBlocks(splitLines(text)));
  return fragment;
}

/**
 * A reply's Markdown, shown as it streams. Blocks that are finished (some later block has begun on
 * a whole line) are rendered once and kept; only the unfinished rest is rendered again, at most
 * once per frame. So a long reply costs about the same per piece at its end as at its start.
 */
export class MarkdownView {
  constructor(root) {
    this.root = root;
    this.source = "";
    this.kept = 0; // the source before this offset is rendered for good
    this.live = []; // the nodes of the unfinished rest
    this.frame = 0;
  }

  get text() {
    return this.source;
  }

  /** Show `text` as the whole reply, at once. */
  set(text) {
    cancelAnimationFrame(this.frame);
    this.frame = 0;
    this.root.replaceChildren();
    this.source = text;
    this.kept = 0;
    this.live = [];
    this.render();
  }

  append(text) {
    this.source += text;
    if (!this.frame) this.frame = requestAnimationFrame(() => this.render());
  }

  /** Render what has come since the last time, now. */
  render() {
    cancelAnimationFrame(this.frame);
    this.frame = 0;
    for (const node of this.live) node.remove();
    this.live = [];
    const rest = this.source.slice(this.kept);
    // Only whole lines decide where a block ends: a half-written line may still become anything.
    const whole = rest.lastIndexOf("\n") + 1;
    if (whole) {
      const lines = splitLines(rest.slice(0, whole - 1));
      const blocks = parseBlocks(lines);
      if (blocks.length > 1) {
        const done = blocks.slice(0, -1);
        appendBlocks(this.root, done, this.root.hasChildNodes());
        this.kept += lineOffset(lines, done.at(-1).end);
      }
    }
    const fragment = document.createDocumentFragment();
    appendBlocks(fragment, parseBlocks(splitLines(this.source.slice(this.kept))), this.root.hasChildNodes());
    this.live = [...fragment.childNodes];
    this.root.append(fragment);
  }
}

function splitLines(text) {
  return text.replace(/\r\n?/g, "\n").split("\n");
}

/** Where line `index` starts, in characters of the text the lines came from. */
function lineOffset(lines, index) {
  let offset = 0;
  for (let i = 0; i < index; i++) offset += lines[i].length + 1;
  return offset;
}

const indentOf = (line) => /^[ \t]*/.exec(line)[0].replace(/\t/g, "    ").length;

function dedent(line, width) {
  let i = 0;
  let removed = 0;
  while (i < line.length && removed < width && (line[i] === " " || line[i] === "\t")) {
    removed += line[i] === "\t" ? 4 : 1;
    i++;
  }
  return line.slice(i);
}

/** Whether `line` starts a block that ends a paragraph before it. */
function interrupts(line) {
  if (FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line)) return true;
  const item = ITEM.exec(line);
  return item !== null && Boolean(item[3]);
}

function isTableStart(lines, i) {
  if (i + 1 >= lines.length || !lines[i].includes("|") || !DELIMITER_ROW.test(lines[i + 1])) return false;
  return tableCells(lines[i]).length === tableCells(lines[i + 1]).length;
}

/** The cells of a table row: split at each `|` that is neither escaped nor in inline code. */
function tableCells(line) {
  let row = line.trim();
  if (row.startsWith("|")) row = row.slice(1);
  if (row.endsWith("|") && !row.endsWith("\\|")) row = row.slice(0, -1);
  const cells = [];
  let cell = "";
  for (let i = 0; i < row.length; i++) {
    if (row[i] === "`") {
      const run = /^`+/.exec(row.slice(i))[0];
      const close = findCodeEnd(row, i + run.length, run.length);
      const end = close === -1 ? i + run.length : close + run.length;
      cell += row.slice(i, end);
      i = end - 1;
    } else if (row[i] === "\\" && row[i + 1] === "|") {
      cell += "|";
      i++;
    } else if (row[i] === "|") {
      cells.push(cell.trim());
      cell = "";
    } else cell += row[i];
  }
  cells.push(cell.trim());
  return cells;
}

/** Blocks of `lines`, each with the line where it starts and the line after its end. */
function parseBlocks(lines) {
  const blocks = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    let match;
    if (BLANK.test(line)) {
      i++;
    } else if ((match = FENCE.exec(line)) && !(match[2][0] === "`" && match[3].includes("`"))) {
      const [, indent, fence, info] = match;
      const body = [];
      let j = i + 1;
      for (; j < lines.length; j++) {
        const close = /^ {0,3}(`{3,}|~{3,})[ \t]*$/.exec(lines[j]);
        if (close && close[1][0] === fence[0] && close[1].length >= fence.length) {
          j++;
          break;
        }
        body.push(dedent(lines[j], indent.length));
      }
      blocks.push({ type: "code", language: info.trim().split(/\s+/)[0], text: body.join("\n"), start: i, end: j });
      i = j;
    } else if ((match = HEADING.exec(line))) {
      blocks.push({ type: "heading", level: match[1].length, text: match[2] ?? "", start: i, end: i + 1 });
      i++;
    } else if (RULE.test(line)) {
      blocks.push({ type: "rule", start: i, end: i + 1 });
      i++;
    } else if (QUOTE.test(line)) {
      const inner = [];
      let j = i;
      while (j < lines.length && !BLANK.test(lines[j])) {
        const quoted = QUOTE.exec(lines[j]);
        if (quoted) inner.push(quoted[1]);
        else if (interrupts(lines[j])) break;
        else inner.push(lines[j]); // a lazy continuation of the quoted paragraph
        j++;
      }
      blocks.push({ type: "quote", children: parseBlocks(inner), start: i, end: j });
      i = j;
    } else if (ITEM.test(line)) {
      const list = parseList(lines, i);
      blocks.push(list);
      i = list.end;
    } else if (isTableStart(lines, i)) {
      const align = tableCells(lines[i + 1]).map((cell) =>
        cell.endsWith(":") ? (cell.startsWith(":") ? "center" : "right") : cell.startsWith(":") ? "left" : null,
      );
      const rows = [];
      let j = i + 2;
      while (j < lines.length && !BLANK.test(lines[j]) && lines[j].includes("|")) rows.push(tableCells(lines[j++]));
      blocks.push({ type: "table", head: tableCells(lines[i]), align, rows, start: i, end: j });
      i = j;
    } else {
      const text = [line.trim()];
      let j = i + 1;
      while (j < lines.length && !BLANK.test(lines[j]) && !interrupts(lines[j]) && !isTableStart(lines, j)) {
        text.push(lines[j].trim());
        j++;
      }
      blocks.push({ type: "paragraph", text: text.join("\n"), start: i, end: j });
      i = j;
    }
  }
  return blocks;
}

function parseList(lines, start) {
  const first = ITEM.exec(lines[start]);
  const ordered = /\d/.test(first[2]);
  const items = [];
  let loose = false;
  let i = start;
  while (i < lines.length) {
    const match = ITEM.exec(lines[i]);
    if (!match || RULE.test(lines[i]) || /\d/.test(match[2]) !== ordered) break;
    const indent = match[1].length;
    const contentIndent = indent + match[2].length + 1;
    const content = [match[3] ?? ""];
    let j = i + 1;
    let blank = false;
    let inFence = false; // blank lines in an item's fenced code do not make the list loose
    while (j < lines.length) {
      const line = lines[j];
      if (BLANK.test(line)) {
        blank = true;
        content.push("");
      } else if (indentOf(line) >= indent + 2) {
        const inner = dedent(line, Math.min(indentOf(line), contentIndent));
        if (blank && !inFence) loose = true;
        if (FENCE.test(inner)) inFence = !inFence;
        blank = false;
        content.push(inner);
      } else if (!blank && !interrupts(line) && !ITEM.test(line)) {
        content.push(line.trim()); // a lazy continuation of the item's paragraph
      } else break;
      j++;
    }
    let end = j;
    while (content.length > 1 && content.at(-1) === "") {
      content.pop();
      end--;
    }
    items.push(parseBlocks(content));
    i = j;
    if (end < j) {
      // Blank lines after an item: the list goes on only if another item of its kind follows.
      const next = i < lines.length ? ITEM.exec(lines[i]) : null;
      if (next && !RULE.test(lines[i]) && /\d/.test(next[2]) === ordered) loose = true;
      else {
        i = end;
        break;
      }
    }
  }
  return { type: "list", ordered, first: ordered ? parseInt(first[2], 10) : 1, items, loose, start, end: i };
}

const ENTITIES = { "&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": '"', "&#39;": "'", "&#x27;": "'", "&#34;": '"' };

/**
 * A search snippet as nodes. The server sends it HTML-escaped with matches in <mark>: only those
 * two tags become elements, the rest (its few entities decoded) is text, whatever it holds.
 */
export function snippetNodes(snippet) {
  const nodes = [];
  const text = (part) => part.replace(/&(?:amp|lt|gt|quot|#39|#x27|#34);/g, (entity) => ENTITIES[entity]);
  const parts = snippet.split(/(<mark>[^<]*<\/mark>)/);
  for (const part of parts) {
    const mark = /^<mark>([^<]*)<\/mark>$/.exec(part);
    if (mark) {
      const node = element("mark");
      node.textContent = text(mark[1]);
      nodes.push(node);
    } else if (part) nodes.push(document.createTextNode(text(part)));
  }
  return nodes;
}

// ---- rendering ---------------------------------------------------------------------------------

function element(tag, className) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  return node;
}

/** Append the blocks; `separate` puts a line break before the first, as between any two. */
function appendBlocks(parent, blocks, separate = false) {
  for (const block of blocks) {
    // A line break between blocks, so that the text of the whole reads as its source does.
    if (separate) parent.append("\n");
    separate = true;
    parent.append(renderBlock(block));
  }
}

function renderBlock(block) {
  switch (block.type) {
    case "paragraph": {
      const p = element("p");
      appendInline(p, block.text);
      return p;
    }
    case "heading": {
      // The page's own headings are h1 and h2: a reply's start below them.
      const heading = element(`h${Math.min(block.level + 2, 6)}`);
      appendInline(heading, block.text);
      return heading;
    }
    case "rule":
      return element("hr");
    case "code":
      return codeBlock(block.text, block.language);
    case "quote": {
      const quote = element("blockquote");
      appendBlocks(quote, block.children);
      return quote;
    }
    case "list": {
      const list = element(block.ordered ? "ol" : "ul");
      if (block.ordered && block.first !== 1) list.start = block.first;
      for (const children of block.items) {
        const item = element("li");
        const tight = !block.loose && children[0]?.type === "paragraph";
        appendBlocks(item, children);
        // A tight list's items hold their text without a paragraph's spacing.
        if (tight) item.firstChild.className = "tight";
        list.append(item);
      }
      return list;
    }
    case "table":
      return table(block);
    default:
      throw new Error(`unknown block ${block.type}`);
  }
}

function codeBlock(text, language) {
  const wrapper = element("div", "code-block");
  const bar = element("div", "code-bar");
  const label = element("span", "code-language");
  label.textContent = language || "code";
  const copy = element("button", "button subtle small code-copy");
  copy.type = "button";
  copy.textContent = "Copy code";
  bar.append(label, copy);
  const pre = element("pre");
  const code = element("code");
  code.textContent = text;
  pre.append(code);
  wrapper.append(bar, pre);
  return wrapper;
}

function table(block) {
  const scroller = element("div", "table-scroll");
  const tableNode = element("table");
  const row = (cells, tag) => {
    const tr = element("tr");
    block.head.forEach((_, index) => {
      const cell = element(tag, block.align[index] ? `align-${block.align[index]}` : undefined);
      appendInline(cell, cells[index] ?? "");
      tr.append(cell);
    });
    return tr;
  };
  const head = element("thead");
  head.append(row(block.head, "th"));
  tableNode.append(head);
  if (block.rows.length) {
    const body = element("tbody");
    for (const cells of block.rows) body.append(row(cells, "td"));
    tableNode.append(body);
  }
  scroller.append(tableNode);
  return scroller;
}

// ---- inline ------------------------------------------------------------------------------------

const isSpace = (c) => c === undefined || /\s/.test(c);
const isWordChar = (c) => c !== undefined && /[\p{L}\p{N}]/u.test(c);

/** Append `text`'s inline Markdown to `parent`. */
function appendInline(parent, text) {
  let plain = "";
  const flush = () => {
    if (plain) parent.append(plain);
    plain = "";
  };
  const add = (node) => {
    flush();
    parent.append(node);
  };
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === "\\" && PUNCTUATION.test(text[i + 1] ?? "")) {
      plain += text[i + 1];
      i += 2;
      continue;
    }
    if (c === "\\" && text[i + 1] === "\n") {
      i++; // a hard line break: the newline itself shows as one
      continue;
    }
    if (c === "`") {
      const run = /^`+/.exec(text.slice(i))[0];
      const close = findCodeEnd(text, i + run.length, run.length);
      if (close === -1) {
        plain += run;
        i += run.length;
        continue;
      }
      let inner = text.slice(i + run.length, close).replace(/\n/g, " ");
      if (/^ .*[^ ].* $/.test(inner)) inner = inner.slice(1, -1);
      const code = element("code");
      code.textContent = inner;
      add(code);
      i = close + run.length;
      continue;
    }
    if (c === "*" || c === "_" || c === "~") {
      const run = new RegExp(`^\\${c}+`).exec(text.slice(i))[0];
      const emphasis = matchEmphasis(text, i, run);
      if (emphasis) {
        add(emphasis.node);
        i = emphasis.end;
      } else {
        plain += run;
        i += run.length;
      }
      continue;
    }
    if (c === "[" || (c === "!" && text[i + 1] === "[")) {
      const link = matchLink(text, c === "!" ? i + 1 : i);
      if (link) {
        add(link.node);
        i = link.end;
        continue;
      }
    }
    if (c === "<") {
      const auto = /^<((?:https?:\/\/|mailto:)[^\s<>]+)>/i.exec(text.slice(i));
      const href = auto && safeHref(auto[1]);
      if (href) {
        add(anchor(href, auto[1]));
        i += auto[0].length;
        continue;
      }
    }
    if ((c === "h" || c === "H") && !isWordChar(text[i - 1])) {
      const bare = /^https?:\/\/[^\s<>]+/i.exec(text.slice(i));
      if (bare) {
        const url = trimUrl(bare[0]);
        const href = safeHref(url);
        if (href) {
          add(anchor(href, url));
          i += url.length;
          continue;
        }
      }
    }
    plain += c;
    i++;
  }
  flush();
}

function findCodeEnd(text, from, length) {
  let at = from;
  for (;;) {
    const found = text.indexOf("`".repeat(length), at);
    if (found === -1) return -1;
    let end = found + length;
    while (text[end] === "`") end++;
    if (end - found === length) return found;
    at = end;
  }
}

/** `*em*`, `**strong**`, `***both***`, the same with `_`, and `~~struck~~`, from `text[at]`. */
function matchEmphasis(text, at, run) {
  const c = run[0];
  const length = c === "~" ? (run.length === 2 ? 2 : 0) : Math.min(run.length, 3);
  if (!length || run.length !== length) return null;
  const after = text[at + length];
  if (isSpace(after)) return null;
  if (c === "_" && isWordChar(text[at - 1])) return null; // snake_case stays as it is
  const delimiter = c.repeat(length);
  let from = at + length + 1;
  for (;;) {
    const close = text.indexOf(delimiter, from);
    if (close === -1) return null;
    const ok =
      !isSpace(text[close - 1]) &&
      text[close + length] !== c &&
      text[close - 1] !== c &&
      !(c === "_" && isWordChar(text[close + length]));
    if (ok) {
      const inner = text.slice(at + length, close);
      let node;
      if (c === "~") node = element("del");
      else if (length === 1) node = element("em");
      else node = element("strong");
      if (length === 3) {
        const em = element("em");
        appendInline(em, inner);
        node.append(em);
      } else appendInline(node, inner);
      return { node, end: close + length };
    }
    from = close + 1;
  }
}

/** `[text](url "title")`, from the `[` at `text[at]`; an image's `!` before it links to the image. */
function matchLink(text, at) {
  let depth = 0;
  let close = -1;
  for (let i = at; i < text.length; i++) {
    if (text[i] === "\\") i++;
    else if (text[i] === "[") depth++;
    else if (text[i] === "]" && --depth === 0) {
      close = i;
      break;
    }
  }
  if (close === -1 || text[close + 1] !== "(") return null;
  const target = /^\(\s*(<[^<>\n]*>|(?:[^\s()\\]|\\.|\((?:[^\s()\\]|\\.)*\))*)(?:\s+("[^"]*"|'[^']*'|\([^)]*\)))?\s*\)/.exec(
    text.slice(close + 1),
  );
  if (!target) return null;
  let destination = target[1];
  if (destination.startsWith("<")) destination = destination.slice(1, -1);
  destination = destination.replace(/\\([!-/:-@[-`{-~])/g, "$1");
  const label = text.slice(at + 1, close);
  const end = close + 1 + target[0].length;
  const href = safeHref(destination);
  if (!href) {
    // Not a kind of address the page opens: the text shows, without a link.
    const span = element("span", "unsafe-link");
    appendInline(span, label);
    return { node: span, end };
  }
  const node = anchor(href);
  appendInline(node, label || destination);
  return { node, end };
}

function anchor(href, text) {
  const node = element("a");
  node.href = href;
  node.target = "_blank";
  node.rel = "noopener noreferrer nofollow";
  if (text !== undefined) node.textContent = text;
  return node;
}

/** A bare URL without the punctuation that ends the sentence around it. */
function trimUrl(url) {
  let end = url.length;
  for (;;) {
    const last = url[end - 1];
    if (/[.,;:!?'"*_~]/.test(last)) end--;
    else if (last === ")" && count(url.slice(0, end), "(") < count(url.slice(0, end), ")")) end--;
    else break;
  }
  return url.slice(0, end);
}

const count = (text, c) => text.split(c).length - 1;
