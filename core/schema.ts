// One ajv for the kernel's own schemas (frames, config, manifests, envelopes, bus
// method params). Every Ajv instance compiles its meta-schema and warms its code
// generator on first use, ~11 ms apiece on a 2-core machine, and start-up used to
// pay that seven times. These schemas are ours and the tests compile every one, so
// they skip meta-schema validation; strict mode still refuses unknown keywords.
// Schemas that come from plugins (config, tool inputs) get their own, fully
// validating instances (core/plugins/).
import { Ajv } from 'ajv';

export const kernelAjv = new Ajv({ allErrors: false, strict: true, allowUnionTypes: true, validateSchema: false });
