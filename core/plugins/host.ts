// The plugin host service (`plugins`): discovers bundled and installed plugins,
// verifies each (manifest.ts), starts it in its runtime when first needed,
// restarts it with exponential backoff when it dies, and opens its circuit after
// repeated failures. Every load, refusal, crash, restart and grant is audited.
//
// Start-up stays fast: at start only manifests are verified (hashing a few small
// files); the sandbox host process and each isolate are created on first use —
// a tool call, a provider completion — except enabled channel plugins, which must
// listen for inbound messages and are started in the background after the gateway is up.
//
// A provider plugin is written for one endpoint (its `carapace.config`), so each
// configured endpoint of its wire format runs as an instance of its own: the
// plugin's entry serves `providers.<plugin id>`, and `providers.<other>` gets a
// derived entry `<plugin id>.<other>` (plugin ids hold no dot), made on first use.
// An instance runs the plugin's verified code under its install grant, plus what
// its own config implies; its state, restarts, circuit and storage are its own.

import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { effectiveProviders } from '../providers/detect.ts';
import { checkToolInput } from './tool-input.ts';
import { CarapaceError } from '../errors.ts';
import type { KernelContext, Service } from '../kernel.ts';
import type { Logger } from '../log/logger.ts';
import type { AuditLog } from '../audit.ts';
import type { Db } from '../store/db.ts';
import type { HomePaths } from '../home.ts';
import type { Broker } from '../bus/types.ts';
import type { ToolContext, ToolResult, CompletionRequest, CompletionResult, CompletionEvent, OutboundMessage, ModelInfo, ToolDef } from '../plugin-api.ts';
import { envSecrets, withEnvCredential, type SecretsSource } from '../secrets/source.ts';
import { loadTrustStore, PluginRefusedError, validatePluginConfig, type TrustStore, type VerifiedPlugin, REPO_ROOT, type PluginKind } from './manifest.ts';
import { bundledPlugins, installedPlugins, pluginHome, verifyLocation, type PluginLocation } from './installed.ts';
import { makeGrant } from './grant.ts';
import { createHostFunctions, type HostFunctions } from './host-functions.ts';
import { CapabilityDenied } from './capabilities.ts';
import { createPluginKv } from './kv.ts';
import { SandboxHost } from './isolate-runtime.ts';
import { PluginCallError, type LoadSpec, type PluginInstance } from './runtime.ts';
import { redactString } from '../log/redact.ts';
import { secretValues } from '../secrets/known.ts';
import type { NetOptions } from './net.ts';
import type { SocketLimits } from './sockets.ts';
import { deriveGrant, pluginConfigFor } from './config-grants.ts';
import type { ProviderConfig } from '../config/config.ts';

export type PluginState = 'stopped' | 'starting' | 'running' | 'backoff' | 'open' | 'refused' | 'disabled';

export interface PluginStatus {
  id: string;
  kind?: PluginKind;
  runtime?: string;
  version?: string;
  source: 'bundled' | 'installed';
  state: PluginState;
  restarts: number;
  failures: number;
  lastError?: string;
  refusal?: string;
}

export interface BackoffPolicy {
  baseMs: number;
  maxMs: number;
  /** Failures within `windowMs` that open the circuit. */
  circuitAfter: number;
  windowMs: number;
}

const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 500, maxMs: 60_000, circuitAfter: 5, windowMs: 10 * 60_000 };
const DEFAULT_LIMITS = { memoryMb: 64, callTimeoutMs: 5000, maxResponseBytes: 5 * 1024 * 1024, maxPendingCalls: 64 };

