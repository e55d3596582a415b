// Drives a running Parley with the official @cloudbase/ai SDK, as a Node app would.
// Usage: node drive.js <baseUrl> <apiKey> <botId>   (baseUrl like http://127.0.0.1:PORT/v1)
// Prints one JSON object with what each SDK call returned; tests/e2e/test_cloudbase.py checks it.
'use strict'

const { createAI } = require('@cloudbase/ai')

const [baseUrl, apiKey, botId] = process.argv.slice(2)

// The SDK's request adapter: `fetch` returns {data, header}; `data` is the body stream for
// streaming calls and a promise of the parsed JSON otherwise.
const req = {
  async fetch({ url, method = 'post', headers = {}, body, stream }) {
    const cleanHeaders = Object.fromEntries(Object.entries(headers).filter(([k, v]) => k !== 'undefined' && v != null))
    const response = await fetch(url, { method: method.toUpperCase(), headers: cleanHeaders, body })
    if (stream) {
      return { data: response.body, header: response.headers, statusCode: response.status }
    }
    return { data: response.json(), header: response.headers, statusCode: response.status }
  },
}

const i18n = { LANG_HEADER_KEY: 'Accept-Language', lang: 'en-US', t: (text) => text }

async function collect(iterable) {
  const items = []
  for await (const item of iterable) items.push(item)
  return items
}

async function failure(promise) {
  try {
    await promise
    return null
  } catch (error) {
    return String(error && error.message ? error.message : error)
  }
}

async function main() {
  const ai = createAI({ baseUrl, req, getAccessToken: async () => ({ accessToken: apiKey }), i18n })
  const out = {}

  out.list = await ai.bot.list({ name: '', introduction: '', information: '', enable: true, pageSize: 10, pageNumber: 1 })
  out.bot = await ai.bot.get({ botId })
  out.created = await ai.bot.createConversation({ botId, title: 'Trip planning' })
  const conversationId = out.created.conversationId

  const first = await ai.bot.sendMessage({ botId, msg: 'js text stream', history: [], conversationId })
  out.text = (await collect(first.textStream)).join('')

  const second = await ai.bot.sendMessage({
    botId,
    msg: 'js data stream',
    history: [{ role: 'user', content: 'js text stream' }, { role: 'assistant', content: out.text }],
    conversationId,
  })
  out.chunks = await collect(second.dataStream)
  const recordId = out.chunks.filter((c) => c.record_id).map((c) => c.record_id).pop()

  const thinking = await ai.bot.sendMessage({ botId, msg: 'js thinking please', history: [], conversationId })
  out.thinkingChunks = await collect(thinking.dataStream)

  out.records = await ai.bot.getChatRecords({ botId, sort: 'asc', pageSize: 10, pageNumber: 1, conversationId })
  out.recordsDesc = await ai.bot.getChatRecords({ botId, sort: 'desc', pageSize: 2, pageNumber: 1, conversationId })

  out.feedbackSent = await ai.bot.sendFeedback({
    userFeedback: {
      recordId, type: 'upvote', botId, comment: 'spot on', rating: 5, tags: ['helpful'],
      input: 'js data stream', aiAnswer: out.chunks.map((c) => c.content || '').join(''),
    },
  })
  out.feedback = await ai.bot.getFeedback({
    botId, type: 'upvote', sender: 'cloudbase:', senderFilter: 'prefix', minRating: 1, maxRating: 5,
    from: 0, to: 0, pageSize: 10, pageNumber: 1,
  })
  out.feedbackNone = await ai.bot.getFeedback({ botId, type: 'downvote', pageSize: 10, pageNumber: 1 })
  out.recordId = recordId

  // A history the client keeps itself reaches the model, even though the conversation has stored turns.
  const told = await ai.bot.sendMessage({
    botId,
    msg: 'js what is my name',
    history: [{ role: 'user', content: 'js my name is Ada' }, { role: 'assistant', content: 'js Hello Ada.' }],
    conversationId,
  })
  out.told = (await collect(told.textStream)).join('')

  const questions = await ai.bot.getRecommendQuestions({
    botId, name: 'bot', introduction: '', agentSetting: '', msg: 'js recommend', history: [],
  })
  out.recommended = (await collect(questions.textStream)).join('')

  out.conversations = await ai.bot.getConversation({ botId, pageSize: 10, pageNumber: 1 })
  out.defaultConversations = await ai.bot.getConversation({ botId, pageSize: 10, pageNumber: 1, isDefault: true })
  out.deleted = await ai.bot.deleteConversation({ botId, conversationId })
  out.conversationsAfterDelete = await ai.bot.getConversation({ botId, pageSize: 10, pageNumber: 1, isDefault: false })

  out.errors = {
    unknownBot: await failure(ai.bot.sendMessage({ botId: 'bot-nope', msg: 'hi', history: [] })),
    emptyMessage: await failure(ai.bot.sendMessage({ botId, msg: '', history: [] })),
    deletedConversation: await failure(ai.bot.sendMessage({ botId, msg: 'hi', history: [], conversationId })),
    recordsWithoutSort: await failure(ai.bot.getChatRecords({ botId, pageSize: 10, pageNumber: 1 })),
  }
  const badKey = createAI({ baseUrl, req, getAccessToken: async () => ({ accessToken: 'cb_api_wrong' }), i18n })
  out.errors.badKey = await failure(badKey.bot.get({ botId }))

  process.stdout.write(JSON.stringify(out))
}

main().catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error) + '\n')
  process.exit(1)
})
