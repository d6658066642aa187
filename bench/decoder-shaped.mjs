#!/usr/bin/env node
// The decoder-style families at real size, with seeded random weights (bench/make_shaped_model.py), against
// sentence-transformers, each engine in a process of its own:
// - qwen3 (the default): Qwen3-Embedding-0.6B's shape (28 layers, hidden 1024, 16 query heads sharing 8
//   key/value heads of 128, a 151,669-row table):
//   - parity on 8 texts, each embedded alone, one of them 8,192 tokens long (a copy of the folder that
//     truncates there), with seconds per text and peak resident memory;
//   - this package's peak resident memory for one text of 8,192 tokens and one of 32,768 (the model's
//     max_seq_length), each in a fresh process, against the same process after loading and a short text. The
//     32,768-token text runs on the model cut to 2 layers (a copy of the folder whose config says so): the
//     forward pass's working buffers are reused layer after layer, so their size does not depend on the depth,
//     and the full depth would take a quarter of an hour of attention on 2 cores.
// - gemma3: EmbeddingGemma-300M's shape (24 layers, hidden 768, 3 query heads sharing 1 key/value head of 256,
//   a 262,144-row table, a 512 window on five layers in six, Dense 768 -> 3072 -> 768):
//   - parity on 8 texts, each alone, the longest at its max_seq_length of 2,048 tokens, with the `document`
//     prompt, with seconds per text and peak resident memory;
//   - the idle short query with the `query` prompt: the same query embedded 33 times in each engine, the
//     median of the last 30, in 3 rounds (a fresh process per engine and round, the order alternating);
//   - peak resident memory for one text of 2,048 tokens.
//
// Usage: node bench/decoder-shaped.mjs [qwen3|gemma3] [--python .venv-bench/bin/python] [--no-32k] [--memory-only]
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { cpu, pythonFrom } from './common.mjs'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const argv = process.argv.slice(2)
const peakMb = () => Number(fs.readFileSync('/proc/self/status', 'utf8').match(/VmHWM:\s+(\d+)/)[1]) / 1024
const rssMb = () => process.memoryUsage.rss() / 1048576

if (argv[0] === '--child') {
  // --child <model> <texts.json> <out.json> [prompt]: each text alone, in order (with the named prompt).
  const { createRequire } = await import('node:module')
  const { EmbeddingService } = createRequire(import.meta.url)(root)
  const [model, textsPath, out, prompt] = argv.slice(1)
  const texts = JSON.parse(fs.readFileSync(textsPath, 'utf8'))
  const svc = new EmbeddingService({ model, threads: 2 })
  await svc.load()
  await svc.embed(['warm up'])
  const loaded = rssMb()
  const loadPeak = peakMb()
  // The high-water mark from here on is the texts' (loading peaks higher: the weights file's pages and the
  // packed copy are both resident until the pages are released).
  fs.writeFileSync('/proc/self/clear_refs', '5')
  const vectors = []
  const tokenCounts = []
  const seconds = []
  for (const text of texts) {
    const t0 = performance.now()
    const got = await svc.embedDetailed([text], { prompt, priority: prompt === 'query' ? 'query' : 'index' })
    seconds.push((performance.now() - t0) / 1000)
    vectors.push(Array.from(got.vectors[0]))
    tokenCounts.push(got.tokenCounts[0])
  }
  fs.writeFileSync(out, JSON.stringify({ vectors, token_counts: tokenCounts, seconds, loaded_mb: loaded, load_peak_mb: loadPeak, peak_mb: peakMb(), family: svc.status().family }))
  await svc.close()
  process.exit(0)
}

