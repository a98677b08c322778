// The YAML subset SKILL.md frontmatter uses in practice (OpenClaw, AgentSkills,
// ClawHub): `key: value` maps nested by indentation, `- item` lists, quoted and
// plain scalars, `|`/`>` block scalars, and JSON/flow values (OpenClaw writes
// `metadata` as one-line JSON). Enough for real skills without a YAML dependency;
// anything else is kept as a string rather than failing the whole skill.

export interface Frontmatter {
  data: Record<string, unknown>;
  body: string;
}

export function splitFrontmatter(text: string): Frontmatter {
  const src = text.replace(/^\uFEFF/, '').replace(/\r\n?/g, '\n');
  if (!src.startsWith('---\n')) return { data: {}, body: src };
  const end = src.indexOf('\n---', 4);
  if (end < 0) return { data: {}, body: src };
  const after = src.indexOf('\n', end + 4);
  const yaml = src.slice(4, end + 1);
  return { data: parseYamlSubset(yaml), body: after < 0 ? '' : src.slice(after + 1) };
}

export function parseYamlSubset(yaml: string): Record<string, unknown> {
  const value = parseBlock({ lines: yaml.split('\n'), i: 0 }, 0);
  return isMap(value) ? value : {};
}

type Ctx = { lines: string[]; i: number };

const indentOf = (l: string) => l.length - l.trimStart().length;
const blank = (l: string) => l.trim() === '' || l.trim().startsWith('#');

function skipBlank(ctx: Ctx): void {
  while (ctx.i < ctx.lines.length && blank(ctx.lines[ctx.i])) ctx.i++;
}

function parseBlock(ctx: Ctx, minIndent: number): unknown {
  skipBlank(ctx);
  if (ctx.i >= ctx.lines.length) return null;
  const first = ctx.lines[ctx.i];
  const indent = indentOf(first);
  if (indent < minIndent) return null;
  if (first.trim().startsWith('- ') || first.trim() === '-') return parseList(ctx, indent);
  return parseMap(ctx, indent);
}

function parseMap(ctx: Ctx, indent: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  while (true) {
    skipBlank(ctx);
    if (ctx.i >= ctx.lines.length) break;
    const line = ctx.lines[ctx.i];
    if (indentOf(line) !== indent) break;
    const m = /^("[^"]*"|'[^']*'|[^:#]+?)\s*:(?:\s+(.*))?$/.exec(line.trim());
    if (!m) break;
    ctx.i++;
    const key = unquote(m[1]);
    if (key === '__proto__' || key === 'constructor' || key === 'prototype') continue;
    out[key] = parseValue(ctx, m[2] ?? '', indent);
  }
  return out;
}

function parseList(ctx: Ctx, indent: number): unknown[] {
  const out: unknown[] = [];
  while (true) {
    skipBlank(ctx);
    if (ctx.i >= ctx.lines.length) break;
    const line = ctx.lines[ctx.i];
    const t = line.trim();
    if (indentOf(line) !== indent || !(t.startsWith('- ') || t === '-')) break;
    const rest = t.slice(1).trim();
    const kv = /^("[^"]*"|'[^']*'|[^:#\s][^:#]*?)\s*:(?:\s+(.*))?$/.exec(rest);
    if (kv && !rest.startsWith('{') && !rest.startsWith('[') && !rest.startsWith('"')) {
      // "- key: value" starts a map whose other keys sit at the dash's content column.
      const column = indent + (t.length - rest.length);
      ctx.lines[ctx.i] = ' '.repeat(column) + rest;
      out.push(parseMap(ctx, column));
    } else {
      ctx.i++;
      out.push(parseValue(ctx, rest, indent));
    }
  }
  return out;
}

