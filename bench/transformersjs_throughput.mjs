// transformers.js 4 in Node (onnxruntime-node), as a Node user would run it, on the same corpus and ONNX files
// as bench/ort_throughput.py: fp32 (target/minilm.onnx) or q8 (target/minilm-int8.onnx, ONNX Runtime's dynamic
// int8, what transformers.js' `dtype: 'q8'` loads), feature-extraction with mean pooling and normalisation,
// length-sorted batches of 32, 2 threads. It truncates at the tokenizer's model_max_length (512 for
// all-MiniLM-L6-v2), not sentence-transformers' 256, and pads each batch: as users get it (../PEERS notes).
//
// The package is not a dependency of this project: `node bench/transformersjs_throughput.mjs --install` puts it
// in target/peers (npm install --ignore-scripts: onnxruntime-node's install script fetches from outside the
// registry; its CPU binaries ship inside the package).
// Usage: node bench/transformersjs_throughput.mjs [runs=1] [threads=2] [--dtype fp32|q8] [--out file]
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const peers = path.join(root, 'target/peers')
const argv = process.argv.slice(2)
const flag = (name) => {
  const i = argv.indexOf(name)
  return i < 0 ? undefined : argv.splice(i, 2)[1]
}
const entry = path.join(peers, 'node_modules/@huggingface/transformers/package.json')
if (argv.includes('--install') || !fs.existsSync(entry)) {
  fs.mkdirSync(peers, { recursive: true })
  if (!fs.existsSync(path.join(peers, 'package.json'))) fs.writeFileSync(path.join(peers, 'package.json'), '{"name":"peers","private":true}\n')
  execFileSync('npm', ['install', '--ignore-scripts', '--no-audit', '--no-fund', '@huggingface/transformers@4'], { cwd: peers, stdio: 'inherit' })
  if (argv.includes('--install')) process.exit(0)
}
const dtype = flag('--dtype') ?? 'fp32'
const out = flag('--out')
const runs = Number(argv[0] ?? 1)
const threads = Number(argv[1] ?? 2)

// A local model folder as transformers.js reads one: the model's files and onnx/model{,_quantized}.onnx.
const onnx = { fp32: 'target/minilm.onnx', q8: 'target/minilm-int8.onnx' }
for (const f of Object.values(onnx)) {
  if (!fs.existsSync(path.join(root, f))) throw new Error(`${f} is missing: run bench/ort_throughput.py (with --dtype int8 for q8) first`)
}
const folder = path.join(peers, 'models/local/all-MiniLM-L6-v2')
fs.mkdirSync(path.join(folder, 'onnx'), { recursive: true })
const source = path.join(root, 'fixtures/models/all-MiniLM-L6-v2')
for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) {
  if (fs.existsSync(path.join(source, f))) fs.copyFileSync(path.join(source, f), path.join(folder, f))
}
fs.copyFileSync(path.join(root, onnx.fp32), path.join(folder, 'onnx/model.onnx'))
fs.copyFileSync(path.join(root, onnx.q8), path.join(folder, 'onnx/model_quantized.onnx'))

const pkg = JSON.parse(fs.readFileSync(entry, 'utf8'))
const { env, pipeline } = await import(pathToFileURL(path.join(peers, 'node_modules/@huggingface/transformers/dist/transformers.node.mjs')).href)
env.allowRemoteModels = false
env.localModelPath = path.join(peers, 'models') + path.sep
const extractor = await pipeline('feature-extraction', 'local/all-MiniLM-L6-v2', {
  dtype,
  device: 'cpu',
  session_options: { intraOpNumThreads: threads, interOpNumThreads: 1 },
})
const corpus = JSON.parse(fs.readFileSync(path.join(root, 'target/bench-corpus.json'), 'utf8'))
const order = corpus.map((t, i) => [t.length, i]).sort((a, b) => b[0] - a[0]).map(([, i]) => i)
async function embedAll() {
  const vectors = new Array(corpus.length)
  for (let s = 0; s < order.length; s += 32) {
    const idx = order.slice(s, s + 32)
    const output = await extractor(idx.map((i) => corpus[i]), { pooling: 'mean', normalize: true })
    const dims = output.dims[1]
    idx.forEach((i, j) => (vectors[i] = output.data.slice(j * dims, (j + 1) * dims)))
  }
  return vectors
}
await extractor(corpus.slice(0, 32), { pooling: 'mean', normalize: true })
const seconds = []
let vectors
for (let r = 0; r < runs; r++) {
  const t0 = performance.now()
  vectors = await embedAll()
  seconds.push((performance.now() - t0) / 1000)
}
if (out) fs.writeFileSync(out, Buffer.concat(vectors.map((v) => Buffer.from(new Float32Array(v).buffer))))
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
console.log(JSON.stringify({ engine: `transformers.js ${pkg.version} (${dtype}, ${threads} threads)`, texts: corpus.length, seconds: seconds.map((s) => +s.toFixed(3)), medianSeconds: +median(seconds).toFixed(3) }))
