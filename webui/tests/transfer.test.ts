import { describe, expect, it } from 'vitest';
import type { Conversation } from '../src/lib/api';
import { ImportError, exportFileName, parseImport, toJson, toMarkdown } from '../src/lib/transfer';

const conv: Conversation = {
  id: 'c-1',
  title: 'Colours',
  pinned: false,
  model: 'qwen',
  mode: 'normal',
  created_at: 1_700_000_000,
  updated_at: 1_700_000_100,
  system_prompt: 'Be brief.',
  settings: { temperature: 0.2 },
  messages: [
    { role: 'user', content: 'What is RGB?' },
    { role: 'assistant', content: 'Red, green, **blue**.', reasoning: 'easy', stats: { ttft_ms: 9, tokens_per_second: 40, prompt_tokens: 3, completion_tokens: 5 } },
  ],
};

describe('export', () => {
  it('writes Markdown a person can read', () => {
    const md = toMarkdown([conv]);
    expect(md).toContain('# Colours\n');
    expect(md).toContain('_qwen · 2023-11-14 22:13_');
    expect(md).toContain('## System\n\nBe brief.\n');
    expect(md).toContain('## User\n\nWhat is RGB?\n\n## Assistant\n\nRed, green, **blue**.\n');
    expect(toMarkdown([conv, { ...conv, title: '' }])).toContain('\n---\n\n# Untitled conversation');
  });

  it('writes JSON that imports back to the same conversation', () => {
    const [back] = parseImport(toJson([conv]));
    expect(back).toEqual({
      title: 'Colours',
      model: 'qwen',
      mode: 'normal',
      system_prompt: 'Be brief.',
      settings: { temperature: 0.2 },
      messages: conv.messages,
    });
    expect(parseImport(JSON.stringify(conv))).toHaveLength(1); // one conversation alone
    expect(parseImport(JSON.stringify([conv, conv]))).toHaveLength(2); // or a list
  });

  it('names files after the title and the day', () => {
    expect(exportFileName('Colours / RGB?', 'md', new Date('2026-12-02T05:00:00Z'))).toBe('Colours-RGB-2026-12-02.md');
    expect(exportFileName(null, 'json', new Date('2026-12-02T05:00:00Z'))).toBe('conversations-2026-12-02.json');
  });
});

describe('import of a ChatGPT export', () => {
  const node = (id: string, parent: string | null, role: string | null, text: string[], children: string[]) => ({
    id,
    parent,
    children,
    message: role === null ? null : { author: { role }, content: { content_type: 'text', parts: text } },
  });
  const chatgpt = [
    {
      title: 'Horses',
      create_time: 1_700_000_000,
      current_node: 'a2',
      mapping: {
        root: node('root', null, null, [], ['sys']),
        sys: node('sys', 'root', 'system', [''], ['u1']),
        u1: node('u1', 'sys', 'user', ['Do horses sleep standing?'], ['a1', 'a2']),
        a1: node('a1', 'u1', 'assistant', ['An answer that was regenerated.'], []),
        a2: node('a2', 'u1', 'assistant', ['Yes, ', 'mostly.'], []),
      },
    },
  ];

  it('follows the branch last shown and keeps the text of user and assistant turns', () => {
    expect(parseImport(JSON.stringify(chatgpt))).toEqual([
      {
        title: 'Horses',
        messages: [
          { role: 'user', content: 'Do horses sleep standing?' },
          { role: 'assistant', content: 'Yes, \nmostly.' },
        ],
      },
    ]);
  });

  it('refuses what it cannot read, saying what it takes', () => {
    expect(() => parseImport('not json')).toThrow(ImportError);
    expect(() => parseImport('{"hello": 1}')).toThrow(/neither a Corral nor a ChatGPT/);
    expect(() => parseImport('[]')).toThrow(/no conversations/);
    expect(() => parseImport('{"messages": [{"role": "robot", "content": "x"}]}')).toThrow(/no role/);
  });
});