export interface PluginHostDeps {
  paths: HomePaths;
  log: Logger;
  audit: AuditLog;
  db: Db;
  /** The user's `plugins` config section, read on each start of a plugin. */
  pluginConfig: () => Record<string, { enabled?: boolean; config?: Record<string, unknown>; grant?: { deny?: string[] } }>;
  /** The user's `channels` and `providers` sections (config.md), read on each start of a plugin. */
  userConfig?: () => { channels?: Record<string, Record<string, unknown>>; providers?: Record<string, ProviderConfig> };
  broker?: Broker;
  secrets?: SecretsSource;
  /** Where manifests/ and plugins/ of the bundled plugins are (the repo root). */
  bundledRoot?: string | null;
  backoff?: Partial<BackoffPolicy>;
  resolve?: NetOptions['resolve'];
  sockets?: Partial<SocketLimits>;
  /** Runtime for `worker` plugins (worker-runtime.ts); loaded lazily when absent. */
  loadWorker?: (spec: LoadSpec, host: HostFunctions) => Promise<PluginInstance>;
  /** Tells which `providers.<id>` entries a config change touched (providersChanged); returns its removal. */
  watchProviders?: (changed: (providerIds: string[]) => void) => () => void;
  /** How long a plugin may sit without calls before it is parked (0: never); read at each call. */
  idleParkMs?: () => number;
}

interface Entry {
  /** The plugin's id, or `<plugin id>.<provider id>` for a derived provider instance. */
  id: string;
  /** The provider whose `providers.<id>` section the entry serves. */
  configKey: string;
  /** The plugin's location and verification: a derived instance shares them. */
  loc: PluginLocation;
  verified: VerifiedPlugin | null;
  refusal: PluginRefusedError | null;
  state: PluginState;
  instance: PluginInstance | null;
  hostFns: HostFunctions | null;
  starting: Promise<PluginInstance> | null;
  restarts: number;
  failureTimes: number[];
  lastError?: string;
  timer: NodeJS.Timeout | null;
  /** Calls in flight, and the timer that parks the plugin once there have been none for a while. */
  calls: number;
  parkTimer: NodeJS.Timeout | null;
  /** Sessions the plugin is serving a tool call in right now (with how many calls): the only ones it may stamp on a bus message. */
  serving: Map<string, number>;
}

function scrub(text: string): string {
  return redactString(text, secretValues());
}

export class PluginHost implements Service {
  readonly name = 'plugins';
  readonly #deps: PluginHostDeps;
  readonly #backoff: BackoffPolicy;
  readonly #entries = new Map<string, Entry>();
  readonly #tools = new Map<string, { pluginId: string; def: ToolDef }>();
  #sandbox: SandboxHost | null = null;
  #trust: TrustStore | null = null;
  #stopped = false;
  #unwatch: (() => void) | null = null;

  constructor(deps: PluginHostDeps) {
    this.#deps = deps;
    this.#backoff = { ...DEFAULT_BACKOFF, ...deps.backoff };
  }

