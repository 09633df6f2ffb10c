"""Tiny random-weight Hugging Face models, built offline in seconds for tests.

Every folder is a normal `save_pretrained` checkpoint (config.json, model.safetensors,
tokenizer.json, tokenizer_config.json), so it loads with `AutoTokenizer` / `AutoModel*` like a
Hub model.
Weights are seeded and vocabularies are written inline (or trained deterministically on an inline
corpus), so token ids and outputs are identical from run to run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

HIDDEN_SIZE = 64
NUM_HEADS = 2
NUM_LAYERS = 2
BERT_MAX_POSITIONS = 256
GPT2_MAX_POSITIONS = 512
SEED = 0

SEQ_CLS_LABELS = {0: "NEGATIVE", 1: "POSITIVE"}
# Same order as dslim/bert-base-NER, the model KServe's docs use for token classification.
NER_LABELS = ["O", "B-MISC", "I-MISC", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]

BERT_SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
BERT_WORDS = (  # noqa: SIM905 - one readable block of words
    "the a an is was are be this that it its my your his her our their i you he she we they "
    "of to in on at by for with from and or but not no yes "
    "hello world example sentence text word test model data "
    "paris france london england berlin germany new york city capital country "
    "john smith mary jones google microsoft apple company works lives live work "
    "love hate like good bad great terrible awesome awful happy sad movie film book "
    "dog cat sat mat quick brown fox jumps over lazy man woman girl boy eating food bread "
    "piece baby carrying today tomorrow yesterday very much really what who where when how"
).split()
BERT_PUNCTUATION = list(".,!?;:'\"()-")
BERT_SUFFIXES = ["##s", "##ing", "##ed", "##ly", "##er", "##est"]
# Capitalised forms let tests see the effect of turning lower-casing off.
BERT_CASED_WORDS = ["Paris", "France", "John", "Google", "Hello", "The", "This"]

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
GPT2_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
T5_SPECIAL_TOKENS = ["<pad>", "</s>", "<unk>"]  # T5's fixed ids: pad=0, eos=1, unk=2.

BPE_CORPUS = [
    "The capital of France is Paris. Paris is a city in France.",
    "Hello world! This is an example sentence for a tiny language model.",
    "The quick brown fox jumps over the lazy dog. I love this movie, it is great.",
    "translate English to German: How are you today? What is your name? My name is John.",
    "The user asks a question and the assistant gives a short, helpful answer.",
    "0 1 2 3 4 5 6 7 8 9 10 100 1000, yes no maybe; (a) [b] {c} - _ + = * / @ # $ % & ~",
]


def bert_vocab() -> dict[str, int]:
    """Deterministic WordPiece vocabulary: specials, words, punctuation, letters, suffixes."""
    tokens: list[str] = list(BERT_SPECIAL_TOKENS)
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    upper = [chr(c) for c in range(ord("A"), ord("Z") + 1)]
    digits = [str(d) for d in range(10)]
    for group in (
        BERT_WORDS,
        BERT_PUNCTUATION,
        letters,
        upper,
        digits,
        BERT_CASED_WORDS,
        [f"##{c}" for c in letters + digits],
        BERT_SUFFIXES,
    ):
        for token in group:
            if token not in tokens:
                tokens.append(token)
    return {token: index for index, token in enumerate(tokens)}


def _save_bert_tokenizer(out: Path) -> int:
    from transformers import BertTokenizer

    vocab = bert_vocab()
    tokenizer = BertTokenizer(vocab=vocab, do_lower_case=True, model_max_length=BERT_MAX_POSITIONS)
    tokenizer.save_pretrained(out)
    # A plain vocab.txt too, as real BERT checkpoints ship one.
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return len(vocab)


def _bert_config(vocab_size: int, **extra: object):
    from transformers import BertConfig

    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=HIDDEN_SIZE,
        num_attention_heads=NUM_HEADS,
        num_hidden_layers=NUM_LAYERS,
        intermediate_size=HIDDEN_SIZE * 2,
        max_position_embeddings=BERT_MAX_POSITIONS,
        pad_token_id=0,
        **extra,
    )


def _save_model(model_cls_name: str, config: object, out: Path) -> None:
    import torch
    import transformers

    torch.manual_seed(SEED)
    model = getattr(transformers, model_cls_name)(config)
    model.eval()
    model.save_pretrained(out)


def _build_bert(out: Path, model_cls_name: str, **config_extra: object) -> None:
    vocab_size = _save_bert_tokenizer(out)
    _save_model(model_cls_name, _bert_config(vocab_size, **config_extra), out)


def build_bert_seq_cls(out: Path) -> None:
    _build_bert(
        out,
        "BertForSequenceClassification",
        id2label=dict(SEQ_CLS_LABELS),
        label2id={v: k for k, v in SEQ_CLS_LABELS.items()},
    )


# What sentence-transformers (v3/v4) writes into a CrossEncoder's config.json; it makes a
# one-label sequence classifier a rerank model when no task is configured.
CROSS_ENCODER_MARKER = {
    "activation_fn": "torch.nn.modules.activation.Sigmoid",
    "version": "4.1.0",
}


def build_bert_cross_encoder(out: Path) -> None:
    """A cross-encoder: one relevance logit per (query, document) pair. Weights are drawn
    wide (std 0.5) so that scores spread over (0, 1) and rankings are not ties."""
    _build_bert(
        out,
        "BertForSequenceClassification",
        num_labels=1,
        initializer_range=0.5,
        sentence_transformers=dict(CROSS_ENCODER_MARKER),
    )


def build_bert_ner(out: Path) -> None:
    _build_bert(
        out,
        "BertForTokenClassification",
        id2label=dict(enumerate(NER_LABELS)),
        label2id={label: i for i, label in enumerate(NER_LABELS)},
    )


def build_bert_mlm(out: Path) -> None:
    _build_bert(out, "BertForMaskedLM")


def build_bert_embed(out: Path) -> None:
    _build_bert(out, "BertModel")


def _train_bpe(special_tokens: list[str], byte_level: bool, vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if byte_level:
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    else:
        tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
        tokenizer.decoder = decoders.Metaspace()
        alphabet = sorted({ch for line in BPE_CORPUS for ch in line if not ch.isspace()})
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=alphabet,
        show_progress=False,
    )
    tokenizer.train_from_iterator(BPE_CORPUS, trainer=trainer)
    return tokenizer


def build_gpt2_chat(out: Path) -> None:
    from tokenizers import processors
    from transformers import GPT2Config, PreTrainedTokenizerFast

    raw = _train_bpe(GPT2_SPECIAL_TOKENS, byte_level=True, vocab_size=400)
    raw.post_processor = processors.ByteLevel(trim_offsets=False)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        model_max_length=GPT2_MAX_POSITIONS,
        model_input_names=["input_ids", "attention_mask"],
        chat_template=CHATML_TEMPLATE,
    )
    tokenizer.save_pretrained(out)
    eos_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    bos_id = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=HIDDEN_SIZE,
        n_head=NUM_HEADS,
        n_layer=NUM_LAYERS,
        n_positions=GPT2_MAX_POSITIONS,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=bos_id,
    )
    _save_model("GPT2LMHeadModel", config, out)
    _write_generation_config(out, bos_id, eos_id, bos_id)


def build_t5(out: Path) -> None:
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast, T5Config

    raw = _train_bpe(T5_SPECIAL_TOKENS, byte_level=False, vocab_size=300)
    eos_id = raw.token_to_id("</s>")
    raw.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", eos_id)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        model_max_length=GPT2_MAX_POSITIONS,
        model_input_names=["input_ids", "attention_mask"],
    )
    tokenizer.save_pretrained(out)
    pad_id = tokenizer.convert_tokens_to_ids("<pad>")
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=HIDDEN_SIZE,
        d_kv=HIDDEN_SIZE // NUM_HEADS,
        d_ff=HIDDEN_SIZE * 2,
        num_heads=NUM_HEADS,
        num_layers=NUM_LAYERS,
        num_decoder_layers=NUM_LAYERS,
        pad_token_id=pad_id,
        eos_token_id=eos_id,
        decoder_start_token_id=pad_id,
    )
    _save_model("T5ForConditionalGeneration", config, out)
    _write_generation_config(out, None, eos_id, pad_id, decoder_start_token_id=pad_id)


def _write_generation_config(
    out: Path, bos_id: int | None, eos_id: int, pad_id: int, **extra: int
) -> None:
    # Whether save_pretrained writes one depends on the transformers version: be explicit.
    config = {"eos_token_id": eos_id, "pad_token_id": pad_id, **extra}
    if bos_id is not None:
        config["bos_token_id"] = bos_id
    (out / "generation_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")


BUILDERS: dict[str, Callable[[Path], None]] = {
    "bert-seq-cls": build_bert_seq_cls,
    "bert-cross-encoder": build_bert_cross_encoder,
    "bert-ner": build_bert_ner,
    "bert-mlm": build_bert_mlm,
    "bert-embed": build_bert_embed,
    "gpt2-chat": build_gpt2_chat,
    "t5": build_t5,
}


def build_tiny_models(root: Path) -> dict[str, Path]:
    """Build every tiny model under `root`; returns name -> model folder."""
    root = Path(root)
    paths: dict[str, Path] = {}
    for name, builder in BUILDERS.items():
        out = root / name
        out.mkdir(parents=True, exist_ok=True)
        builder(out)
        paths[name] = out
    return paths


if __name__ == "__main__":
    import sys

    for model_name, path in build_tiny_models(Path(sys.argv[1])).items():
        print(model_name, path)
