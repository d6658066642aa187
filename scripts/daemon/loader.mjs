// Module hooks for running the daemon's own process (its src/daemon/index.ts under tsx, or its dist/) in
// `npm run test:daemon` and bench/daemon-cpu.mjs. Registered with
//   node --import 'data:text/javascript,import{register}from"node:module";register("<this file's URL>")'
// - `sharp` (an image library @xenova/transformers imports, whose install downloads libvips) resolves to a module
//   that throws if called: text indexing never calls it.
// - NATIVE_BACKEND_ALIASES (comma-separated) makes the daemon's imports resolve to this package without a line
//   of it changed, as the vitest alias does for its tests: `python` for its PythonEmbeddingService
//   (NativeEmbeddingBackend), `onnx` for its ONNXEmbeddingService. Empty: the daemon's own modules (with the
//   migration edits, they re-export ours; unchanged, they are its own stacks).
const aliases = new Set((process.env.NATIVE_BACKEND_ALIASES ?? '').split(',').filter(Boolean))
const exported = [
  ['python', /\/python-embedding-service\.js$/, 'NativeEmbeddingBackend as PythonEmbeddingService'],
  ['onnx', /\/onnx\/onnx-embedding-service\.js$/, 'ONNXEmbeddingService'],
]
const module = (source) => `data:text/javascript,${encodeURIComponent(source)}`

export async function resolve(specifier, context, next) {
  if (specifier === 'sharp') {
    return { url: module("export default function sharp() { throw new Error('sharp is not installed in this run') }"), shortCircuit: true }
  }
  for (const [alias, pattern, names] of exported) {
    if (aliases.has(alias) && pattern.test(specifier)) {
      const { url } = await next('embedding-service/daemon', context)
      return { url: module(`export { ${names} } from ${JSON.stringify(url)}`), shortCircuit: true }
    }
  }
  return next(specifier, context)
}
