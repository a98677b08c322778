import { segments } from './chunk.ts';

// The agent writes Markdown; channels render different amounts of it.
//   full  — passed through unchanged.
//   basic — bold, italic, inline code, code blocks and links survive; headings
//           become bold lines, images become "alt (url)", horizontal rules go.
//   none  — plain text: markers removed, links "text (url)", code blocks keep
//           their content without fences. Code is never rewritten.

export type MarkdownLevel = 'none' | 'basic' | 'full';

function inlineNone(line: string): string {
  // Inline code first, protected from the emphasis rules.
  const codes: string[] = [];
  let s = line.replace(/`([^`\n]+)`/g, (_, c: string) => `\u0000${codes.push(c) - 1}\u0000`);
  s = s
    .replace(/^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$/, '$1')
    .replace(/^ {0,3}([-*_])(\s*\1){2,}\s*$/, '')
    .replace(/!\[([^\]]*)\]\(([^)\s]+)[^)]*\)/g, (_, alt: string, url: string) => (alt ? `${alt} (${url})` : url))
    .replace(/\[([^\]]+)\]\(([^)\s]+)[^)]*\)/g, (_, text: string, url: string) => (text === url ? url : `${text} (${url})`))
    .replace(/(\*\*|__)(?=\S)(.+?)(?<=\S)\1/g, '$2')
    .replace(/(^|[^\w*])\*(?=\S)(.+?)(?<=\S)\*(?!\w)/g, '$1$2')
    .replace(/(^|[^\w])_(?=\S)(.+?)(?<=\S)_(?!\w)/g, '$1$2')
    .replace(/~~(?=\S)(.+?)(?<=\S)~~/g, '$1');
  return s.replace(/\u0000(\d+)\u0000/g, (_, i: string) => codes[Number(i)]);
}

function inlineBasic(line: string): string {
  const codes: string[] = [];
  let s = line.replace(/`([^`\n]+)`/g, (m: string) => `\u0000${codes.push(m) - 1}\u0000`);
  s = s
    .replace(/^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$/, (_, h: string) => (h ? `**${h}**` : ''))
    .replace(/^ {0,3}([-*_])(\s*\1){2,}\s*$/, '')
    .replace(/!\[([^\]]*)\]\(([^)\s]+)[^)]*\)/g, (_, alt: string, url: string) => (alt ? `${alt} (${url})` : url));
  return s.replace(/\u0000(\d+)\u0000/g, (_, i: string) => codes[Number(i)]);
}

export function adaptMarkdown(text: string, level: MarkdownLevel): string {
  if (level === 'full') return text;
  const inline = level === 'none' ? inlineNone : inlineBasic;
  return segments(text)
    .map((seg) => {
      if (seg.kind === 'code') return level === 'none' ? seg.body!.join('\n') : seg.text;
      return seg.text.split('\n').map(inline).join('\n');
    })
    .join('\n');
}
