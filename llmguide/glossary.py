"""术语表 · The glossary: the Chinese and English name of each idea the guide teaches, and where.

The first readers know these ideas from Chinese write-ups, so every notebook gives the Chinese term at a
concept's first use. This table is the one list of those terms: the README and notebook 00 show it as a
Markdown table (:func:`glossary_markdown`), and ``tests/test_glossary.py`` checks that both show exactly
this list.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Term:
    """One glossary row."""

    zh: str  # the usual Chinese term, e.g. "注意力"
    en: str  # the English term, e.g. "attention"
    meaning: str  # one line, in English
    notebook: str  # where it is taught: "02", or "07 (coming)" for a notebook not written yet


GLOSSARY: tuple[Term, ...] = (
    Term("词元", "token", "the unit a model reads and writes: a character, a piece of a word, or a byte", "01"),
    Term("分词", "tokenization", "cutting text into tokens and mapping each to an integer id", "01"),
    Term("词表", "vocabulary", "the set of tokens a tokenizer knows, one id each", "01"),
    Term("嵌入", "embedding", "a learned vector per token id, looked up from a table", "01"),
    Term("位置编码", "positional encoding", "a vector per position, added so the model knows token order", "01"),
    Term("注意力", "attention", "each position takes a weighted mean of value vectors, weighted by query-key match",
         "02"),
    Term("自注意力", "self-attention", "attention where queries, keys and values all come from the same sequence",
         "02"),
    Term("多头注意力", "multi-head attention", "several attentions in parallel on slices of the vector, concatenated",
         "02"),
    Term("掩码", "mask", "hides positions from attention: padding, or the future (causal mask)", "02"),
    Term("语言模型", "language model", "a model of the probability of the next token given the ones before", "03"),
    Term("残差连接", "residual connection", "adding a block's input to its output, so signals and gradients pass",
         "03"),
    Term("采样", "sampling", "drawing the next token from the model's distribution (temperature, top-k, top-p)",
         "03"),
    Term("键值缓存", "KV cache", "keeping past keys and values so each new token costs one position, not all", "03"),
    Term("预训练", "pre-training", "training a language model on unlabelled text to predict the next token", "04"),
    Term("损失", "loss", "the number training lowers; here the cross-entropy of the true next token", "04"),
    Term("交叉熵", "cross-entropy", "minus the log-probability the model gave the right answer, in nats", "04"),
    Term("困惑度", "perplexity", "exp(loss): as unsure as a uniform choice among that many tokens", "04"),
    Term("梯度", "gradient", "how the loss changes with each weight; backpropagation computes it", "04"),
    Term("优化器", "optimizer", "the rule that turns gradients into weight updates (AdamW)", "04"),
    Term("学习率", "learning rate", "the step size of each update, often warmed up and then decayed", "04"),
    Term("过拟合", "overfitting", "training loss keeps falling while validation loss rises: memorising", "04"),
    Term("微调", "fine-tuning", "continuing training of a pre-trained model on a labelled task", "05"),
    Term("推理", "inference", "running a trained model on new inputs to get predictions", "05"),
    Term("准确率", "accuracy", "the share of predictions that are right", "06"),
    Term("精确率", "precision", "of the examples called class k, the share that are k", "06"),
    Term("召回率", "recall", "of the examples of class k, the share the model found", "06"),
    Term("F1 值", "F1 score", "the harmonic mean of precision and recall", "06"),
    Term("混淆矩阵", "confusion matrix", "counts of (true class, predicted class) pairs", "06"),
    Term("校准", "calibration", "whether predicted probabilities match observed frequencies", "06"),
    Term("温度缩放", "temperature scaling", "dividing logits by one number T fitted on validation data", "06"),
    Term("鲁棒性", "robustness", "how results hold on groups and domains unlike the training data", "06"),
    Term("部署", "deployment", "serving a model to users behind an API, with batching and limits", "07"),
    Term("量化", "quantization", "storing weights in fewer bits (int8, int4) to save memory and time", "08"),
    Term("剪枝", "pruning", "removing weights or heads that matter least", "08"),
    Term("蒸馏", "distillation", "training a small model to imitate a large one's outputs", "08"),
    Term("混合精度", "mixed precision", "computing in 16-bit floats (bf16) while keeping fp32 where it matters", "08"),
    Term("数据并行", "data parallelism", "one model copy per device, each on a slice of the batch, gradients averaged",
         "08"),
    Term("可解释性", "interpretability", "finding out which inputs and internals drive a prediction", "09"),
    Term("编码器", "encoder", "a transformer whose every position attends to every other (no causal mask): BERT", "10"),
    Term("掩码语言模型", "masked language model", "pre-training by predicting hidden tokens from both sides", "10"),
    Term("全词掩码", "whole-word masking", "hiding every character of a word together, not single characters", "10"),
    Term("中文分词", "Chinese word segmentation", "cutting Chinese text, written without spaces, into words",
         "10"),
    Term("循环神经网络", "recurrent neural network (RNN)", "reads a sequence one step at a time, carrying a state",
         "10"),
    Term("卷积", "convolution", "one small filter slid over every position of an image", "11"),
    Term("图像块", "patch", "a small square of an image, flattened into one token for a ViT", "11"),
    Term("归纳偏置", "inductive bias", "what a model assumes before seeing data, e.g. a CNN's locality", "11"),
)


def glossary_markdown(terms: tuple[Term, ...] = GLOSSARY) -> str:
    """The glossary as a Markdown table: 中文 | English | meaning | notebook.

    Args:
        terms: the rows (default: :data:`GLOSSARY`).
    Returns:
        the table, one row per line, without a trailing newline.
    """
    lines = ["| 中文 | English | meaning | notebook |", "|---|---|---|---|"]
    lines += [f"| {t.zh} | {t.en} | {t.meaning} | {t.notebook} |" for t in terms]
    return "\n".join(lines)