const python = pythonFrom(argv, root)
const kind = argv[0] === 'gemma3' ? 'gemma3' : 'qwen3'
const dir = path.join(root, `target/${kind}-shaped`)
if (!fs.existsSync(path.join(dir, 'model.safetensors'))) execFileSync(python, [path.join(root, 'bench/make_shaped_model.py'), kind, dir], { stdio: 'inherit' })
const reference = JSON.parse(fs.readFileSync(path.join(root, 'fixtures/reference/minilm/texts.json'), 'utf8'))
const prose = fs.readFileSync(path.join(root, 'README.md'), 'utf8')
const long = (chars) => prose.repeat(Math.ceil(chars / prose.length)).slice(0, chars)
const work = fs.mkdtempSync(path.join(root, `target/${kind}-shaped-run-`))
const write = (name, value) => {
  const file = path.join(work, name)
  fs.writeFileSync(file, JSON.stringify(value))
  return file
}
const read = (file) => JSON.parse(fs.readFileSync(file, 'utf8'))
const child = (...args) => execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--child', ...args], { stdio: 'inherit' })
const cosine = (a, b) => {
  let ab = 0, aa = 0, bb = 0
  for (let i = 0; i < a.length; i++) [ab, aa, bb] = [ab + a[i] * b[i], aa + a[i] * a[i], bb + b[i] * b[i]]
  return ab / Math.sqrt(aa * bb)
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

/** Each text alone in both engines (with `prompt`), side by side: cosine, token counts, seconds, memory. */
function parity(model, texts, prompt, oursFirst = false) {
  const textsFile = write('texts.json', texts)
  const stOut = path.join(work, 'st.json')
  const oursOut = path.join(work, 'ours.json')
  const runOurs = () => child(model, textsFile, oursOut, ...(prompt ? [prompt] : []))
  if (oursFirst) runOurs()
  execFileSync(python, [path.join(root, 'bench/st_texts.py'), model, textsFile, stOut, '2', ...(prompt ? [prompt] : [])], { stdio: 'inherit' })
  if (!oursFirst) runOurs()
  const [st, ours] = [read(stOut), read(oursOut)]
  if (ours.vectors.some((v, i) => v.length !== st.vectors[i].length)) throw new Error(`sizes differ: ours ${ours.vectors[0].length}, sentence-transformers ${st.vectors[0].length}`)
  return { st, ours }
}

if (kind === 'gemma3') {
  console.log(`CPU: ${cpu()}; gemma3-shaped (EmbeddingGemma-300M's shape, random weights), 2 threads`)
  if (!argv.includes('--memory-only')) {
    const texts = [reference[0], reference[3], reference[7], reference[10], reference[19], reference[23], long(3000), long(200000)]
    const { st, ours } = parity(dir, texts, 'document')
    console.log(`family: ${ours.family}; token counts equal: ${JSON.stringify(ours.token_counts) === JSON.stringify(st.token_counts)} (${ours.token_counts.join(', ')})`)
    console.log('| text (tokens), document prompt | cosine to sentence-transformers | ours, s | sentence-transformers, s |')
    console.log('| --- | --- | --- | --- |')
    texts.forEach((_, i) => {
      console.log(`| ${i + 1} (${ours.token_counts[i]}) | ${cosine(ours.vectors[i], st.vectors[i]).toFixed(7)} | ${ours.seconds[i].toFixed(3)} | ${st.seconds[i].toFixed(3)} |`)
    })
    console.log(`peak resident memory: ours ${ours.load_peak_mb.toFixed(0)} MB while loading, ${ours.loaded_mb.toFixed(0)} MB loaded, ${ours.peak_mb.toFixed(0)} MB over the 8 texts; sentence-transformers ${st.peak_mb.toFixed(0)} MB over its whole run`)
  }
  if (!argv.includes('--memory-only')) {
    // Three rounds, each engine a fresh process per round (the order alternating): the machine is shared.
    const query = 'how do I configure the embedding model for my folder'
    const ratios = []
    for (let round = 0; round < 3; round++) {
      const idle = parity(dir, Array(33).fill(query), 'query', round % 2 === 1)
      const [o, s] = [median(idle.ours.seconds.slice(3)) * 1000, median(idle.st.seconds.slice(3)) * 1000]
      ratios.push(o / s)
      console.log(`idle short query, round ${round + 1} (${idle.ours.token_counts[0]} tokens with the query prompt; median of 30 calls after 3 warm-up calls): ours ${o.toFixed(1)} ms, sentence-transformers ${s.toFixed(1)} ms: ${(o / s).toFixed(2)}x its time; cosine ${cosine(idle.ours.vectors[0], idle.st.vectors[0]).toFixed(7)}`)
    }
    console.log(`idle short query: median ${median(ratios).toFixed(2)}x sentence-transformers' time`)
  }
  const out = path.join(work, 'long.json')
  child(dir, write('long-text.json', [long(200000)]), out)
  const r = read(out)
  console.log(`one text of ${r.token_counts[0]} tokens: peak ${r.peak_mb.toFixed(0)} MB while embedding it, ${(r.peak_mb - r.loaded_mb).toFixed(0)} MB above the loaded model (${r.loaded_mb.toFixed(0)} MB; ${r.load_peak_mb.toFixed(0)} MB at the peak of loading), ${r.seconds[0].toFixed(2)} s`)
  fs.rmSync(work, { recursive: true, force: true })
  process.exit(0)
}

// A copy of the folder (links to its files) that truncates at 8,192 tokens.
const at8k = path.join(root, 'target/qwen3-shaped-8k')
fs.rmSync(at8k, { recursive: true, force: true })
fs.mkdirSync(at8k)
for (const f of fs.readdirSync(dir)) fs.symlinkSync(path.join(dir, f), path.join(at8k, f))
fs.rmSync(path.join(at8k, 'sentence_bert_config.json'))
fs.writeFileSync(path.join(at8k, 'sentence_bert_config.json'), JSON.stringify({ max_seq_length: 8192, do_lower_case: false }))

// The same folder, cut to 2 layers (the loader reads the first num_hidden_layers layers).
const cut = path.join(root, 'target/qwen3-shaped-2-layers')
fs.rmSync(cut, { recursive: true, force: true })
fs.mkdirSync(cut)
for (const f of fs.readdirSync(dir).filter((f) => f !== 'config.json')) fs.symlinkSync(path.join(dir, f), path.join(cut, f))
const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'))
fs.writeFileSync(path.join(cut, 'config.json'), JSON.stringify({ ...config, num_hidden_layers: 2, layer_types: config.layer_types.slice(0, 2) }))

const texts = [reference[0], reference[3], reference[7], reference[10], reference[19], reference[23], long(6000), long(200000)]

console.log(`CPU: ${cpu()}; qwen3-shaped (Qwen3-Embedding-0.6B's shape, random weights), 2 threads`)
if (!argv.includes('--memory-only')) qwen3Parity()
function qwen3Parity() {
  const { st, ours } = parity(at8k, texts)
  console.log(`family: ${ours.family}; token counts equal: ${JSON.stringify(ours.token_counts) === JSON.stringify(st.token_counts)} (${ours.token_counts.join(', ')})`)
  console.log('| text (tokens) | cosine to sentence-transformers | ours, s | sentence-transformers, s |')
  console.log('| --- | --- | --- | --- |')
  texts.forEach((_, i) => {
    console.log(`| ${i + 1} (${ours.token_counts[i]}) | ${cosine(ours.vectors[i], st.vectors[i]).toFixed(7)} | ${ours.seconds[i].toFixed(2)} | ${st.seconds[i].toFixed(2)} |`)
  })
  console.log(`peak resident memory: ours ${ours.load_peak_mb.toFixed(0)} MB while loading, ${ours.loaded_mb.toFixed(0)} MB loaded, ${ours.peak_mb.toFixed(0)} MB over the 8 texts; sentence-transformers ${st.peak_mb.toFixed(0)} MB over its whole run`)
}

// One long text per fresh process: the peak above the loaded model is the forward pass's working memory.
for (const [label, model, text] of [['8,192 tokens', at8k, long(200000)], ['32,768 tokens (2 layers)', cut, long(800000)]]) {
  if (label.startsWith('32') && argv.includes('--no-32k')) continue
  const out = path.join(work, 'long.json')
  child(model, write('long-text.json', [text]), out)
  const r = read(out)
  console.log(`one text of ${label} (${r.token_counts[0]}): peak ${r.peak_mb.toFixed(0)} MB while embedding it, ${(r.peak_mb - r.loaded_mb).toFixed(0)} MB above the loaded model (${r.loaded_mb.toFixed(0)} MB; ${r.load_peak_mb.toFixed(0)} MB at the peak of loading), ${r.seconds[0].toFixed(1)} s`)
}
fs.rmSync(work, { recursive: true, force: true })