function parseValue(ctx: Ctx, text: string, indent: number): unknown {
  const t = stripComment(text).trim();
  if (t === '') return parseBlock(ctx, indent + 1);
  if (t === '|' || t === '>' || /^[|>][+-]?$/.test(t)) return blockScalar(ctx, indent, t.startsWith('>'));
  if (t.startsWith('{') || t.startsWith('[')) {
    // JSON or flow collection, possibly continued over more lines until balanced.
    let acc = t;
    while (!balanced(acc) && ctx.i < ctx.lines.length) acc += '\n' + ctx.lines[ctx.i++];
    try {
      return JSON.parse(acc);
    } catch {
      return flow(acc);
    }
  }
  return scalar(t);
}

function blockScalar(ctx: Ctx, indent: number, folded: boolean): string {
  const parts: string[] = [];
  let inner = -1;
  while (ctx.i < ctx.lines.length) {
    const l = ctx.lines[ctx.i];
    if (l.trim() !== '') {
      const ind = indentOf(l);
      if (ind <= indent) break;
      if (inner < 0) inner = ind;
    }
    parts.push(l.slice(Math.max(0, inner)));
    ctx.i++;
  }
  while (parts.length && parts[parts.length - 1].trim() === '') parts.pop();
  return folded ? parts.join(' ').replace(/\s+/g, ' ').trim() : parts.join('\n') + '\n';
}

function balanced(s: string): boolean {
  let depth = 0;
  let quote: string | null = null;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (quote) {
      if (c === '\\') i++;
      else if (c === quote) quote = null;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') depth--;
  }
  return depth <= 0;
}

/** A YAML flow collection that is not strict JSON: `[gh, curl]`, `{os: [linux]}`. */
function flow(s: string): unknown {
  let i = 0;
  const ws = () => {
    while (i < s.length && /\s/.test(s[i])) i++;
  };
  const atom = (stops: string): string => {
    ws();
    if (s[i] === '"' || s[i] === "'") {
      const q = s[i++];
      let out = '';
      while (i < s.length && s[i] !== q) out += s[i] === '\\' && q === '"' ? s[++i] : s[i], i++;
      i++;
      return out;
    }
    const start = i;
    while (i < s.length && !stops.includes(s[i])) i++;
    return s.slice(start, i).trim();
  };
  const value = (): unknown => {
    ws();
    if (s[i] === '[') {
      i++;
      const arr: unknown[] = [];
      while (i < s.length) {
        ws();
        if (s[i] === ']') return i++, arr;
        arr.push(value());
        ws();
        if (s[i] === ',') i++;
      }
      return arr;
    }
    if (s[i] === '{') {
      i++;
      const obj: Record<string, unknown> = {};
      while (i < s.length) {
        ws();
        if (s[i] === '}') return i++, obj;
        const k = atom(':}');
        if (s[i] === ':') i++;
        const v = value();
        if (k && k !== '__proto__') obj[k] = v;
        ws();
        if (s[i] === ',') i++;
      }
      return obj;
    }
    const quoted = s[i] === '"' || s[i] === "'";
    const a = atom(',]}');
    return quoted ? a : scalar(a);
  };
  return value();
}

function stripComment(t: string): string {
  if (t.startsWith('"') || t.startsWith("'") || t.startsWith('{') || t.startsWith('[')) return t;
  const m = /\s#/.exec(t);
  return m ? t.slice(0, m.index) : t;
}

function unquote(t: string): string {
  if (t.length >= 2 && t.startsWith('"') && t.endsWith('"')) {
    try {
      return JSON.parse(t);
    } catch {
      return t.slice(1, -1);
    }
  }
  if (t.length >= 2 && t.startsWith("'") && t.endsWith("'")) return t.slice(1, -1).replace(/''/g, "'");
  return t;
}

function scalar(t: string): unknown {
  if (t.startsWith('"') || t.startsWith("'")) return unquote(t);
  if (t === 'true' || t === 'True') return true;
  if (t === 'false' || t === 'False') return false;
  if (t === 'null' || t === '~') return null;
  if (/^-?\d+(\.\d+)?$/.test(t)) return Number(t);
  return t;
}

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
