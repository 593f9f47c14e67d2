// Upload one file to a tus server with tus-js-client (Node), from a file read stream.
//
//   node upload.mjs ENDPOINT FILE [--chunk-size N] [--parallel N]
//
// On success prints one JSON line: {"url": ..., "requests": [{method, url, status,
// headers: {...}}, ...]} (the request headers the tests care about); on failure prints the
// error on stderr and exits 1.

import fs from 'node:fs'
import process from 'node:process'
import { parseArgs } from 'node:util'

import tus from 'tus-js-client'

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    'chunk-size': { type: 'string', default: String(5 * 1024 * 1024) },
    parallel: { type: 'string', default: '1' },
  },
})
if (positionals.length !== 2) {
  console.error('usage: node upload.mjs ENDPOINT FILE [--chunk-size N] [--parallel N]')
  process.exit(2)
}
const [endpoint, file] = positionals
const chunkSize = Number(values['chunk-size'])
const parallel = Number(values.parallel)

const requests = []
const interesting = ['Upload-Offset', 'Upload-Length', 'Upload-Concat', 'Content-Type']

const options = {
  endpoint,
  chunkSize,
  metadata: { filename: 'from-node.bin', filetype: 'application/octet-stream' },
  retryDelays: null, // a failure is a failure: the test must see it, not a retry
  storeFingerprintForResuming: false,
  onAfterResponse(req, res) {
    const headers = {}
    for (const name of interesting) {
      const value = req.getHeader(name)
      if (value !== undefined) headers[name] = value
    }
    requests.push({ method: req.getMethod(), url: req.getURL(), status: res.getStatus(), headers })
  },
}
if (parallel > 1) options.parallelUploads = parallel

const url = await new Promise((resolve, reject) => {
  const upload = new tus.Upload(fs.createReadStream(file), {
    ...options,
    onError: reject,
    onSuccess: () => resolve(upload.url),
  })
  upload.start()
}).catch((error) => {
  console.error(`tus-js-client failed: ${error}`)
  process.exit(1)
})
console.log(JSON.stringify({ url, requests }))
