import { describe, expect, it } from 'vitest';
import { formatBytes } from '../src/lib/format';

describe('formatBytes', () => {
  it('uses binary units and says so', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(491_400_064)).toBe('469 MiB'); // the demo model
    expect(formatBytes(8 * 1024 ** 3)).toBe('8.0 GiB');
  });

  it('shows a dash for unknown sizes', () => {
    expect(formatBytes(null)).toBe('—');
    expect(formatBytes(undefined)).toBe('—');
    expect(formatBytes(Number.NaN)).toBe('—');
  });
});
