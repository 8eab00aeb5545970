/**
 * The admin API of warren-control: HTTP over a unix socket (mode 0600, root
 * only), used by `warren-control authkey …`, `nodes …` and `tailnets …`. Node
 * selectors are an id or a name (names are unique across tailnets).
 */
import { LocalApiServer, LocalApiError, jsonObjectBody as body, type LocalApiRoute } from '../../localapi/server.js';
import { isValidTailnetName, isValidUserName, type Store, type NodeRecord, type AuthKeyRecord } from './store.js';
import type { ControlServer } from './server.js';

export const DEFAULT_ADMIN_SOCKET = '/run/warren/control-admin.sock';

async function findNode(store: Store, sel: unknown): Promise<NodeRecord> {
  const nodes = await store.listNodes();
  const n = typeof sel === 'number' || (typeof sel === 'string' && /^\d+$/.test(sel))
    ? nodes.find((x) => x.id === Number(sel))
    : nodes.find((x) => x.name === sel);
  if (!n) throw new LocalApiError(404, `no node ${JSON.stringify(sel)} (give an id or a name from "warren-control nodes list")`);
  return n;
}

export function adminRoutes(store: Store, server: ControlServer, now: () => number): LocalApiRoute[] {
  return [
    { method: 'GET', path: '/admin/authkeys', handle: () => store.listAuthKeys() },
    {
      method: 'POST', path: '/admin/authkeys', handle: async (r): Promise<{ key: string; record: AuthKeyRecord }> => {
        const b = body(r.body);
        const tags = Array.isArray(b['tags']) ? (b['tags'] as unknown[]).map(String) : [];
        for (const t of tags) if (!/^tag:[a-z0-9][a-z0-9-]{0,62}$/.test(t)) throw new LocalApiError(400, `invalid tag "${t}" (want tag:name, lowercase letters, digits, hyphens)`);
        const expiryMs = b['expiryMs'];
        if (expiryMs !== undefined && (typeof expiryMs !== 'number' || expiryMs <= 0)) throw new LocalApiError(400, 'expiryMs must be a positive number');
        const tailnet = b['tailnet'] ?? undefined, user = b['user'] ?? undefined;
        if (tailnet !== undefined && !isValidTailnetName(tailnet)) throw new LocalApiError(400, `invalid tailnet name ${JSON.stringify(tailnet)} (want one DNS label: lowercase letters, digits, hyphens)`);
        if (user !== undefined && !isValidUserName(user)) throw new LocalApiError(400, `invalid user name ${JSON.stringify(user)} (want 1-64 letters, digits and ._@+-)`);
        return store.createAuthKey({
          reusable: b['reusable'] === true, ephemeral: b['ephemeral'] === true, tags,
          expiresAt: typeof expiryMs === 'number' ? now() + expiryMs : null, now: now(), tailnet, user,
        });
      },
    },
    {
      method: 'POST', path: '/admin/authkeys/revoke', handle: async (r) => {
        const id = Number(body(r.body)['id']);
        if (!Number.isInteger(id) || !(await store.revokeAuthKey(id))) throw new LocalApiError(404, `no auth key with id ${id}`);
        return { revoked: id };
      },
    },
    { method: 'GET', path: '/admin/nodes', handle: (r) => store.listNodes(r.query.get('tailnet') ?? undefined) },
    { method: 'GET', path: '/admin/tailnets', handle: () => store.listTailnets() },
    {
      method: 'POST', path: '/admin/nodes/delete', handle: async (r) => {
        const n = await findNode(store, body(r.body)['node']);
        await server.deleteNode(n.id);
        return { deleted: n.id, name: n.name };
      },
    },
    {
      method: 'POST', path: '/admin/nodes/expire', handle: async (r) => {
        const n = await findNode(store, body(r.body)['node']);
        await server.expireNode(n.id);
        return { expired: n.id, name: n.name };
      },
    },
    {
      method: 'POST', path: '/admin/nodes/rename', handle: async (r) => {
        const b = body(r.body);
        const n = await findNode(store, b['node']);
        try {
          const out = await server.renameNode(n.id, String(b['name'] ?? ''));
          return { id: out.id, name: out.name };
        } catch (e) {
          throw new LocalApiError(400, (e as Error).message);
        }
      },
    },
  ];
}

export function adminServer(socketPath: string, store: Store, server: ControlServer, now: () => number, log: (m: string) => void): LocalApiServer {
  return new LocalApiServer({ socketPath, routes: adminRoutes(store, server, now), log });
}
