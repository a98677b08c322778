// V8 optimizes what runs hot, and start-up code runs hot exactly once: compiling the
// kernel's schemas, building routes, verifying manifests. Maglev and TurboFan on
// that code cost CPU while the gateway should be getting ready, and leave ~7 MB of
// the compilers' own machine code paged in — in a gateway that may then sit idle
// for hours on a Raspberry Pi. So start-up runs on the interpreter and the baseline
// compiler, and the optimizing tiers come back once the gateway is ready: real
// traffic is optimized as usual, start-up code included if it runs hot again.
// V8 reads these flags when it decides to tier up, so they can be flipped at
// runtime; the compile cache accepts code cached on either side of the flip.
import { setFlagsFromString } from 'node:v8';

const TIER_FLAG = /--(no-)?(turbofan|maglev|opt|max-opt|jitless|lite-mode)\b/;

/**
 * Turn the optimizing tiers off until the returned function turns them on again.
 * Does nothing when the user chose tiers themselves (node flags or NODE_OPTIONS):
 * theirs must hold for the gateway's whole life.
 */
export function deferOptimizingJit(execArgv: readonly string[] = process.execArgv, nodeOptions = process.env.NODE_OPTIONS ?? ''): () => void {
  if ([...execArgv, nodeOptions].some((flag) => TIER_FLAG.test(flag))) return () => {};
  setFlagsFromString('--no-turbofan');
  setFlagsFromString('--no-maglev');
  let restored = false;
  return () => {
    if (restored) return;
    restored = true;
    setFlagsFromString('--turbofan');
    setFlagsFromString('--maglev');
  };
}
