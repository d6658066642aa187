// Side-by-side throughput: this addon (f32, int8, and bf16 where the CPU has AVX512_BF16) against
// sentence-transformers (PyTorch, fp32 and bf16), ONNX Runtime (fp32, and dynamic int8 as fastembed and
// transformers.js quantize) and transformers.js 4 in Node (fp32 and q8, the same ONNX files) on the same corpus (bench/corpus.mjs), interleaved: every
// round runs each engine once as its own process, in a rotated order, so drift on a shared machine hits all of
// them alike. Prints each engine's median, this addon's ratio to every peer round by round, and the parity of
// every engine's vectors with sentence-transformers fp32 on the texts it ran (a fast wrong answer shows here).
//
// Usage: node bench/compare.mjs [rounds=3] [threads=2] [--python path/to/python] [--only ours-f32,st-fp32,...]
//        (--only runs the named engines: sentence-transformers bf16 takes minutes per round on CPUs without it)
//        node bench/compare.mjs --query [rounds=5] [repeats=50] [--text "query"]: the idle short query instead
//        (by default a 13-token one), at 1 and 2 threads, and load() against ONNX Runtime's session creation
//        (bench/idle-query.mjs, bench/ort_query.py), each round a fresh process per engine and thread count, in
//        rotated order.
// The Python side needs sentence-transformers, onnx and onnxruntime (see README, "Benchmarks"); the default
// interpreter is .venv-bench/bin/python when it exists, else python3.
import { execFileSync } from 'node:child_process'
import { createRequire } from 'node:module'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const argv = process.argv.slice(2)
const flag = (name) => {
  const i = argv.indexOf(name)
  return i < 0 ? undefined : argv.splice(i, 2)[1]
}
const venv = path.join(root, '.venv-bench/bin/python')
const python = flag('--python') ?? (fs.existsSync(venv) ? venv : 'python3')
const text = flag('--text')
const only = flag('--only')?.split(',')
const queryMode = argv.includes('--query') && argv.splice(argv.indexOf('--query'), 1)
const rounds = Number(argv[0] ?? (queryMode ? 5 : 3))
const threads = String(argv[1] ?? 2)
const outDir = path.join(root, 'target/compare')
fs.mkdirSync(outDir, { recursive: true })
if (!fs.existsSync(path.join(root, 'target/bench-corpus.json'))) execFileSync('node', [path.join(root, 'bench/corpus.mjs')], { stdio: 'inherit' })

const { EmbeddingService } = createRequire(import.meta.url)(root)
const bf16 = (() => {
  try {
    new EmbeddingService({ model: 'unused', device: 'cpu', dtype: 'bf16' }).close()
    return true
  } catch (e) {
    if (e.code !== 'ERR_DEVICE_UNAVAILABLE') throw e
    return false
  }
})()

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}
const labels = {}
if (queryMode) {
  const repeats = String(argv[1] ?? 50)
  const textArgs = text === undefined ? [] : ['--query', text]
  if (!fs.existsSync(path.join(root, 'target/minilm.onnx'))) {
    execFileSync(python, ['bench/ort_throughput.py', '1', '2'], { cwd: root, stdio: 'inherit' }) // exports it
  }
  const engines = [
    { name: 'ours-f32', cmd: 'node', args: ['bench/idle-query.mjs', repeats, ...textArgs] },
    bf16 && { name: 'ours-bf16', cmd: 'node', args: ['bench/idle-query.mjs', repeats, '--dtype', 'bf16', ...textArgs] },
    { name: 'ours-int8', cmd: 'node', args: ['bench/idle-query.mjs', repeats, '--dtype', 'int8', ...textArgs] },
    { name: 'ort-fp32', cmd: python, args: ['bench/ort_query.py', repeats, ...textArgs] },
  ].filter(Boolean)
  const runs = {} // `${engine}@${threads}` -> [{ loadMs, medianMs, vector }] by round
  for (let r = 0; r < rounds; r++) {
    for (const t of ['1', '2']) {
      for (let i = 0; i < engines.length; i++) {
        const e = engines[(i + r) % engines.length]
        const args = [...e.args]
        args.splice(2, 0, t)
        const line = execFileSync(e.cmd, args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n').at(-1)
        const result = JSON.parse(line)
        ;(runs[`${e.name}@${t}`] ??= [])[r] = result
        labels[e.name] = result.engine
        console.error(`round ${r + 1}/${rounds}, ${t} thread(s): ${e.name} ${result.medianMs.toFixed(2)} ms, load ${result.loadMs.toFixed(0)} ms`)
      }
    }
  }
  const cosine = (a, b) => a.reduce((s, x, i) => s + x * b[i], 0) / Math.hypot(...a) / Math.hypot(...b)
  console.log(`| engine | threads | median of round medians, ms (${rounds} rounds) | ratio to ONNX Runtime, per round | median ratio | cosine to ONNX Runtime |`)
  console.log('| --- | --- | --- | --- | --- | --- |')
  for (const t of ['1', '2']) {
    const ort = runs[`ort-fp32@${t}`]
    for (const e of engines) {
      const mine = runs[`${e.name}@${t}`]
      const ratios = mine.map((x, r) => x.medianMs / ort[r].medianMs)
      const ms = median(mine.map((x) => x.medianMs))
      console.log(`| ${labels[e.name]} | ${t} | ${ms.toFixed(2)} | ${ratios.map((x) => x.toFixed(2)).join(', ')} | ${median(ratios).toFixed(2)}x | ${cosine(mine[0].vector, ort[0].vector).toFixed(7)} |`)
    }
  }
  console.log('')
  console.log('| load from a warm cache | median ms | ratio to ONNX Runtime session creation, per round | median ratio |')
  console.log('| --- | --- | --- | --- |')
  const all = (name) => ['1', '2'].flatMap((t) => runs[`${name}@${t}`])
  for (const e of engines) {
    const ratios = all(e.name).map((x, i) => x.loadMs / all('ort-fp32')[i].loadMs)
    console.log(`| ${labels[e.name]} | ${median(all(e.name).map((x) => x.loadMs)).toFixed(1)} | ${ratios.map((x) => x.toFixed(2)).join(', ')} | ${median(ratios).toFixed(2)}x |`)
  }
  console.log(`\n${new Date().toISOString()}`)
  process.exit(0)
}

const out = (name) => path.join(outDir, `${name}.f32`)
const engines = [
  { name: 'ours-f32', cmd: 'node', args: ['bench/throughput.mjs', '1', threads, '--out', out('ours-f32')] },
  bf16 && { name: 'ours-bf16', cmd: 'node', args: ['bench/throughput.mjs', '1', threads, '--dtype', 'bf16', '--out', out('ours-bf16')] },
  { name: 'ours-int8', cmd: 'node', args: ['bench/throughput.mjs', '1', threads, '--dtype', 'int8', '--out', out('ours-int8')] },
  { name: 'st-fp32', cmd: python, args: ['bench/st_throughput.py', '1', threads, '--out', out('st-fp32')] },
  { name: 'st-bf16', cmd: python, args: ['bench/st_throughput.py', '1', threads, '--dtype', 'bf16', '--out', out('st-bf16')] },
  { name: 'ort-fp32', cmd: python, args: ['bench/ort_throughput.py', '1', threads, '--out', out('ort-fp32')] },
  { name: 'ort-int8', cmd: python, args: ['bench/ort_throughput.py', '1', threads, '--dtype', 'int8', '--out', out('ort-int8')] },
  { name: 'tjs-fp32', cmd: 'node', args: ['bench/transformersjs_throughput.mjs', '1', threads, '--dtype', 'fp32', '--out', out('tjs-fp32')] },
  { name: 'tjs-q8', cmd: 'node', args: ['bench/transformersjs_throughput.mjs', '1', threads, '--dtype', 'q8', '--out', out('tjs-q8')] },
].filter((e) => e && (!only || only.includes(e.name)))
// transformers.js reads the ONNX files ONNX Runtime's script exports and quantizes (once).
if (engines.some((e) => e.name.startsWith('tjs')) && !fs.existsSync(path.join(root, 'target/minilm-int8.onnx'))) {
  execFileSync(python, ['bench/ort_throughput.py', '1', threads, '--dtype', 'int8'], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] })
}

