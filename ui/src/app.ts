// What a view is handed: the connected client and a few helpers. Event handlers
// registered through `on` are removed when the view is left.
import type { BusClient, Hello } from '../../core/client/client.ts';

export interface App {
  client: BusClient;
  hello: Hello;
  deviceId: string;
  has(scope: string): boolean;
  /** Call a method; on failure show why and rethrow. */
  call<T = Record<string, unknown>>(method: string, params?: Record<string, unknown>): Promise<T>;
  /** Like call, but resolves null (and shows nothing) when the gateway has no such method yet. */
  tryCall<T = Record<string, unknown>>(method: string, params?: Record<string, unknown>): Promise<T | null>;
  on(event: string, handler: (payload: unknown) => void): void;
  /** Subscribe to bus topics while the view is open (resumed by the client after a reconnect). */
  subscribe(topics: string[], handler: (payload: unknown) => void): Promise<void>;
  toast(message: string, kind?: 'error' | 'ok'): void;
  go(view: string): void;
  key(): string;
}

export interface View {
  id: string;
  title: string;
  /** Needed to open the view at all; the nav hides it otherwise. */
  scope: string;
  render(root: HTMLElement, app: App): void | Promise<void>;
}
