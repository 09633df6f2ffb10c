"""OpenAI's Responses API (POST /responses, GET / DELETE /responses/{id}) as an adapter over
the chat route's generation. Not to be confused with `protocols.openai.responses`, the
response envelopes chat and completions share."""
