"""The fixed, varied texts `benchmarks.precision` compares precisions on (200 of them).

Short sentences alone would hide the drift that grows with sequence length and padding, so
the set mixes lengths from one word to a few hundred tokens (some past MiniLM's 256-token
training length, a few truncated at 512), and kinds of text: news, questions, reviews, code,
numbers, typos, other languages and emoji. Built deterministically from the lists below, so
every run and every machine compares the same inputs.
"""

from __future__ import annotations

BASE: tuple[str, ...] = (
    "The central bank raised interest rates by a quarter of a percentage point on Wednesday.",
    "How do I reset my password if I no longer have access to my email?",
    "This vacuum cleaner is loud, but it picks up pet hair better than anything I've owned.",
    "def add(a, b):\n    return a + b  # adds two numbers",
    "Patients with type 2 diabetes were randomly assigned to metformin or placebo.",
    "The tenant shall pay rent on the first day of each calendar month without deduction.",
    "lol that movie was sooo bad i walked out after 20 mins",
    "Le chat dort sur le canapé pendant que la pluie tombe dehors.",
    "Der Zug nach München hat heute wieder zwanzig Minuten Verspätung.",
    "El mercado abre a las ocho y cierra a las dos de la tarde.",
    "我们明天早上九点在图书馆见面。",
    "Great service!!! 🙂🙂 Will definitely come back 👍",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "SELECT name, COUNT(*) FROM orders GROUP BY name HAVING COUNT(*) > 10;",
    "Error 503: the upstream service is temporarily unavailable, retry after 30s.",
    "Q3 revenue was $4.2B, up 12% year over year, beating analyst estimates of $3.9B.",
    "Can you recommend a good vegetarian lasagna recipe for eight people?",
    "The striker scored twice in the final ten minutes to win the cup.",
    "Mitochondria are the powerhouse of the cell.",
    "Turn left at the second traffic light, then keep right until the roundabout.",
    "The defendant pleaded not guilty to all charges.",
    "I absolutely hated the ending; it ruined the whole series for me.",
    "Absolutely loved it. Best purchase this year, no regrets at all.",
    "Thx for the quick reply, c u tmrw at the meetng",
    "Quantum entanglement links the states of particles regardless of distance.",
    "The recipe calls for 250 g of flour, 2 eggs and 100 ml of milk.",
    "Is it safe to take ibuprofen together with paracetamol?",
    "Shares of the chipmaker fell 8% after it cut its full-year guidance.",
    "Please find attached the signed contract and the invoice for March.",
    "The museum is closed on Mondays and public holidays.",
    "Why does my sourdough starter smell like nail polish remover?",
    "Heavy snowfall closed the mountain pass for the third day in a row.",
    "The API returns a JSON object with the fields id, status and created_at.",
    "She finished the marathon in three hours, forty-one minutes and nine seconds.",
    "Our flight was cancelled and the airline offered no compensation whatsoever.",
    "The committee will review all applications received before 15 September.",
    "Volcanic ash can disrupt air traffic across an entire continent.",
    "git rebase -i HEAD~3 lets you squash the last three commits into one.",
    "Researchers found no significant difference between the two treatment groups.",
    "What's the capital of Australia? Many people guess Sydney, but it's Canberra.",
)

FRAGMENTS: tuple[str, ...] = (
    "hello",
    "OK",
    "42",
    "refund",
    "not bad",
    "???",
    "New York",
    "password reset",
    "🙂",
    "très bien",
    "interest rates",
    "the",
    "battery life",
    "2024-03-15",
    "N/A",
    "sold out",
    "machine learning",
    "no",
    "Berlin",
    "fast shipping, good price",
)


def texts() -> tuple[str, ...]:
    """200 texts: 40 sentences, 20 fragments, 60 pairs, 50 paragraphs and 30 long documents."""
    n = len(BASE)
    pairs = [f"{BASE[i % n]} {BASE[(i * 7 + 3 + i // n) % n]}" for i in range(60)]
    paragraphs = [" ".join(BASE[(i * 3 + k * 11) % n] for k in range(3 + i % 6)) for i in range(50)]
    documents = [" ".join(BASE[(i * 5 + k) % n] for k in range(12 + i)) for i in range(30)]
    return (*BASE, *FRAGMENTS, *pairs, *paragraphs, *documents)


TEXTS: tuple[str, ...] = texts()
