// The clock plugin answers from its own zone table so that the sandbox process
// never loads ICU's locale data; these tests hold that table to Node's time zone
// data (Intl, in this realm) at every change it records and in between, with the
// plugin's realm stripped of Intl, so a path through Intl would fail here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import vm from 'node:vm';
import { CLOCK_PLUGIN } from '../helpers/clock-zones.ts';

interface ClockResult { content: string; isError?: boolean; data?: Record<string, unknown> }
interface Zones { tz: string; fromMs: number; toMs: number; schedules: [string, string][] }

const REGENERATE = 'run `node test/helpers/clock-zones.ts && npm run sign-manifests`';

/** The plugin evaluated in a realm of its own whose clock reads `at`, optionally without Intl. */
function loadClock(opts: { intl: boolean }) {
  const exports: { tools?: { run(input: unknown): Promise<ClockResult> }[] } = {};
  const context = vm.createContext({ exports, NOW: 0 });
  vm.runInContext(`{ const RealDate = Date; globalThis.Date = class extends RealDate { constructor(...a) { super(...(a.length ? a : [NOW])); } }; }`, context);
  if (!opts.intl) vm.runInContext('delete globalThis.Intl', context);
  vm.runInContext(readFileSync(CLOCK_PLUGIN, 'utf8'), context, { filename: CLOCK_PLUGIN });
  const zones = vm.runInContext('ZONES', context) as Zones;
  const run = (timezone: string, at: number) => {
    context.NOW = at;
    // as plain objects of this realm, as the answer reaches the gateway (JSON)
    return exports.tools![0].run({ timezone }).then((r) => JSON.parse(JSON.stringify(r)) as ClockResult);
  };
  return { zones, run };
}

const formats = new Map<string, Intl.DateTimeFormat>();
/** What the plugin answered before it had a table: Intl's formatting of the moment. */
function expected(timezone: string, at: number): ClockResult {
  let fmt = formats.get(timezone);
  if (!fmt) {
    fmt = new Intl.DateTimeFormat('en-CA', {
      timeZone: timezone, year: 'numeric', month: '2-digit', day: '2-digit',
      hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23', weekday: 'long', timeZoneName: 'longOffset',
    });
    formats.set(timezone, fmt);
  }
  const p = Object.fromEntries(fmt.formatToParts(at).map((x) => [x.type, x.value]));
  const offset = p.timeZoneName === 'GMT' ? '+00:00' : p.timeZoneName.replace('GMT', '');
  const local = `${p.year}-${p.month}-${p.day}T${p.hour}:${p.minute}:${p.second}${offset}`;
  const iso = new Date(at).toISOString();
  return { content: `${p.weekday} ${local} (${timezone})`, data: { timezone, iso, local, weekday: p.weekday, offset, epochMs: at } };
}

function changesOf(zones: Zones, schedule: string): number[] {
  const at = [zones.fromMs];
  for (const change of schedule.split(',').slice(1)) at.push(at[at.length - 1] + parseInt(change.split(':')[0], 36) * 60_000);
  return at.slice(1);
}

test('the zone table holds every zone Intl knows, and agrees with it at every change and every 30 days in its range', async () => {
  const clock = loadClock({ intl: false });
  const { zones } = clock;
  const names = new Set(zones.schedules.flatMap(([, n]) => n.split(' ')));
  const missing = Intl.supportedValuesOf('timeZone').filter((z) => !names.has(z));
  assert.deepEqual(missing, [], `zones missing from the table (this Node's tz data is ${process.versions.tz}, the table's ${zones.tz}): ${REGENERATE}`);
  const modern = ['Asia/Kolkata', 'Europe/Kyiv', 'Asia/Ho_Chi_Minh', 'America/Nuuk', 'Etc/UTC', 'US/Eastern'].filter((z) => !names.has(z));
  assert.deepEqual(modern, [], `IANA names that Intl's list spells the old way are missing: generate the table where /usr/share/zoneinfo/tzdata.zi exists`);
  let checked = 0;
  for (const [schedule, list] of zones.schedules) {
    const moments = changesOf(zones, schedule).flatMap((t) => [t - 1, t]);
    for (let t = zones.fromMs + 43_200_000; t < zones.toMs; t += 30 * 86_400_000) moments.push(t);
    for (const name of list.split(' ')) {
      for (const at of moments) {
        const want = expected(name, at);
        const got = await clock.run(name, at);
        if (got.content !== want.content) assert.fail(`${name} at ${new Date(at).toISOString()}: the table says "${got.content}", Intl (tz ${process.versions.tz}) "${want.content}"; ${REGENERATE}`);
        checked++;
      }
    }
  }
  assert.ok(checked > 100_000, `only ${checked} moments checked`);
  const berlin = await clock.run('Europe/Berlin', Date.UTC(2026, 6, 1, 12));
  assert.deepEqual(berlin, expected('Europe/Berlin', Date.UTC(2026, 6, 1, 12)), 'the whole answer, data included, is what Intl gave');
  assert.equal(berlin.content, 'Wednesday 2026-07-01T14:00:00+02:00 (Europe/Berlin)');
});

test('names are matched without regard to case, as Intl matches them, and the answer echoes the name asked for', async () => {
  const clock = loadClock({ intl: false });
  const at = Date.UTC(2026, 0, 15, 23, 30);
  assert.deepEqual(await clock.run('asia/KOLKATA', at), expected('asia/KOLKATA', at));
  assert.equal((await clock.run('asia/KOLKATA', at)).content, 'Friday 2026-01-16T05:00:00+05:30 (asia/KOLKATA)');
});

test('a moment outside the table, or a name it lacks, is answered through Intl; a name nobody knows is an error', async () => {
  const clock = loadClock({ intl: true });
  const later = Date.UTC(2061, 2, 30, 12);
  assert.ok(later >= clock.zones.toMs);
  assert.deepEqual(await clock.run('America/New_York', later), expected('America/New_York', later));
  const at = Date.UTC(2026, 5, 1);
  assert.deepEqual(await clock.run('+05:45', at), expected('+05:45', at), 'an offset is a zone Intl takes and the table does not hold');
  const unknown = await clock.run('Mars/Olympus_Mons', at);
  assert.equal(unknown.isError, true);
  assert.match(unknown.content, /Unknown time zone "Mars\/Olympus_Mons"/);

  const withoutIntl = loadClock({ intl: false });
  assert.equal((await withoutIntl.run('Europe/Paris', later)).isError, true, 'without Intl the same moment has no answer: the first test did not pass through Intl');
});
