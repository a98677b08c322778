/** Fill the compile cache for this Node, these flags and the current sources, once (warm-cache.js). */
export function warmCompileCache(cacheDir: string, opts?: { execArgv?: readonly string[] }): boolean;
