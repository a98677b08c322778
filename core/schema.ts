// One ajv for the kernel's own schemas (frames, config, manifests, envelopes, bus
// method params). Every Ajv instance compiles its meta-schema and warms its code
// generator on first use, ~11 ms apiece on a 2-core machine, and start-up used to
// pay that seven times. These schemas are ours and the tests compile every one, so
// they skip meta-schema validation; strict mode still refuses unknown keywords.
// Schemas that come from plugins (config, tool inputs) get their own, fully
// validating instances (core/plugins/).
import { Ajv, type ErrorObject } from 'ajv';

export const kernelAjv = new Ajv({ allErrors: false, strict: true, allowUnionTypes: true, validateSchema: false });

/** The JSON pointer of ajv's first error, pointing at the offending member itself where ajv knows it. */
export function pointerOf(err: ErrorObject): string {
  if (err.keyword === 'additionalProperties') {
    return `${err.instancePath}/${escapePointer((err.params as { additionalProperty: string }).additionalProperty)}`;
  }
  if (err.keyword === 'required') {
    return `${err.instancePath}/${escapePointer((err.params as { missingProperty: string }).missingProperty)}`;
  }
  return err.instancePath;
}

/** What ajv's error says, as a config or manifest refusal words it. */
export function reasonOf(err: ErrorObject): string {
  if (err.keyword === 'additionalProperties') return 'unknown key';
  if (err.keyword === 'enum') return `${err.message}: ${(err.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
  return err.message ?? 'invalid';
}

export function escapePointer(key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1');
}
