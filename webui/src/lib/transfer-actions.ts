// The export and import buttons: fetch whole conversations, write the file, or create the
// imported ones (with fresh ids, so an import never overwrites what is there).

import { api } from './api';
import { chat } from './chat.svelte';
import { newConversationId } from './ids';
import { ImportError, exportFileName, parseImport, toJson, toMarkdown } from './transfer';

export async function exportConversations(ids: string[], format: 'md' | 'json', title: string | null): Promise<void> {
  try {
    const convs = await Promise.all(ids.map((id) => api.conversation(id)));
    const text = format === 'md' ? toMarkdown(convs) : toJson(convs);
    const type = format === 'md' ? 'text/markdown' : 'application/json';
    const url = URL.createObjectURL(new Blob([text], { type: `${type};charset=utf-8` }));
    const link = document.createElement('a');
    link.href = url;
    link.download = exportFileName(title, format);
    link.click();
    setTimeout(() => URL.revokeObjectURL(url), 0);
  } catch (e) {
    chat.showNotice(`Export failed: ${e instanceof Error ? e.message : String(e)}`);
  }
}

export async function importConversations(file: File): Promise<void> {
  try {
    const items = parseImport(await file.text());
    for (const item of items) await api.createConversation({ id: newConversationId(), ...item });
    await chat.loadList();
    chat.showNotice(`Imported ${items.length} conversation${items.length === 1 ? '' : 's'} from ${file.name}.`);
  } catch (e) {
    const why = e instanceof ImportError || e instanceof Error ? e.message : String(e);
    chat.showNotice(`Import failed: ${why}`);
  }
}
