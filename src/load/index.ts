/** Policy files to IR (the loading layer above src/ir, docs/internals.md "Layers"). */
export { locate, parsePath, type SourcePoint } from './locate.ts';
export { importPolicySpec, loadPolicyFile, PolicyLoadError, PolicySourceError, resolveHandler } from './policy-file.ts';
export { type BuiltModule, buildModule, importUserModule, needsBuild, SourceError, type SourceLocation } from './ts-module.ts';
