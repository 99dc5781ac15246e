// Files attached to a message: text and code go into the prompt (within a size limit), PDFs
// as their extracted text; images are refused until a vision model is configured.

export const MAX_ATTACHMENT_BYTES = 256 * 1024;
export const MAX_ATTACHMENTS = 8;

export interface Attachment {
  name: string;
  size: number;
  text: string;
}

export type FileKind = 'text' | 'pdf' | 'image' | 'other';

const TEXT_EXTENSIONS = new Set(
  'txt md markdown rst csv tsv json jsonl yaml yml toml ini cfg conf log xml html htm css scss js mjs cjs ts tsx jsx svelte vue py pyi rb go rs java kt kts scala c h cc cpp hpp cs swift m mm php pl lua r jl sh bash zsh fish ps1 bat sql graphql proto tf hcl dockerfile makefile cmake gradle properties env gitignore diff patch tex'.split(' '),
);

function extension(name: string): string {
  const base = name.toLowerCase().split('/').pop() ?? '';
  if (!base.includes('.')) return base; // Makefile, Dockerfile
  return base.slice(base.lastIndexOf('.') + 1);
}

export function kindOf(file: { name: string; type: string }): FileKind {
  const ext = extension(file.name);
  if (file.type.startsWith('image/')) return 'image';
  if (file.type === 'application/pdf' || ext === 'pdf') return 'pdf';
  if (file.type.startsWith('text/') || TEXT_EXTENSIONS.has(ext)) return 'text';
  if (/^application\/(json|xml|x-yaml|yaml|toml|x-sh|javascript|typescript)/.test(file.type)) return 'text';
  return 'other';
}

/** Why a file cannot be attached, or null when it can. */
export function refusal(file: { name: string; type: string; size: number }, already: number): string | null {
  const kind = kindOf(file);
  if (kind === 'image') return `${file.name}: images need a vision model, and none is configured here.`;
  if (kind === 'other') return `${file.name} is not a text, code or PDF file.`;
  if (already >= MAX_ATTACHMENTS) return `At most ${MAX_ATTACHMENTS} files per message.`;
  if (kind === 'text' && file.size > MAX_ATTACHMENT_BYTES)
    return `${file.name} is ${Math.ceil(file.size / 1024)} KiB; a text file may be at most ${MAX_ATTACHMENT_BYTES / 1024} KiB.`;
  return null;
}

/** The message the model gets: each file as a fenced block named after it, then the text. */
export function withAttachments(text: string, files: Attachment[]): string {
  const blocks = files.map((f) => {
    const fence = f.text.includes('```') ? '~~~~' : '```';
    const lang = extension(f.name).replace(/[^a-z0-9]/g, '');
    return `File \`${f.name}\`:\n${fence}${lang}\n${f.text.replace(/\n$/, '')}\n${fence}`;
  });
  return [...blocks, text.trim()].filter(Boolean).join('\n\n');
}
