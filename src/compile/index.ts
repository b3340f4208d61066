export { cacheKey, defaultCacheDir, headerDigest } from './cache.ts';
export { type CompileOptions, type CompileResult, compileBpf } from './compile-bpf.ts';
export { parseDiagnostics } from './diagnostics.ts';
export { CompileError, type Diagnostic } from './errors.ts';
