// The kernel checks every tool input against the schema the tool declared before
// the plugin sees it, so plugins need no validator of their own (ajv in each
// plugin's thread would cost ~5 MB apiece).
import { Ajv, type ValidateFunction } from 'ajv';
import { CarapaceError } from '../errors.ts';

const ajv = new Ajv({ strict: false, allErrors: false });
const compiled = new WeakMap<object, ValidateFunction>();

/** Throws INVALID_REQUEST naming the first offending path. */
export function checkToolInput(tool: string, schema: Record<string, unknown>, input: unknown): void {
  let validate = compiled.get(schema);
  if (!validate) {
    validate = ajv.compile(schema);
    compiled.set(schema, validate);
  }
  if (!validate(input)) {
    const err = validate.errors![0];
    throw new CarapaceError('INVALID_REQUEST', `input for tool ${tool} is invalid at "${err.instancePath}": ${err.message}`);
  }
}
