// The model list of the picker (GET /v1/models), polled faster while something is changing.

import { api, type Model } from './api';

class Models {
  list = $state<Model[]>([]);
  error = $state('');
  loaded = $state(false);
  private timer: ReturnType<typeof setTimeout> | null = null;
  private fast = false;

  get busy(): boolean {
    return this.list.some((m) => m.state === 'loading' || m.state === 'downloading');
  }

  /** The models that answer chat: the picker's list (speech models have their own buttons). */
  get chat(): Model[] {
    return this.list.filter((m) => (m.kind ?? 'chat') === 'chat');
  }

  /** The first model of a speech kind, for the microphone and read-aloud buttons. */
  firstOfKind(kind: 'transcription' | 'speech'): Model | undefined {
    return this.list.find((m) => m.kind === kind);
  }

  byId(id: string | null | undefined): Model | undefined {
    return id ? this.list.find((m) => m.id === id) : undefined;
  }

  /** The server's default: the model flagged default, else the configured name, else the first. */
  defaultId(configured: string): string {
    return this.list.find((m) => m.default)?.id ?? (configured || this.chat[0]?.id || '');
  }

  async refresh(): Promise<void> {
    try {
      this.list = await api.models();
      this.error = '';
    } catch (e) {
      this.error = e instanceof Error ? e.message : String(e);
    } finally {
      this.loaded = true;
    }
  }

  /** Poll every 2 s while a model loads or downloads (or `watch()` was asked), else every 20 s. */
  start(): void {
    if (typeof window !== 'undefined') window.addEventListener('focus', () => void this.refresh());
    this.schedule(0);
  }

  /** Poll fast for a while (e.g. after sending to a model that is not loaded). */
  watch(ms = 60000): void {
    this.fast = true;
    setTimeout(() => (this.fast = false), ms);
    this.schedule(300);
  }

  private schedule(ms: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(async () => {
      await this.refresh();
      this.schedule(this.busy || this.fast ? 2000 : 20000);
    }, ms);
  }
}

export const models = new Models();
