// Compaction: when the transcript nears the context window, the oldest turns are
// summarised by the model and replaced by that summary; recent turns are kept
// verbatim. A split never separates a tool call from its result.
import type { ChatMessage } from '../plugin-api.ts';
import { messageTokens } from './accounting.ts';
import type { StoredMessage } from './store.ts';

const hasToolResult = (m: ChatMessage) => m.role === 'user' && m.content.some((p) => p.type === 'tool_result');

/**
 * Index of the first message to keep: messages before it are summarised. Prefers
 * the earliest boundary whose kept tail fits `keepTokens`; -1 if there is no
 * boundary at all (one turn fills the window).
 */
export function chooseSplit(messages: StoredMessage[], keepTokens: number): number {
  let kept = 0;
  let best = -1;
  let latestValid = -1;
  for (let i = messages.length - 1; i >= 1; i--) {
    kept += messageTokens(messages[i].message);
    if (hasToolResult(messages[i].message)) continue; // would orphan its tool call
    if (latestValid < 0) latestValid = i;
    if (kept <= keepTokens) best = i;
    else break;
  }
  return best > 0 ? best : latestValid;
}

export const SUMMARY_SYSTEM =
  'You compress conversations for an AI assistant. Write a concise summary of the conversation below that keeps every fact, decision, open task, name, number and preference the assistant will need to continue. Plain prose or bullet points; no preamble. ' +
  'Then, on its own line, write "DURABLE FACTS:" followed by one "- " bullet per fact about the user or their world worth remembering for weeks (preferences, people, commitments, settled decisions), or "DURABLE FACTS: none".';

const FACTS_MARK = /^\s*DURABLE FACTS:\s*(.*)$/im;

/**
 * The summariser's answer, split: the summary that replaces the old turns, and the
 * durable facts to write to long-term memory before they leave the context.
 */
export function splitSummary(text: string): { summary: string; facts: string[] } {
  const m = FACTS_MARK.exec(text);
  if (!m) return { summary: text.trim(), facts: [] };
  const summary = text.slice(0, m.index).trim();
  const rest = [m[1], ...text.slice(m.index + m[0].length).split('\n')];
  const facts = rest
    .map((l) => l.trim().replace(/^[-*•]\s*/, '').trim())
    .filter((l) => l !== '' && !/^none\.?$/i.test(l))
    .slice(0, 50);
  return { summary, facts };
}

/** Old turns as plain text for the summariser (tool payloads truncated). */
export function renderForSummary(previousSummary: string | null, messages: ChatMessage[]): string {
  const lines: string[] = [];
  if (previousSummary) lines.push(`Summary so far:\n${previousSummary}\n`);
  lines.push('Conversation to add to the summary:');
  for (const m of messages) {
    for (const p of m.content) {
      if (p.type === 'text') lines.push(`${m.role === 'user' ? 'User' : 'Assistant'}: ${p.text}`);
      else if (p.type === 'tool_call') lines.push(`Assistant called ${p.name} ${clip(typeof p.input === 'string' ? p.input : JSON.stringify(p.input), 400)}`);
      else lines.push(`Tool result${p.isError ? ' (error)' : ''}: ${clip(p.content, 800)}`);
    }
  }
  return lines.join('\n');
}

const clip = (s: string, n: number) => (s.length > n ? s.slice(0, n) + '…' : s);

export const SUMMARY_PREFIX = '[Summary of the earlier conversation, compacted to fit the context window]\n';
