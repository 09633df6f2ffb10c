"""text-embeddings-inference's HTTP API (TEI): /embed, /embed_all, /predict, /similarity,
/decode and /info at the root as TEI serves them, plus TEI's bodies on the root /rerank and
/tokenize (shared with vLLM's shapes, told apart by the body: `shared_paths`).

Errors have TEI's shape and statuses ({"error", "error_type"}: protocols.errors.tei_body).
A request names no model: the one served, or the one model that can serve the route (a
`model` field picks one where several can)."""
