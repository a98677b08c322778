// Bundled tool plugin: the current date and time, in any IANA time zone.
// Runs in an isolate with no permissions at all: it needs none.

function partsIn(date, timeZone) {
  const fmt = new Intl.DateTimeFormat('en-CA', {
    timeZone,
    year: 'numeric', month: '2-digit', day: '2-digit',
    hour: '2-digit', minute: '2-digit', second: '2-digit',
    hourCycle: 'h23', weekday: 'long', timeZoneName: 'longOffset',
  });
  const p = Object.fromEntries(fmt.formatToParts(date).map((x) => [x.type, x.value]));
  const offset = p.timeZoneName === 'GMT' ? '+00:00' : p.timeZoneName.replace('GMT', '');
  return { local: `${p.year}-${p.month}-${p.day}T${p.hour}:${p.minute}:${p.second}${offset}`, weekday: p.weekday, offset };
}

exports.tools = [
  {
    name: 'clock_now',
    description: 'The current date and time, in the given IANA time zone (default UTC).',
    input: {
      type: 'object',
      properties: { timezone: { type: 'string', description: 'IANA time zone, e.g. Europe/Berlin' } },
      additionalProperties: false,
    },
    async run(input) {
      const timeZone = (input && input.timezone) || 'UTC';
      const now = new Date();
      let parts;
      try {
        parts = partsIn(now, timeZone);
      } catch {
        return { content: `Unknown time zone "${timeZone}"; use an IANA name such as Europe/Berlin.`, isError: true };
      }
      const data = { timezone: timeZone, iso: now.toISOString(), local: parts.local, weekday: parts.weekday, offset: parts.offset, epochMs: now.getTime() };
      return { content: `${parts.weekday} ${parts.local} (${timeZone})`, data };
    },
  },
];
