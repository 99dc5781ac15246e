// Start-up state: server config, the signed-in user, reachability.

import { api, ApiError, getToken, onUnauthorized, setToken, type UiConfig, type User } from './api';
import { FALLBACK_CONFIG } from './chatlogic';

export type Phase = 'starting' | 'unreachable' | 'login' | 'ready';

class Session {
  phase = $state<Phase>('starting');
  config = $state<UiConfig>(FALLBACK_CONFIG);
  user = $state<User | null>(null);
  error = $state('');
  /** Set after a 401 so the login page can say why. */
  expired = $state(false);
  private readyCallbacks: (() => void)[] = [];

  constructor() {
    onUnauthorized(() => {
      if (this.phase === 'ready') this.expired = true;
      this.user = null;
      this.phase = 'login';
    });
  }

  onReady(cb: () => void): void {
    this.readyCallbacks.push(cb);
  }

  async start(): Promise<void> {
    this.error = '';
    try {
      const cfg = await api.uiConfig();
      this.config = {
        ...FALLBACK_CONFIG,
        ...cfg,
        modes: { ...FALLBACK_CONFIG.modes, ...(cfg.modes ?? {}) },
        defaults: { ...FALLBACK_CONFIG.defaults, ...(cfg.defaults ?? {}) },
      };
    } catch (e) {
      this.phase = 'unreachable';
      if (e instanceof ApiError && !e.unreachable) {
        const detail = e.message.replace(/^\d+\s*/, '');
        this.error = `GET /api/ui-config answered ${e.status}${detail ? ` (${detail})` : ''}`;
      } else {
        this.error = 'No answer from the server.';
      }
      return;
    }
    if (this.config.auth_required && !getToken()) {
      this.phase = 'login';
      return;
    }
    try {
      this.user = await api.me();
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        this.phase = 'login';
        return;
      }
      if (e instanceof ApiError && e.unreachable) {
        this.phase = 'unreachable';
        this.error = 'No answer from the server.';
        return;
      }
      // /api/me missing or failing: carry on as the local user when auth is off.
      this.user = { name: 'local', admin: !this.config.auth_required };
    }
    this.ready();
  }

  async login(username: string, password: string): Promise<void> {
    const res = await api.login(username, password);
    setToken(res.token);
    this.user = res.user;
    this.expired = false;
    this.ready();
  }

  async logout(): Promise<void> {
    try {
      await api.logout();
    } catch {
      /* the token goes anyway */
    }
    setToken(null);
    this.user = null;
    if (this.config.auth_required) this.phase = 'login';
    else location.reload();
  }

  private ready(): void {
    const first = this.phase !== 'ready';
    this.phase = 'ready';
    if (first) for (const cb of this.readyCallbacks) cb();
  }
}

export const session = new Session();