  /** Verify every plugin on disk; refusals are recorded, audited and logged, never thrown. */
  discover(): void {
    const { store, problems } = loadTrustStore(this.#deps.paths.trustDir);
    this.#trust = store;
    for (const p of problems) this.#deps.log.warn('ignored trust file', { problem: p });
    const locations = [...(this.#deps.bundledRoot === null ? [] : bundledPlugins(this.#deps.bundledRoot ?? REPO_ROOT)), ...installedPlugins(this.#deps.paths.pluginsDir)];
    for (const loc of locations) {
      if (this.#entries.has(loc.id)) {
        this.#deps.log.warn('plugin id already taken; skipping', { plugin: loc.id, source: loc.source });
        continue;
      }
      this.#entries.set(loc.id, this.#verify(loc));
    }
    this.#indexTools();
  }

  /**
   * Pick up what `carapace plugins install|remove` changed on disk while the
   * gateway runs: installed plugins that are new, at another version or grant
   * are verified afresh (the old instance stopped first); removed ones stop.
   * Bundled plugins are left alone.
   */
  async reloadInstalled(): Promise<{ added: string[]; replaced: string[]; removed: string[] }> {
    const { store, problems } = loadTrustStore(this.#deps.paths.trustDir);
    this.#trust = store;
    for (const p of problems) this.#deps.log.warn('ignored trust file', { problem: p });
    const out = { added: [] as string[], replaced: [] as string[], removed: [] as string[] };
    const onDisk = new Map(installedPlugins(this.#deps.paths.pluginsDir).map((loc) => [loc.id, loc]));
    for (const [id, e] of [...this.#entries]) {
      if (id !== e.loc.id || e.loc.source !== 'installed' || onDisk.has(id)) continue;
      await this.#forget(id);
      await this.#dropInstancesOf(id);
      out.removed.push(id);
    }
    for (const [id, loc] of onDisk) {
      const e = this.#entries.get(id);
      if (e && e.loc.source === 'bundled') continue;
      if (e && JSON.stringify(e.loc.record) === JSON.stringify(loc.record)) continue;
      if (e) await this.#halt(id);
      this.#entries.set(id, this.#verify(loc));
      await this.#dropInstancesOf(id);
      (e ? out.replaced : out.added).push(id);
    }
    this.#indexTools();
    if (out.added.length + out.replaced.length + out.removed.length) this.#deps.audit.append({ actor: 'kernel:plugins', action: 'plugin.reload', target: 'installed', data: out });
    return out;
  }

  /**
   * Forget a plugin's derived instances and stop them: they run its code, so they
   * go when it is removed or replaced (and are made afresh on next use). Called
   * after the plugin's entry changed, so none made meanwhile outlives the old code.
   */
  async #dropInstancesOf(pluginId: string): Promise<void> {
    for (const [id, e] of [...this.#entries]) if (e.loc.id === pluginId && id !== pluginId) await this.#forget(id);
  }

  /** Drop an entry, then stop what runs in it: an instance starting meanwhile sees it is gone (#ensure) and stops. */
  async #forget(id: string): Promise<void> {
    const e = this.#entries.get(id);
    if (!e) return;
    this.#entries.delete(id);
    await this.#haltEntry(e);
  }

  /**
   * `providers.<id>` entries changed in config: their instances stop and start
   * again on next use with what the entry now says (a derived one is made afresh,
   * or not at all if the entry is gone).
   */
  async providersChanged(providerIds: readonly string[]): Promise<void> {
    for (const [id, e] of [...this.#entries]) {
      if (e.verified?.manifest.kind !== 'provider' || !providerIds.includes(e.configKey)) continue;
      if (id === e.loc.id) await this.#halt(id);
      else await this.#forget(id);
    }
  }

  #newEntry(id: string, loc: PluginLocation, verified: VerifiedPlugin | null): Entry {
    return { id, configKey: id, loc, verified, refusal: null, state: 'stopped', instance: null, hostFns: null, starting: null, restarts: 0, failureTimes: [], timer: null, calls: 0, parkTimer: null, serving: new Map() };
  }

  #verify(loc: PluginLocation): Entry {
    const entry = this.#newEntry(loc.id, loc, null);
    try {
      entry.verified = verifyLocation(loc, this.#trust!);
      if (this.#deps.pluginConfig()[loc.id]?.enabled === false) entry.state = 'disabled';
    } catch (err) {
      if (!(err instanceof PluginRefusedError)) throw err;
      entry.refusal = err;
      entry.state = 'refused';
      this.#deps.log.error('plugin refused', { plugin: loc.id, reason: err.reason, error: err.message });
      this.#deps.audit.append({ actor: 'kernel:plugins', action: 'plugin.refused', target: loc.id, data: { reason: err.reason, message: err.message, pointer: err.pointer ?? null } });
    }
    return entry;
  }

  #indexTools(): void {
    this.#tools.clear();
    for (const [id, e] of this.#entries) {
      // Any kind may offer tools (the memory plugin's memory_search...), as its manifest declares them.
      if (!e.verified || e.state === 'disabled' || id !== e.loc.id) continue;
      for (const def of e.verified.manifest.provides?.tools ?? []) {
        if (this.#tools.has(def.name)) {
          this.#deps.log.warn('tool name already provided by another plugin; skipping', { tool: def.name, plugin: id, by: this.#tools.get(def.name)!.pluginId });
          continue;
        }
        this.#tools.set(def.name, { pluginId: id, def });
      }
    }
  }

  async start(): Promise<void> {
    if (this.#entries.size === 0) this.discover();
    this.#unwatch ??= this.#deps.watchProviders?.((ids) => void this.providersChanged(ids)) ?? null;
    // Channels listen for inbound messages, so they start with the gateway — those the user enabled (`channels.<id>.enabled`).
    const channels = this.#deps.userConfig?.().channels ?? {};
    for (const [id, e] of this.#entries) {
      if (e.verified?.manifest.kind === 'channel' && e.state === 'stopped' && channels[id]?.enabled === true) {
        this.#ensure(id).catch((err) => this.#deps.log.error('channel plugin failed to start', { plugin: id, error: scrub((err as Error).message) }));
      }
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#unwatch?.();
    await Promise.all([...this.#entries.keys()].map((id) => this.#halt(id)));
    await this.#sandbox?.close();
    this.#sandbox = null;
  }

  status(): { plugins: PluginStatus[]; sandboxHost?: { confined: boolean; reason?: string } } {
    const sandbox = this.#sandbox?.pid === undefined ? undefined : this.#sandbox.unconfined;
    return {
      plugins: this.list(),
      // Once the isolate host runs: under bubblewrap, or why not (confine.ts).
      ...(sandbox === undefined ? {} : { sandboxHost: sandbox === null ? { confined: true } : { confined: false, reason: sandbox } }),
    };
  }

  list(): PluginStatus[] {
    return [...this.#entries.values()].map((e) => ({
      id: e.id,
      kind: e.verified?.manifest.kind,
      runtime: e.verified ? (e.verified.manifest.runtime ?? 'isolate') : undefined,
      version: e.verified?.manifest.version,
      source: e.loc.source,
      state: e.state,
      restarts: e.restarts,
      failures: e.failureTimes.length,
      ...(e.lastError ? { lastError: e.lastError } : {}),
      ...(e.refusal ? { refusal: e.refusal.reason, lastError: e.refusal.message } : {}),
    }));
  }

  /** The sandbox host child process id (for tests and `status`). */
  get sandboxPid(): number | undefined {
    return this.#sandbox?.pid;
  }

  // ------------------------------------------------------------ running plugins

  #entry(id: string): Entry {
    const e = this.#entries.get(id);
    if (!e) throw new CarapaceError('NOT_FOUND', `no plugin ${id}`);
    return e;
  }

  async #ensure(id: string): Promise<PluginInstance> {
    const e = this.#entry(id);
    if (e.instance) return e.instance;
    if (e.starting) return e.starting;
    if (this.#stopped) throw new CarapaceError('UNAVAILABLE', 'the plugin host is stopping');
    this.#checkUsable(e);
    if (e.state === 'open') throw new CarapaceError('UNAVAILABLE', `plugin ${id} failed repeatedly and is switched off (circuit open): ${e.lastError ?? ''}`);
    if (e.state === 'backoff') throw new CarapaceError('UNAVAILABLE', `plugin ${id} is restarting after a failure: ${e.lastError ?? ''}`);
    e.state = 'starting';
    e.starting = this.#launch(id, e).then(
      (inst) => {
        e.starting = null;
        if (this.#entries.get(id) !== e) {
          void inst.stop();
          throw new CarapaceError('UNAVAILABLE', `plugin ${id} was removed while it started`);
        }
        e.instance = inst;
        e.state = 'running';
        return inst;
      },
      (err) => {
        e.starting = null;
        if (err instanceof PluginRefusedError) {
          e.state = 'refused';
          e.refusal = err;
          this.#deps.audit.append({ actor: 'kernel:plugins', action: 'plugin.refused', target: id, data: { reason: err.reason, message: err.message } });
          throw new CarapaceError('UNAVAILABLE', err.message);
        }
        this.#failed(id, `failed to start: ${scrub((err as Error).message)}`);
        throw new CarapaceError('UNAVAILABLE', `plugin ${id} failed to start: ${scrub((err as Error).message)}`);
      },
    );
    return e.starting;
  }

  async #launch(id: string, e: Entry): Promise<PluginInstance> {
    const v = e.verified!;
    const m = v.manifest;
    // `plugins.<id>` is the plugin's, for all its instances. Storage (kv, data folder)
    // is the instance's: what one endpoint's instance kept, a token it got with its
    // key, is not another's to send to its own host.
    const pluginId = e.loc.id;
    const home = pluginHome(this.#deps.paths.pluginsDir, pluginId);
    const dataDir = id === pluginId ? join(home, 'data') : join(home, 'instances', e.configKey, 'data');
    const userCfg = this.#deps.pluginConfig()[pluginId] ?? {};
    const sections = this.#deps.userConfig?.() ?? {};
    const channel = sections.channels?.[e.configKey];
    const provider = sections.providers?.[e.configKey];
    const config = validatePluginConfig(m, pluginConfigFor(m, { plugin: userCfg.config, channel, provider }));
    const where = m.kind === 'channel' && channel ? `channels.${e.configKey}` : m.kind === 'provider' && provider ? `providers.${e.configKey}` : `plugins.${pluginId}.config`;
    const derived = deriveGrant(m, config, v.granted, where);
    const grant = makeGrant(
      id,
      [...v.granted, ...derived.permissions],
      userCfg.grant?.deny ?? [],
      { WORKSPACE: this.#deps.paths.workspace, PLUGIN_DATA: dataDir },
      derived.configured,
    );
    if (derived.permissions.length > 0) {
      this.#deps.audit.append({ actor: 'kernel:plugins', action: 'plugin.grant.derived', target: id, data: { permissions: derived.permissions, from: derived.from } });
    }
    const limits = { ...DEFAULT_LIMITS, ...m.limits };
    const log = this.#deps.log.child({ plugin: id });
    let instance: PluginInstance | null = null;
    const allow = grant.allow;
    const bus = this.#deps.broker?.port(`plugin:${id}`, { publish: allow.bus?.publish ?? [], subscribe: allow.bus?.subscribe ?? [] });
    const secrets = this.#deps.secrets ?? envSecrets();
    const hostFns = createHostFunctions({
      grant,
      secrets: m.kind === 'provider' && provider ? withEnvCredential(provider.apiKey, secrets) : secrets,
      kv: createPluginKv(this.#deps.db, id),
      bus,
      log,
      limits: { maxResponseBytes: limits.maxResponseBytes, callTimeoutMs: limits.callTimeoutMs },
      deliver: (kind, handlerId, payload) => instance?.deliver(kind, handlerId, payload),
      resolve: this.#deps.resolve,
      // A provider's own proxy, for its requests only: no global proxy reroutes every channel by accident (config.md).
      proxy: m.kind === 'provider' && provider?.proxy ? proxyUrl(provider.proxy, e.configKey) : null,
      sockets: this.#deps.sockets,
      isServing: (sessionKey) => this.#entry(id).serving.has(sessionKey),
    });
    const spec: LoadSpec = {
      id,
      runtime: m.runtime ?? 'isolate',
      entry: m.entry,
      files: v.files,
      dir: v.dir,
      memoryMb: limits.memoryMb,
      callTimeoutMs: limits.callTimeoutMs,
      cpuMsPerCall: limits.cpuMsPerCall ?? limits.callTimeoutMs,
      maxPending: limits.maxPendingCalls,
      config,
      thread: m.runtime === 'worker' && v.key.firstParty ? { name: 'first-party', memoryMb: this.#firstPartyWorkerMb() } : undefined,
    };
    // Every refusal of a capability is logged with the plugin's tag; the plugin only sees the error.
    const guarded = (method: string, args: unknown[]) =>
      hostFns.call(method, args).catch((err: unknown) => {
        if (err instanceof CapabilityDenied) log.warn('capability denied', { method, error: scrub(err.message) });
        throw err;
      });
    let inst: PluginInstance;
    try {
      if (spec.runtime === 'isolate') {
        this.#sandbox ??= new SandboxHost(this.#deps.log.child({ component: 'sandbox-host' }));
        inst = await this.#sandbox.load(spec, guarded);
      } else {
        const load = this.#deps.loadWorker ?? (await import('./worker-runtime.ts')).loadWorkerPlugin;
        inst = await load(spec, hostFns);
      }
      instance = inst;
      inst.onExit((reason) => {
        hostFns.close();
        bus?.close();
        if (e.instance === inst) {
          e.instance = null;
          this.#failed(id, reason);
        }
      });
      if (m.kind === 'channel') await inst.call('start', [{ config }]);
    } catch (err) {
      hostFns.close();
      bus?.close();
      await instance?.stop().catch(() => {});
      throw err;
    }
    e.hostFns = hostFns;
    this.#deps.audit.append({ actor: 'kernel:plugins', action: 'plugin.load', target: id, data: { version: m.version, runtime: spec.runtime, digest: v.digest, keyId: v.key.keyId, granted: v.granted } });
    log.info('plugin started', { runtime: spec.runtime, version: m.version });
    return inst;
  }

  /** The heap first-party worker plugins share: what their manifests ask for, summed (worker-runtime.ts). */
  #firstPartyWorkerMb(): number {
    let mb = 0;
    for (const e of this.#entries.values()) {
      const v = e.verified;
      if (v?.key.firstParty && v.manifest.runtime === 'worker') mb += v.manifest.limits?.memoryMb ?? DEFAULT_LIMITS.memoryMb;
    }
    return mb;
  }

  /** A running plugin died or failed to start: back off and restart, or open the circuit. */
  #failed(id: string, reason: string): void {
    const e = this.#entries.get(id);
    if (!e || this.#stopped) return;
    const now = Date.now();
    e.failureTimes = [...e.failureTimes.filter((t) => now - t < this.#backoff.windowMs), now];
    e.lastError = scrub(reason);
    this.#deps.audit.append({ actor: 'kernel:plugins', action: 'plugin.crash', target: id, data: { reason: e.lastError, failures: e.failureTimes.length } });
    if (e.failureTimes.length >= this.#backoff.circuitAfter) {
      e.state = 'open';
      this.#deps.log.error('plugin circuit open after repeated failures', { plugin: id, failures: e.failureTimes.length, reason: e.lastError });
      this.#deps.audit.append({ actor: 'kernel:plugins', action: 'plugin.circuit-open', target: id, data: { failures: e.failureTimes.length } });
      return;
    }
    const delay = Math.min(this.#backoff.maxMs, this.#backoff.baseMs * 2 ** (e.failureTimes.length - 1));
    e.state = 'backoff';
    this.#deps.log.warn('plugin failed; restarting after backoff', { plugin: id, reason: e.lastError, delayMs: delay });
    e.timer = setTimeout(() => {
      e.timer = null;
      if (this.#stopped || e.state !== 'backoff') return;
      e.state = 'stopped';
      e.restarts++;
      this.#deps.audit.append({ actor: 'kernel:plugins', action: 'plugin.restart', target: id, data: { restarts: e.restarts } });
      this.#ensure(id).catch(() => {});
    }, delay);
    e.timer.unref?.();
  }

  async #halt(id: string): Promise<void> {
    const e = this.#entries.get(id);
    if (e) await this.#haltEntry(e);
  }

  async #haltEntry(e: Entry): Promise<void> {
    if (e.timer) clearTimeout(e.timer);
    if (e.parkTimer) clearTimeout(e.parkTimer);
    e.timer = e.parkTimer = null;
    const inst = e.instance ?? (await e.starting?.catch(() => null)) ?? null;
    // What this halt stops is taken off the entry now: a call meanwhile starts a new
    // instance, whose capabilities and state the rest of this halt must leave alone.
    const hostFns = e.hostFns;
    e.instance = null;
    e.hostFns = null;
    if (e.state === 'running' || e.state === 'starting' || e.state === 'backoff') e.state = 'stopped';
    if (inst) {
      if (e.verified?.manifest.kind === 'channel') await Promise.race([inst.call('stop', []).catch(() => {}), new Promise((r) => setTimeout(r, 2000).unref())]);
      await inst.stop();
    }
    hostFns?.close();
  }

  /** Stop and start again, closing an open circuit (operator action). */
  async restart(id: string): Promise<void> {
    const e = this.#entry(id);
    await this.#halt(id);
    if (e.state === 'open' || e.state === 'backoff') e.state = 'stopped';
    e.failureTimes = [];
    e.restarts++;
    this.#deps.audit.append({ actor: 'kernel:plugins', action: 'plugin.restart', target: id, data: { restarts: e.restarts, manual: true } });
    await this.#ensure(id);
  }

  async #call(id: string, hook: string, args: unknown[], onEvent?: (event: unknown) => void): Promise<unknown> {
    const e = this.#entry(id);
    e.calls++;
    if (e.parkTimer) clearTimeout(e.parkTimer);
    e.parkTimer = null;
    try {
      const inst = await this.#ensure(id);
      return await inst.call(hook, args, onEvent);
    } catch (err) {
      if (err instanceof PluginCallError && err.fatal) throw new CarapaceError('UNAVAILABLE', `plugin ${id} stopped: ${scrub(err.message)}`);
      throw err;
    } finally {
      e.calls--;
      this.#parkWhenIdle(e);
    }
  }

  /**
   * A plugin that only answers calls gives its memory back after a while without
   * any — its worker thread, its isolate, and the sandbox process once no isolate
   * is left (a gateway on a small machine chats a few times an hour). The next call
   * starts it again. Channels, and plugins holding a subscription, an interval or a
   * socket, have work of their own and stay.
   */
  #parkWhenIdle(e: Entry): void {
    const idleMs = this.#deps.idleParkMs?.() ?? 0;
    if (idleMs <= 0 || e.calls > 0 || e.parkTimer || e.verified?.manifest.kind === 'channel') return;
    e.parkTimer = setTimeout(() => {
      e.parkTimer = null;
      const inst = e.instance;
      if (!inst || e.calls > 0 || this.#stopped || this.#entries.get(e.id) !== e || e.hostFns?.holdsOpen()) return;
      this.#deps.log.info('plugin parked after idle', { plugin: e.id, idleMs });
      void this.#haltEntry(e).then(() => {
        if (inst.runtime === 'isolate') this.#sandbox?.retireIfIdle();
      });
    }, idleMs);
    e.parkTimer.unref?.();
  }

  #checkUsable(e: Entry): void {
    if (e.state === 'refused') throw new CarapaceError('UNAVAILABLE', `plugin ${e.id} was refused: ${e.refusal!.message}`);
    if (e.state === 'disabled') throw new CarapaceError('UNAVAILABLE', `plugin ${e.id} is disabled in config`);
  }

  // ------------------------------------------------------------ API for services

  /**
   * The instance of provider plugin `pluginId` (the wire format) that serves
   * `providers.<providerId>`: the plugin's own entry for the provider named like
   * it, else its derived entry, made on first use.
   */
  providerInstance(providerId: string, pluginId: string): string {
    const plugin = this.#entry(pluginId);
    // Unverified code and `enabled: false` hold for every instance; a refusal of the own entry's config (`providers.<pluginId>`) does not.
    if (!plugin.verified || plugin.state === 'disabled') this.#checkUsable(plugin);
    if (plugin.id !== plugin.loc.id || plugin.verified?.manifest.kind !== 'provider') throw new CarapaceError('INVALID_REQUEST', `plugin ${pluginId} is not a provider plugin`);
    if (providerId === pluginId) return pluginId;
    const id = `${pluginId}.${providerId}`;
    if (!this.#entries.has(id)) this.#entries.set(id, { ...this.#newEntry(id, plugin.loc, plugin.verified), configKey: providerId });
    return id;
  }

  listTools(): { name: string; description: string; input: Record<string, unknown>; plugin: string }[] {
    return [...this.#tools.values()].map(({ pluginId, def }) => ({ name: def.name, description: def.description, input: def.input, plugin: pluginId }));
  }

  async invokeTool(name: string, input: unknown, ctx: ToolContext): Promise<ToolResult> {
    const t = this.#tools.get(name);
    if (!t) throw new CarapaceError('NOT_FOUND', `no tool ${name}`);
    checkToolInput(name, t.def.input, input);
    const serving = this.#entry(t.pluginId).serving;
    serving.set(ctx.sessionKey, (serving.get(ctx.sessionKey) ?? 0) + 1);
    try {
      const r = (await this.#call(t.pluginId, 'tool', [name, input, ctx])) as ToolResult | null;
      if (!r || typeof r !== 'object' || typeof r.content !== 'string') return { content: JSON.stringify(r ?? null) };
      return { content: r.content, ...(r.isError ? { isError: true } : {}), ...(r.data !== undefined ? { data: r.data } : {}) };
    } catch (err) {
      if (err instanceof PluginCallError) return { content: `tool ${name} failed: ${scrub(err.message)}`, isError: true };
      throw err;
    } finally {
      const left = serving.get(ctx.sessionKey)! - 1;
      if (left > 0) serving.set(ctx.sessionKey, left);
      else serving.delete(ctx.sessionKey);
    }
  }

  /** `instanceId`: from providerInstance(). */
  async models(instanceId: string): Promise<ModelInfo[]> {
    return (await this.#call(instanceId, 'models', [])) as ModelInfo[];
  }

  async complete(instanceId: string, request: CompletionRequest, onEvent: (event: CompletionEvent) => void): Promise<CompletionResult> {
    return (await this.#call(instanceId, 'complete', [request], (ev) => onEvent(ev as CompletionEvent))) as CompletionResult;
  }

  async channelSend(channelId: string, outbound: OutboundMessage): Promise<{ platformMessageId?: string }> {
    return ((await this.#call(channelId, 'send', [outbound])) ?? {}) as { platformMessageId?: string };
  }

  async memory(pluginId: string, op: 'index' | 'search' | 'forget', ...args: unknown[]): Promise<unknown> {
    return this.#call(pluginId, op, args);
  }

  /** Plugins of a kind that verified (for the router, agent, memory services); not their derived instances. */
  pluginsOf(kind: PluginKind): string[] {
    return [...this.#entries.values()].filter((e) => e.id === e.loc.id && e.verified?.manifest.kind === kind && e.state !== 'disabled').map((e) => e.id);
  }

  /** The manifests of the plugins that verified (not their derived instances). */
  manifests(): VerifiedPlugin['manifest'][] {
    return [...this.#entries.values()].flatMap((e) => (e.id === e.loc.id && e.verified ? [e.verified.manifest] : []));
  }

  manifestOf(id: string): VerifiedPlugin['manifest'] | undefined {
    return this.#entries.get(id)?.verified?.manifest;
  }
}

function proxyUrl(text: string, providerId: string): URL {
  try {
    return new URL(text);
  } catch {
    throw new PluginRefusedError('config-invalid', `providers.${providerId}.proxy is not a URL: ${text}`, { pointer: `/providers/${providerId}/proxy` });
  }
}

export function createPluginHost(ctx: KernelContext, extra: Partial<PluginHostDeps> = {}): PluginHost {
  return new PluginHost({
    paths: ctx.paths,
    log: ctx.log.child({ service: 'plugins' }),
    audit: ctx.audit,
    db: ctx.db,
    pluginConfig: () => (ctx.config.current as { plugins?: PluginHostDeps extends { pluginConfig: () => infer R } ? R : never }).plugins ?? {},
    userConfig: () => ctx.config.current as ReturnType<NonNullable<PluginHostDeps['userConfig']>>,
    watchProviders: (changed) =>
      ctx.config.onChange((next, prev) => {
        const [before, after] = [effectiveProviders(prev), effectiveProviders(next)];
        const ids = [...new Set([...Object.keys(before), ...Object.keys(after)])].filter((id) => !isDeepStrictEqual(before[id], after[id]));
        if (ids.length) changed(ids);
      }),
    idleParkMs: () => ctx.config.current.gateway.pluginIdleSeconds * 1000,
    ...extra,
  });
}
