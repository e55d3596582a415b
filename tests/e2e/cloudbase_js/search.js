// Sends one message with web search on through the official @cloudbase/ai SDK and prints the
// chunks its dataStream yields, as JSON. Usage: node search.js <baseUrl> <apiKey> <botId> <msg>
'use strict'

const { createAI } = require('@cloudbase/ai')

const [baseUrl, apiKey, botId, msg] = process.argv.slice(2)

const req = {
  async fetch({ url, method = 'post', headers = {}, body, stream }) {
    const cleanHeaders = Object.fromEntries(Object.entries(headers).filter(([k, v]) => k !== 'undefined' && v != null))
    const response = await fetch(url, { method: method.toUpperCase(), headers: cleanHeaders, body })
    if (stream) return { data: response.body, header: response.headers, statusCode: response.status }
    return { data: response.json(), header: response.headers, statusCode: response.status }
  },
}
const i18n = { LANG_HEADER_KEY: 'Accept-Language', lang: 'en-US', t: (text) => text }

async function main() {
  const ai = createAI({ baseUrl, req, getAccessToken: async () => ({ accessToken: apiKey }), i18n })
  const result = await ai.bot.sendMessage({ botId, msg, history: [], searchEnable: true })
  const chunks = []
  for await (const chunk of result.dataStream) chunks.push(chunk)
  process.stdout.write(JSON.stringify({ chunks }))
}

main().catch((error) => {
  process.stdout.write(JSON.stringify({ error: String(error && error.stack ? error.stack : error) }))
  process.exit(1)
})
