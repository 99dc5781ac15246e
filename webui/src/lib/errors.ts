// The text shown for a failed request or generation.

import { ApiError } from './api';
import { HttpStatusError } from './generation';

export function errorText(e: unknown): string {
  if (e instanceof ApiError) return e.unreachable ? 'Server unreachable.' : e.message;
  if (e instanceof HttpStatusError) return e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}
