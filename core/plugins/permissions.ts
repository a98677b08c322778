// Permissions as flat strings, so that what a manifest requests, what the user
// granted at install and what config denies compare as plain sets, and the CLI
// (`carapace plugins grant ID PERM`) speaks the same words:
//   net:HOST:PORT  secret:NAME@HOST  fs.read:ROOT  fs.write:ROOT  env:NAME
//   bus.publish:PATTERN  bus.subscribe:PATTERN  exec  worker

import { HOST_NAME, NET_TARGET, SECRET_NAME, FS_ROOT, TOPIC_PATTERN } from './manifest-schema.ts';

export interface Permissions {
  net?: string[];
  secrets?: Record<string, string[]>;
  fs?: { read?: string[]; write?: string[] };
  env?: string[];
  bus?: { publish?: string[]; subscribe?: string[] };
  exec?: boolean;
}

export function permissionList(p: Permissions | undefined, runtime: 'isolate' | 'worker' = 'isolate'): string[] {
  const out: string[] = [];
  if (!p) p = {};
  for (const n of p.net ?? []) out.push(`net:${n}`);
  for (const [name, hosts] of Object.entries(p.secrets ?? {})) for (const h of hosts) out.push(`secret:${name}@${h}`);
  for (const r of p.fs?.read ?? []) out.push(`fs.read:${r}`);
  for (const r of p.fs?.write ?? []) out.push(`fs.write:${r}`);
  for (const e of p.env ?? []) out.push(`env:${e}`);
  for (const t of p.bus?.publish ?? []) out.push(`bus.publish:${t}`);
  for (const t of p.bus?.subscribe ?? []) out.push(`bus.subscribe:${t}`);
  if (p.exec) out.push('exec');
  if (runtime === 'worker') out.push('worker');
  return out;
}

const FORMS: [RegExp, string][] = [
  [new RegExp(`^net:${NET_TARGET.slice(1, -1)}$`), 'net:HOST:PORT'],
  [new RegExp(`^secret:${SECRET_NAME.slice(1, -1)}@${HOST_NAME.slice(1, -1)}$`), 'secret:NAME@HOST'],
  [new RegExp(`^fs\\.(read|write):${FS_ROOT.slice(1, -1)}$`), 'fs.read:ROOT / fs.write:ROOT'],
  [new RegExp(`^env:${SECRET_NAME.slice(1, -1)}$`), 'env:NAME'],
  [/^bus\.(publish|subscribe):\S+$/, 'bus.publish:PATTERN / bus.subscribe:PATTERN'],
  [/^(exec|worker)$/, 'exec / worker'],
];

/** Null when `perm` is a well-formed permission string, else what the forms are. */
export function permissionFormError(perm: string): string | null {
  if (FORMS.some(([re]) => re.test(perm))) {
    if (perm.startsWith('bus.')) {
      const pattern = perm.slice(perm.indexOf(':') + 1);
      if (!new RegExp(TOPIC_PATTERN).test(pattern)) return `bad topic pattern "${pattern}"`;
    }
    return null;
  }
  return `"${perm}" is not a permission; forms: ${FORMS.map(([, f]) => f).join(', ')}`;
}

/** Rebuild the structured form from a list of permission strings (the effective grant). */
export function permissionsFrom(list: Iterable<string>): Permissions & { worker: boolean } {
  const p: Permissions & { worker: boolean } = { net: [], secrets: {}, fs: { read: [], write: [] }, env: [], bus: { publish: [], subscribe: [] }, exec: false, worker: false };
  for (const s of list) {
    const colon = s.indexOf(':');
    const kind = colon < 0 ? s : s.slice(0, colon);
    const rest = colon < 0 ? '' : s.slice(colon + 1);
    if (kind === 'net') p.net!.push(rest);
    else if (kind === 'secret') {
      const at = rest.indexOf('@');
      (p.secrets![rest.slice(0, at)] ??= []).push(rest.slice(at + 1));
    } else if (kind === 'fs.read') p.fs!.read!.push(rest);
    else if (kind === 'fs.write') p.fs!.write!.push(rest);
    else if (kind === 'env') p.env!.push(rest);
    else if (kind === 'bus.publish') p.bus!.publish!.push(rest);
    else if (kind === 'bus.subscribe') p.bus!.subscribe!.push(rest);
    else if (kind === 'exec') p.exec = true;
    else if (kind === 'worker') p.worker = true;
  }
  return p;
}