const seconds = Object.fromEntries(engines.map((e) => [e.name, []]))
let tokens
for (let r = 0; r < rounds; r++) {
  for (let i = 0; i < engines.length; i++) {
    const e = engines[(i + r) % engines.length]
    const line = execFileSync(e.cmd, e.args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
      .trim()
      .split('\n')
      .at(-1)
    const result = JSON.parse(line)
    seconds[e.name][r] = result.seconds[0]
    labels[e.name] = result.engine
    tokens ??= result.tokens
    console.error(`round ${r + 1}/${rounds}: ${e.name} ${result.seconds[0]} s`)
  }
}

const read = (name) => {
  const b = fs.readFileSync(out(name))
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4)
}
/** [minimum, mean] cosine between matching vectors of `a` and `b`. */
const agreement = (a, b, dims) => {
  let worst = 1
  let sum = 0
  for (let o = 0; o < a.length; o += dims) {
    let dot = 0
    let na = 0
    let nb = 0
    for (let j = o; j < o + dims; j++) {
      dot += a[j] * b[j]
      na += a[j] * a[j]
      nb += b[j] * b[j]
    }
    const c = dot / Math.sqrt(na * nb)
    worst = Math.min(worst, c)
    sum += c
  }
  return [worst, sum / (a.length / dims)]
}
const reference = read('st-fp32')
const dims = 384
console.log(`| engine | median s (${rounds} rounds) | tokens/s | min / mean cosine to sentence-transformers fp32 |`)
console.log('| --- | --- | --- | --- |')
for (const e of engines) {
  const v = read(e.name)
  const [min, mean] = v.length === reference.length ? agreement(v, reference, dims) : [NaN, NaN]
  const med = median(seconds[e.name])
  console.log(`| ${labels[e.name]} | ${med.toFixed(2)} (${seconds[e.name].join(', ')}) | ${Math.round(tokens / med)} | ${min.toFixed(6)} / ${mean.toFixed(6)} |`)
}
console.log('')
console.log('| ratio (same round) | per round | median |')
console.log('| --- | --- | --- |')
for (const ours of engines.filter((e) => e.name.startsWith('ours'))) {
  for (const peer of engines.filter((e) => !e.name.startsWith('ours'))) {
    const ratios = seconds[peer.name].map((s, r) => s / seconds[ours.name][r])
    console.log(`| ${ours.name} vs ${peer.name} | ${ratios.map((x) => x.toFixed(2)).join(', ')} | ${median(ratios).toFixed(2)}x |`)
  }
}
console.log(`\n${tokens} tokens, ${threads} threads, ${new Date().toISOString()}`)
