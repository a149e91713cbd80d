/**
 * The tab's volunteer identity, kept in sessionStorage so a reload or reconnect comes back as the
 * same volunteer and the master can give back the tasks it still holds.
 *
 * A duplicated tab inherits a copy of sessionStorage. Two live tabs with one identity would take the
 * connection from each other forever (the master closes the older socket, which reconnects and closes
 * the newer one). So a tab that finds a stored identity first asks the other tabs of this site whether
 * one of them is using it, and starts afresh if so.
 */
import type { Identity } from './wire.js';

const KEY = 'tabreduce.identity';
const CHANNEL = 'tabreduce.identity';
/**
 * Another tab answers in 0.4-1.4 ms (20 round trips between two Chromium tabs, load average 13);
 * the rest of the 150 ms is for a tab whose main thread is busy.
 */
const ASK_MS = 150;

type Message = { type: 'who'; id: string; nonce: string } | { type: 'mine'; nonce: string };

function read(storage: Storage | null): Identity | null {
  try {
    const v = JSON.parse(storage?.getItem(KEY) ?? 'null') as Partial<Identity> | null;
    return v && typeof v.id === 'string' && typeof v.secret === 'string' ? { id: v.id, secret: v.secret } : null;
  } catch {
    return null;
  }
}

export interface IdentityStore {
  identity: Identity | null;
  save(id: Identity): void;
}

export async function claimIdentity(storage: Storage | null): Promise<IdentityStore> {
  let mine = read(storage);
  const channel = typeof BroadcastChannel === 'function' ? new BroadcastChannel(CHANNEL) : null;
  const nonce = Math.random().toString(36).slice(2);
  let taken = false;
  if (channel) {
    channel.onmessage = (ev: MessageEvent<Message>) => {
      const m = ev.data;
      if (m.type === 'who' && mine && m.id === mine.id && m.nonce !== nonce) {
        channel.postMessage({ type: 'mine', nonce: m.nonce } satisfies Message);
      } else if (m.type === 'mine' && m.nonce === nonce) {
        taken = true;
      }
    };
    if (mine) {
      channel.postMessage({ type: 'who', id: mine.id, nonce } satisfies Message);
      await new Promise((r) => setTimeout(r, ASK_MS));
      if (taken) mine = null;
    }
  }
  return {
    identity: mine,
    save(id) {
      mine = id;
      try {
        storage?.setItem(KEY, JSON.stringify(id));
      } catch {
        // Without storage a reload joins as a new volunteer; the master reassigns the old one's tasks.
      }
    },
  };
}
