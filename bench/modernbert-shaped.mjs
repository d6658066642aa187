// ModernBERT at base size (bench/make_shaped_model.py modernbert: 22 layers, hidden 768, local attention 128;
// seeded random weights, the tiny fixture's tokenizer), on the first N texts of the benchmark corpus truncated at
// 256 tokens (past the local window): this addon in f32 and int8 against sentence-transformers fp32, each engine
// its own process, rounds rotated. Prints each engine's seconds, the medians, and every engine's minimum and mean
// cosine to sentence-transformers. candle's forward pass on the CPU (what the addon ran before its own ModernBERT
// path) is timed by `MODEL=target/modernbert-shaped KERNELS=candle cargo bench --bench throughput -- N 2 3`.
// Usage: node bench/modernbert-shaped.mjs [rounds=2] [texts=100] [threads=2]; needs .venv-bench (see README).
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const [rounds, texts, threads] = [Number(process.argv[2] ?? 2), process.argv[3] ?? '100', process.argv[4] ?? '2']
const python = path.join(root, '.venv-bench/bin/python')
const model = path.join(root, 'target/modernbert-shaped')
execFileSync(python, ['bench/make_shaped_model.py', 'modernbert', model], { cwd: root, stdio: 'inherit' })
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'modernbert-shaped-'))
const out = (name) => path.join(tmp, `${name}.f32`)
const engines = [
  { name: 'ours-f32', cmd: 'node', args: ['bench/throughput.mjs', '1', threads, texts, '--model', model, '--out', out('ours-f32')] },
  { name: 'ours-int8', cmd: 'node', args: ['bench/throughput.mjs', '1', threads, texts, '--model', model, '--dtype', 'int8', '--out', out('ours-int8')] },
  { name: 'st-fp32', cmd: python, args: ['bench/st_throughput.py', '1', threads, '--model', model, '--limit', texts, '--out', out('st-fp32')] },
]
const seconds = Object.fromEntries(engines.map((e) => [e.name, []]))
for (let r = 0; r < rounds; r++) {
  for (let i = 0; i < engines.length; i++) {
    const e = engines[(i + r) % engines.length]
    const result = JSON.parse(execFileSync(e.cmd, e.args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().split('\n').pop())
    seconds[e.name].push(result.medianSeconds)
    console.log(`round ${r + 1}/${rounds}: ${e.name} ${result.medianSeconds} s`)
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const read = (name) => new Float32Array(fs.readFileSync(out(name)).buffer.slice(0))
const reference = read('st-fp32')
const dims = 768
for (const e of engines) {
  const got = read(e.name)
  const cosines = []
  for (let t = 0; t < got.length / dims; t++) {
    let dot = 0, na = 0, nb = 0
    for (let j = t * dims; j < (t + 1) * dims; j++) {
      dot += got[j] * reference[j]; na += got[j] ** 2; nb += reference[j] ** 2
    }
    cosines.push(dot / Math.sqrt(na * nb))
  }
  const m = median(seconds[e.name])
  console.log(`${e.name}: median ${m} s, ${(median(seconds['st-fp32']) / m).toFixed(2)}x sentence-transformers; cosine to it min ${Math.min(...cosines).toFixed(6)} (1 - min ${(1 - Math.min(...cosines)).toExponential(1)}), mean ${(cosines.reduce((a, b) => a + b) / cosines.length).toFixed(6)}`)
}
fs.rmSync(tmp, { recursive: true })
