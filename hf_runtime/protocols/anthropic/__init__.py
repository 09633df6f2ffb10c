"""The Anthropic Messages API (POST /v1/messages, /v1/messages/count_tokens) as an adapter over
the OpenAI chat route's generation: requests become a chat request, answers its results."""
