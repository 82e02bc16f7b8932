/**
 * The controller's REST API in process, on an in-memory store: requests go to the app
 * itself (no socket), as a client sends them, with the admin token unless told otherwise.
 * For the controller's own tests of what the API takes and refuses; the tests that need
 * the real process, its port and its files use test/support/controller.ts.
 */
import { apiApp } from '../../src/controller/api.js';
import { Applier } from '../../src/controller/apply.js';
import { NetworkService, type ServiceOptions } from '../../src/controller/service.js';
import { MemoryStore } from '../../src/controller/store/memory-store.js';

export const ADMIN_TOKEN = 'admin-secret';

export interface Answer {
  status: number;
  /** The JSON body, or null when there is none. */
  body: any;
  type: string | null;
}

/** `options` go to the service and the applier alike (the QEMU socket directory, ...). */
export function inProcessApi(options: ServiceOptions = {}) {
  const store = new MemoryStore();
  const app = apiApp({ service: new NetworkService(store, options), applier: new Applier(store, options), adminToken: ADMIN_TOKEN, agents: { status: () => ({ connected: false }) } });
  /**
   * Sends `body` as JSON; a string is sent as it is (how a client sends `{"__proto__": ...}`
   * as a key). `raw`: `token` is the whole Authorization header (a signed agent request).
   */
  const call = async (method: string, path: string, body?: unknown, token = ADMIN_TOKEN, raw = false): Promise<Answer> => {
    const res = await app.request(path, {
      method,
      headers: { authorization: raw ? token : `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null, type: res.headers.get('content-type') };
  };
  return { store, app, call };
}
