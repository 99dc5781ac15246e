// Hash routes, so the static build needs no server-side fallback:
//   #/            new chat          #/c/<id>       a conversation
//   #/admin/models  #/admin/dashboard  #/admin/server

export type Route =
  | { name: 'chat'; conversationId: string | null }
  | { name: 'admin'; tab: 'models' | 'dashboard' | 'server' };

export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, '') || '/';
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  if (parts[0] === 'c' && parts[1]) return { name: 'chat', conversationId: parts[1] };
  if (parts[0] === 'admin') {
    const tab = parts[1] === 'dashboard' || parts[1] === 'server' ? parts[1] : 'models';
    return { name: 'admin', tab };
  }
  return { name: 'chat', conversationId: null };
}

export function chatHref(id: string | null): string {
  return id ? `#/c/${encodeURIComponent(id)}` : '#/';
}

class Router {
  route = $state<Route>(parseRoute(typeof location === 'undefined' ? '' : location.hash));

  constructor() {
    if (typeof window !== 'undefined') {
      window.addEventListener('hashchange', () => {
        this.route = parseRoute(location.hash);
      });
    }
  }

  go(hash: string, replace = false): void {
    if (location.hash === hash || (hash === '#/' && location.hash === '')) {
      this.route = parseRoute(hash);
      return;
    }
    if (replace) history.replaceState(null, '', hash);
    else history.pushState(null, '', hash);
    this.route = parseRoute(hash);
  }
}

export const router = new Router();
