// The settings a new conversation starts with (the draft), and the last model and mode picked,
// remembered in localStorage.

import type { ModeName, SamplingSettings } from './api';

export interface Draft {
  model: string;
  mode: ModeName;
  system_prompt: string;
  settings: Partial<SamplingSettings>;
}

const LAST_MODEL_KEY = 'corral.lastModel';
const LAST_MODE_KEY = 'corral.lastMode';

function stored(key: string): string {
  try {
    return localStorage.getItem(key) ?? '';
  } catch {
    return '';
  }
}

function remember(key: string, value: string): void {
  try {
    localStorage.setItem(key, value);
  } catch {
    /* private mode */
  }
}

/** Remember the model and mode picked last (for the next new conversation, also after a reload). */
export function rememberChoice(patch: { model?: string | null; mode?: ModeName | null }): void {
  if (patch.model) remember(LAST_MODEL_KEY, patch.model);
  if (patch.mode) remember(LAST_MODE_KEY, patch.mode);
}

export const draft = $state<Draft>({ model: stored(LAST_MODEL_KEY), mode: (stored(LAST_MODE_KEY) as ModeName) || 'normal', system_prompt: '', settings: {} });
