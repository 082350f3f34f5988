# %% [markdown]
# # 08 · Cost (成本): what a model costs and how to cut it
#
# A model costs compute to train, memory to hold, and time for every answer. This notebook first counts
# those costs with formulas checked against measurement (`llmguide.cost`), scales them up to GPT-3, and then
# cuts them on a real model, the review classifier of notebook 05 (shipped as `data/review-classifier`,
# test accuracy 0.842), one technique at a time, each by hand first, then through the library, then measured:
#
# 1. the cost model: parameters, FLOPs per token, bytes per parameter; GPT-3 with every assumption printed;
# 2. 量化 quantization: int8 / int4 weights;
# 3. 剪枝 pruning: zeroing small weights (unstructured) against removing whole heads and neurons (structured);
# 4. 蒸馏 distillation: a student with a quarter of the parameters, trained on the teacher's soft labels;
# 5. 混合精度 mixed precision: bf16 autocast for training and inference, and which CPUs gain from it;
# 6. 并行 parallelism and memory: DDP with two processes via `torchrun`, gradient accumulation, activation
#    checkpointing, `torch.compile`;
# 7. one table of every technique, a Pareto plot of quality against speed and size, and the asserts.
#
# **Reading the saved outputs.** Quality numbers of the shipped classifier and of cuts without training are
# deterministic up to the CPU's kernels (small tolerances); models trained here (the pruned fine-tune, the
# students) carry `# NBVAL_TOLERANCE`; timings depend on your machine and its load and are not compared.
# `benchmarks/efficiency.py` repeats the quantization comparison on larger models (GPT-2 size, SmolLM2-135M).

# %%
# On Google Colab, fetch the guide and install llmguide; elsewhere it is already installed (see the README).
import sys

IN_COLAB = "google.colab" in sys.modules
if IN_COLAB:
    !git clone -q --depth 1 https://github.com/llmguide/llmguide /content/llmguide
    %pip install -q -e "/content/llmguide[offline]"
    sys.path.insert(0, "/content/llmguide")

# %%
from llmguide import setup
from llmguide.classify import iter_batches, review_datasets
from llmguide.cost import count_params, flops_per_token, gpt3_estimate, param_count, param_memory
from llmguide.data import data_dir
from llmguide.distill import distill, distillation_loss, student_from_teacher, teacher_logits
from llmguide.evaluate import evaluate
from llmguide.folder import load_folder
from llmguide.model import GPT, GPTConfig
from llmguide.parallel import DEMO_MODEL, compile_speedup, demo_data, run_data_parallel, train_demo
from llmguide.plotting import set_style
from llmguide.profiling import best_time, peak_bytes
from llmguide.prune import magnitude_prune, sparsity, sparsity_curve, structured_prune, unit_importance, zero_units
from llmguide.quantize import dequantize_int8, quantize_int4, dequantize_int4, quantize_int8, quantize_model
from llmguide.runtime import evenly_spaced
from llmguide.train import TrainConfig, mixed_precision, train

rt = setup(seed=0)  # the profile comes from $LLMGUIDE_PROFILE; setup(profile="gpu") forces one
print(rt)

# %%
import copy
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import torch
import torch.nn.functional as F

set_style()
pd.set_option("display.precision", 4)
flags = set(Path("/proc/cpuinfo").read_text().split()) if Path("/proc/cpuinfo").exists() else set()
features = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8") if f in flags]
print("CPU features that decide int8 / bf16 speed:", " ".join(features) or "none found (not Linux x86?)")

# %% [markdown]
# ## 1. The cost model
#
# For a GPT with L layers, width C, vocabulary V and context T (`llmguide.cost`, Kaplan et al. 2020;
# Hoffmann et al. 2022 for the counting):
#
# * parameters N ≈ 12 L C² + (V + T) C; the formula is exact for our GPT (biases and LayerNorms included);
# * a forward pass costs 2 FLOPs per weight per token (one multiply-add) plus attention's 4 L T C; training
#   about 3 times that (the backward pass computes two matmuls for every one of the forward): ≈ 6 N per token;
# * training with Adam keeps 16 bytes per parameter (weights 4 + gradients 4 + two moments 8 in fp32; bf16
#   mixed precision: 2 + 2 + a 4-byte master copy + 8, also 16). Serving needs only the weights: 4, 2, 1 or
#   0.5 bytes in fp32, bf16, int8, int4.

# %%
clf, tok, meta = load_folder(data_dir() / "review-classifier")
clf.eval()
config = clf.gpt.config
print(config)
print(f"parameters: formula {param_count(config):,} + head {clf.score.weight.numel()} = "
      f"{param_count(config) + clf.score.weight.numel():,}; counted {count_params(clf):,}")
print(f"forward FLOPs per token (T={config.block_size}): {flops_per_token(config, head=False):,.0f}; "
      f"training: {flops_per_token(config, training=True, head=False):,.0f}")
for precision in ("fp32", "bf16-mixed", "int8"):
    print(f"{precision:>10}: {param_memory(count_params(clf), precision)['total'] / 1e6:6.2f} MB")
assert param_count(config) + clf.score.weight.numel() == count_params(clf)

# %% [markdown]
# The same formulas at GPT-3's size (Brown et al. 2020: 175 B parameters, 300 B tokens). Every assumption is a
# field of the estimate and printed with it; change one with `gpt3_estimate(utilisation=0.5, ...)`.

# %%
gpt3 = gpt3_estimate()
for key, value in gpt3.summary().items():
    print(f"{key:>22}: {value:,.4g}" if isinstance(value, float) else f"{key:>22}: {value}")
print(f"\ntraining: {gpt3.train_flops:.3g} FLOPs (paper: 3.14e23), {gpt3.gpu_days:,.0f} GPU-days on "
      f"{gpt3.gpu} at {gpt3.utilisation:.0%} utilisation, ${gpt3.dollars / 1e6:.1f} M at "
      f"${gpt3.price_per_gpu_hour}/GPU-hour; serving in bf16 needs {gpt3.serve_bytes / 1e9:.0f} GB = "
      f"{gpt3.serve_gpus} GPUs of {gpt3.gpu_memory / 1e9:.0f} GB")

# %% [markdown]
# ## The yardstick
#
# Every cut is scored on the 1,736 reviews of the held-out test set, timed on the same batch of 128 reviews
# (one thread per timing, fastest of three runs), and sized by its weights' bytes.

# %%
data = review_datasets(tok, meta["block_size"], end_id=meta["end_id"], warn=False)
test = data["test"]  # all 1,736 test reviews
timing_batch = test.get_batch(range(128))
timing_inputs = {"idx": timing_batch["idx"], "attention_mask": timing_batch["attention_mask"]}


def quality(model, precision="fp32"):
    with mixed_precision(precision, torch.device("cpu"))[0]:
        report = evaluate(model.eval(), iter_batches(test, 256), labels=test.label_names)
    return report.accuracy, report.macro_f1


def forward_seconds(model, precision="fp32", repeats=3):
    autocast = mixed_precision(precision, torch.device("cpu"))[0]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: comparable however busy the machine is
    try:
        with torch.no_grad(), autocast:
            return best_time(lambda: model(**timing_inputs), repeats)
    finally:
        torch.set_num_threads(threads)


def weight_bytes(model):
    tensors = {id(t): t for t in [*model.parameters(), *model.buffers()]}.values()
    return sum(t.nbytes for t in tensors)


rows = {}


def record(name, model, trained=False, precision="fp32", scores=None, params=None):
    """Score (unless ``scores`` are given), size and time one variant; keep it as a row of the final table.

    Returns its accuracy."""
    acc, f1 = scores or quality(model, precision)
    rows[name] = {"accuracy": acc, "macro_F1": f1, "MB": weight_bytes(model) / 1e6,
                  "params": params or count_params(model), "ms": 1e3 * forward_seconds(model, precision),
                  "trained here": trained}
    return acc


teacher_acc = record("fp32 teacher", clf)
print(f"teacher: accuracy {teacher_acc:.4f} on {len(test)} test reviews")

# %% [markdown]
# ## 2. 量化 Quantization
#
# Symmetric per-output-channel int8: each row w of a weight gets one scale s = max|w| / 127 and is stored as
# q = round(w / s) in [-127, 127]. Rounding moves each weight by at most s / 2, so the error of a row is
# bounded by half of one quantization step. int4 stores 15 levels per group of 32 weights (s = max|w| / 7).
# By hand on one Linear of the classifier, then against `llmguide.quantize`:

# %%
W = clf.gpt.transformer.h[0].mlp.c_fc.weight.detach()  # (512, 128)
s = W.abs().amax(dim=1) / 127  # (512,) one scale per output channel
q = torch.round(W / s[:, None]).clamp(-127, 127).to(torch.int8)
q_lib, s_lib = quantize_int8(W)
print("hand == library:", torch.equal(q, q_lib) and torch.allclose(s, s_lib))
err = (q.float() * s[:, None] - W).abs()
print(f"int8: max |error| / step = {(err / s[:, None]).max():.3f} (bound 0.5)")
packed, s4 = quantize_int4(W, group_size=32)
err4 = (dequantize_int4(packed, s4) - W).abs().max()
print(f"int4: max |error| = {err4:.4f} vs int8 {err.max():.5f}; bytes {W.numel() * 4:,} fp32 -> "
      f"{q.numel() + 4 * s.numel():,} int8 -> {packed.numel() + 4 * s4.numel():,} int4")
assert torch.allclose(dequantize_int8(q_lib, s_lib), W, atol=float(s.max()) / 2 + 1e-7)

# %%
# NBVAL_TOLERANCE rel=0 abs=0.005
qmodel = copy.deepcopy(clf)
quantize_model(qmodel, "int8", skip=["gpt.lm_head"])  # the LM head never runs in a classifier
int8_acc = record("int8 weights", qmodel, params=count_params(clf))
print(f"int8: accuracy {int8_acc:.4f} ({100 * (int8_acc - teacher_acc):+.2f} points)")

# %% [markdown]
# Stored as int8 the block weights take a quarter of the bytes (the token embeddings, a lookup table, stay
# fp32 here, so the whole model shrinks by half). Whether they also run faster depends on kernels
# that multiply int8 directly (VNNI, AMX); `llmguide.quantize` also wraps torchao and ONNX Runtime, and
# `benchmarks/efficiency.py` compares them on GPT-2-sized models where the weights, not Python, dominate.
#
# ## 3. 剪枝 Pruning
#
# **Unstructured magnitude pruning** zeroes the weights with the smallest |w|. By hand for one matrix, then
# `torch.nn.utils.prune` through `llmguide.prune.magnitude_prune` (here per layer, "layer" scope):

# %%
W = clf.gpt.transformer.h[0].attn.c_attn.weight.detach()
threshold = W.abs().flatten().kthvalue(W.numel() // 2).values  # the median |w|
by_hand = torch.where(W.abs() <= threshold, 0.0, W)
lib = magnitude_prune(clf, 0.5, scope="layer").gpt.transformer.h[0].attn.c_attn.weight
print("hand == torch.nn.utils.prune:", torch.equal(by_hand, lib.detach()))

# %% [markdown]
# The sparsity → accuracy curve, ranking all block weights together ("global": layers that matter less lose
# more). Then the catch: a 50 %-zero matrix is still a dense matrix. It has the same shape and bytes, and a
# dense matmul does every multiply-add whether the weight is 0.0 or 0.3, so it takes the same time. Zeros only
# pay with sparse storage and sparse kernels (or 2:4 structured sparsity on recent GPUs).

# %%
# NBVAL_TOLERANCE rel=0 abs=0.005
curve = sparsity_curve(clf, quality, [0.5, 0.7, 0.9])  # score = (accuracy, macro-F1)
curve["accuracy"] = [acc for acc, _ in curve.score]
print(f"sparsity 0.0: accuracy {teacher_acc:.4f} (the teacher)")
for _, r in curve.iterrows():
    print(f"sparsity {r.sparsity:.1f}: accuracy {r.accuracy:.4f}")
half = magnitude_prune(clf, 0.5)
print(f"50% zeros: sparsity {sparsity(half):.3f}, {weight_bytes(half):,} bytes = {weight_bytes(clf):,} before")
assert weight_bytes(half) == weight_bytes(clf)

# %%
# NBVAL_IGNORE_OUTPUT
record("50% zeros (unstructured)", half, scores=curve.score[0])
dense_ms, sparse_ms = rows["fp32 teacher"]["ms"], rows["50% zeros (unstructured)"]["ms"]
print(f"forward of 128 reviews: dense {dense_ms:.0f} ms, 50% zeros {sparse_ms:.0f} ms "
      f"(ratio {sparse_ms / dense_ms:.2f}: no faster)")

# %% [markdown]
# **Structured pruning** removes whole attention heads and MLP neurons, so the matrices themselves shrink.
# Which ones? Michel et al. 2019 ("Are Sixteen Heads Really Better than One?") put a gate g = 1 on every
# head's output and rank heads by |∂L/∂g| summed over data, the first-order change of the loss if the head
# were removed; the same works for each MLP neuron. `unit_importance` computes these with hooks on 256
# training reviews; the table shows the heads' scores (layer × head).

# %%
# NBVAL_TOLERANCE rel=0.05 abs=0.002
train_set = data["train"]
importance_batches = [train_set.get_batch(evenly_spaced(len(train_set), 256)[i::4]) for i in range(4)]
importance = unit_importance(clf, importance_batches)
print(pd.DataFrame(importance[0].numpy(), index=[f"layer {i}" for i in range(config.n_layer)],
                   columns=[f"head {h}" for h in range(config.n_head)]).round(4))

# %% [markdown]
# Removing a unit must be the same as silencing it: the smaller model equals the original with the removed
# heads' and neurons' output weights set to zero (exactly, up to float rounding):

# %%
small = structured_prune(clf, 0.5, 0.5, importance)  # half of each layer's heads and MLP neurons
zeroed = zero_units(clf, 0.5, 0.5, importance)
with torch.no_grad():
    torch.testing.assert_close(small(**timing_inputs)[0], zeroed(**timing_inputs)[0], rtol=1e-5, atol=1e-5)
block = small.gpt.transformer.h[0]
print(f"layer 0: heads {config.n_head} -> {block.attn.n_head}, c_attn {tuple(block.attn.c_attn.weight.shape)}, "
      f"MLP {4 * config.n_embd} -> {block.mlp.c_fc.out_features}; parameters {count_params(clf):,} -> "
      f"{count_params(small):,}")

# %% [markdown]
# Half the heads and half the neurons cost little accuracy here without any retraining. Cut harder (three
# quarters of both) and the loss shows; a short fine-tune (40 steps of 32 reviews, learning rate 1e-4, with
# the same training loop as notebook 05) recovers much of it.

# %%
# NBVAL_TOLERANCE rel=0 abs=0.03
half_acc = record("pruned 50% heads+neurons", small)
harsh = structured_prune(clf, 0.75, 0.75, importance)
harsh_acc = record("pruned 75%, no fine-tune", harsh)
ft_config = TrainConfig(learning_rate=1e-4, min_lr=1e-5, warmup_steps=5, batch_size=32, max_steps=40,
                        eval_interval=0, weight_decay=0.01, progress=False, device="cpu")
train(harsh, train_set, None, ft_config)
harsh_ft_acc = record("pruned 75% + fine-tune", harsh, trained=True)
print(f"50%: accuracy {half_acc:.4f} ({100 * (half_acc - teacher_acc):+.2f} points)")
print(f"75%: {harsh_acc:.4f} without fine-tuning, {harsh_ft_acc:.4f} after 40 steps")

# %%
# NBVAL_IGNORE_OUTPUT
speedup_half = rows["fp32 teacher"]["ms"] / rows["pruned 50% heads+neurons"]["ms"]
print(f"speed-up of the 50% pruned model: {speedup_half:.2f}x; "
      f"75%: {rows['fp32 teacher']['ms'] / rows['pruned 75% + fine-tune']['ms']:.2f}x")

# %% [markdown]
# ## 4. 蒸馏 Distillation
#
# Hinton et al. 2015: a small student learns from the teacher's probabilities, softened by a temperature T,
# not only from the hard labels. "0.6 positive" tells the student a review is mixed; the label 1 does not.
#
#     loss = α · T² · KL(softmax(z_teacher / T) ‖ softmax(z_student / T)) + (1 − α) · CE(z_student, y)
#
# (T² keeps the soft gradients the same size at any T.) By hand on one batch, against `distillation_loss` and
# torch's `kl_div`:

# %%
z_t, z_s, y = torch.randn(8, 2), torch.randn(8, 2), torch.randint(0, 2, (8,))
T, alpha = 2.0, 0.5
p = torch.softmax(z_t / T, -1)
kl = (p * (p.log() - torch.log_softmax(z_s / T, -1))).sum(-1).mean()
by_hand = alpha * T**2 * kl + (1 - alpha) * F.cross_entropy(z_s, y)
torch.testing.assert_close(distillation_loss(z_s, z_t, y, T, alpha), by_hand)
torch.testing.assert_close(F.kl_div(torch.log_softmax(z_s / T, -1), p, reduction="batchmean"), kl)
print("hand == distillation_loss == kl_div mix")

# %% [markdown]
# The student: 2 layers, width 64, 4 heads, in the teacher's vocabulary, a quarter of its parameters. Its
# character embeddings start as the teacher's projected onto their top 64 principal directions; the blocks
# start random. Two copies train with the same data (4,000 training reviews), steps and seed: one on the
# hard labels, one on the teacher's soft labels (T = 2, α = 0.5), both through `llmguide.train.train`.

# %%
# NBVAL_TOLERANCE rel=0 abs=0.03
kd_train = train_set.subset(evenly_spaced(len(train_set), 4000).tolist())
soft = teacher_logits(clf, kd_train)
kd_config = TrainConfig(learning_rate=3e-3, min_lr=3e-4, warmup_steps=10, batch_size=32, max_steps=150,
                        eval_interval=0, weight_decay=0.01, progress=False, device="cpu")
hard_student = student_from_teacher(clf, n_layer=2, n_embd=64, n_head=4, seed=0)
train(hard_student, kd_train, None, kd_config)
soft_student = student_from_teacher(clf, n_layer=2, n_embd=64, n_head=4, seed=0)
distill(soft_student, clf, kd_train, None, kd_config, temperature=2.0, alpha=0.5, soft=soft)
hard_acc = record("student, hard labels", hard_student, trained=True)
soft_acc = record("student, distilled", soft_student, trained=True)
print(f"student parameters: {count_params(soft_student):,} = {count_params(soft_student) / count_params(clf):.1%}"
      " of the teacher's")
print(f"hard labels {hard_acc:.4f}, distilled {soft_acc:.4f} = {soft_acc / teacher_acc:.1%} of the teacher")

# %% [markdown]
# ## 5. 混合精度 Mixed precision
#
# bf16 keeps fp32's 8 exponent bits and 7 of its 23 mantissa bits: the same range, about 3 significant
# digits. Under `torch.autocast` matmuls run in bf16 while reductions (softmax, LayerNorm, the loss) stay in
# fp32. Against fp32 on the teacher, for inference and for one training step's loss:

# %%
# NBVAL_TOLERANCE rel=0 abs=0.01
autocast, _, _ = mixed_precision("bf16", torch.device("cpu"))
with torch.no_grad():
    fp32_logits = clf(**timing_inputs)[0]
    with autocast:
        bf16_logits = clf(**timing_inputs)[0].float()
    _, fp32_loss = clf(**timing_batch)
    with autocast:
        _, bf16_loss = clf(**timing_batch)
agree = (fp32_logits.argmax(-1) == bf16_logits.argmax(-1)).float().mean()
print(f"logits: max |bf16 - fp32| = {(bf16_logits - fp32_logits).abs().max():.3f} (tolerance 0.1); "
      f"same prediction for {agree:.1%} of 128 reviews")
print(f"loss: fp32 {fp32_loss:.4f}, bf16 {bf16_loss:.4f} (tolerance 1% relative)")
assert (bf16_logits - fp32_logits).abs().max() < 0.1 and abs(bf16_loss / fp32_loss - 1) < 0.01

# %%
# NBVAL_IGNORE_OUTPUT
record("bf16 autocast", clf, precision="bf16")


def forward_in(precision):
    with torch.no_grad(), mixed_precision(precision, torch.device("cpu"))[0]:
        clf(**timing_inputs)


memory_mb = {p: peak_bytes(lambda p=p: forward_in(p), torch.device("cpu")) / 1e6 for p in ("fp32", "bf16")}
print(f"forward of 128 reviews (1 thread): fp32 {rows['fp32 teacher']['ms']:.0f} ms, "
      f"bf16 {rows['bf16 autocast']['ms']:.0f} ms")
print(f"peak activation memory: fp32 {memory_mb['fp32']:.1f} MB, bf16 {memory_mb['bf16']:.1f} MB")
print("this CPU has avx512_bf16:", "avx512_bf16" in flags, "| amx_bf16:", "amx_bf16" in flags)

# %% [markdown]
# bf16 halves the bytes of every activation, which is why it pays on GPUs (tensor cores) and on CPUs with
# native bf16 instructions: AVX-512-BF16 (Intel Cooper Lake and later, AMD Zen 4 and later) and AMX (Intel
# Sapphire Rapids and later), where oneDNN runs bf16 matmuls at up to 2x (AVX-512-BF16) or much more (AMX) the
# fp32 rate. CPUs without them (most laptops, AVX2-only servers, Apple silicon under PyTorch) emulate bf16
# by converting to fp32 and back, and *lose* time. For a model this small the conversions at every autocast
# boundary weigh as much as the matmuls, so expect little or no gain here either way.
#
# ## 6. 并行 Parallelism and memory
#
# **Data parallelism.** `torchrun` starts 2 CPU processes; DistributedDataParallel gives each half of every
# global batch of 16 and averages their gradients, so the update equals one process on all 16 (up to the
# order of float additions). The tiny demo GPT (`llmguide.parallel`), 10 steps:

# %%
# NBVAL_TOLERANCE rel=0 abs=0.001
tmp = Path(tempfile.mkdtemp())
ddp, ddp_model = run_data_parallel(tmp / "ddp", nproc=2, steps=10, global_batch=16)
single = train_demo(tmp / "single", steps=10, global_batch=16)
ddp_gap = max(abs(a - b) for a, b in zip(ddp["train_loss"], single["train_loss"], strict=True))
print(f"final loss: 2 processes {ddp['train_loss'][-1]:.4f}, 1 process {single['train_loss'][-1]:.4f}; "
      f"largest gap over 10 steps below 1e-5: {ddp_gap < 1e-5}")

# %%
# NBVAL_IGNORE_OUTPUT
print(f"training time: 2 processes {ddp['seconds']:.1f} s, 1 process {single['seconds']:.1f} s "
      f"(on CPU two processes share the same cores and memory bandwidth: DDP pays with one GPU per process)")

# %% [markdown]
# **Gradient accumulation** is the one-device version: 4 micro-batches of 4, gradients summed, then one update,
# the same as one batch of 16:

# %%
# NBVAL_TOLERANCE rel=0 abs=0.001
accum = {}
for name, (batch, steps) in {"1 x 16": (16, 1), "4 x 4": (4, 4)}.items():
    torch.manual_seed(0)
    m = GPT(GPTConfig(**DEMO_MODEL))
    cfg = TrainConfig(max_steps=5, batch_size=batch, grad_accum_steps=steps, warmup_steps=2, eval_interval=0,
                      log_interval=1, progress=False, learning_rate=3e-3, device="cpu")
    accum[name] = train(m, demo_data(), None, cfg).train_loss.to_numpy()
accum_gap = abs(accum["1 x 16"] - accum["4 x 4"]).max()
print(f"losses 1 x 16: {accum['1 x 16'].round(4).tolist()}")
print(f"max gap to 4 x 4 below 1e-5: {accum_gap < 1e-5}")

# %% [markdown]
# **Activation checkpointing** (Chen et al. 2016) keeps only each block's input in the forward pass and
# recomputes the block during the backward pass: less memory for about one more forward pass of time
# (`model.activation_checkpointing = True`). On the CPU-profile GPT, one training step of 8 × 128 tokens:

# %%
# NBVAL_IGNORE_OUTPUT
torch.manual_seed(0)
lm = GPT(GPTConfig.from_preset("cpu", vocab_size=256)).train()
tokens = torch.randint(0, 256, (8, 129))


def lm_step():
    lm.zero_grad(set_to_none=True)
    lm(tokens[:, :-1], tokens[:, 1:])[1].backward()


memory = {}
for on in (False, True):
    lm.activation_checkpointing = on
    lm_step()
    memory[on] = (peak_bytes(lm_step, torch.device("cpu")), best_time(lm_step, 3))
print(f"peak memory {memory[False][0] / 1e6:.0f} MB -> {memory[True][0] / 1e6:.0f} MB with checkpointing; "
      f"time {1e3 * memory[False][1]:.0f} ms -> {1e3 * memory[True][1]:.0f} ms")
ckpt_ratio = memory[True][0] / memory[False][0]

# %% [markdown]
# **`torch.compile`** traces the training step into fused kernels (TorchInductor writes and compiles C++ on a
# CPU). The first call pays the compile time; the question is how many steps it takes to win it back. On the
# demo GPT:

# %%
# NBVAL_IGNORE_OUTPUT
torch.manual_seed(0)
demo = GPT(GPTConfig(**DEMO_MODEL))
opt = torch.optim.AdamW(demo.parameters(), lr=1e-3)
batch = demo_data(16)


def demo_step(m):
    opt.zero_grad(set_to_none=True)
    m(batch["idx"], batch["targets"])[1].backward()
    opt.step()


compiled = compile_speedup(demo, demo_step)
if "error" in compiled:
    print("torch.compile failed on this machine:", compiled["error"])
else:
    saved = compiled["eager_s"] - compiled["compiled_s"]
    payback = f"pays back after {compiled['compile_s'] / saved:,.0f} steps" if saved > 0 else "never pays back"
    print(f"compile {compiled['compile_s']:.1f} s; step {1e3 * compiled['eager_s']:.1f} ms eager, "
          f"{1e3 * compiled['compiled_s']:.1f} ms compiled: {compiled['speedup']:.2f}x, {payback}")

# %% [markdown]
# ## 7. Every technique in one table
#
# Quality on the test reviews, weights in MB, and milliseconds for one forward pass over 128 reviews on one
# thread (timings vary with the machine and its load; the accuracy and size columns do not).

# %%
# NBVAL_IGNORE_OUTPUT
table = pd.DataFrame.from_dict(rows, orient="index").rename_axis("technique").reset_index()
table["speed-up"] = table.ms.iloc[0] / table.ms
print(table.to_string(index=False, float_format="{:.3f}".format))

# %%
# NBVAL_IGNORE_OUTPUT
fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
for ax, column, label in ((axes[0], "speed-up", "speed-up over the fp32 teacher (x)"),
                          (axes[1], "MB", "weights (MB)")):
    ax.scatter(table[column], table.accuracy)
    for _, r in table.iterrows():
        ax.annotate(r.technique, (r[column], r.accuracy), fontsize=8, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(label)
axes[0].set_ylabel("test accuracy")
axes[1].invert_xaxis()  # better is up and to the right on both panels
fig.suptitle("Quality against speed and size: the Pareto front is the upper-right edge")
plt.show()

# %% [markdown]
# ## Checks

# %%
# Checks
assert abs(int8_acc - teacher_acc) <= 0.005, "int8 weights must stay within 0.5 points of the teacher"
assert harsh_ft_acc > harsh_acc, "pruning without fine-tuning must hurt more than with it"
assert abs(half_acc - teacher_acc) <= 0.01, "half the heads and neurons cost at most 1 point"
assert count_params(soft_student) <= count_params(clf) / 4
assert soft_acc > hard_acc, "distillation must beat the hard labels"
assert ddp_gap < 1e-5 and accum_gap < 1e-5, "DDP and gradient accumulation equal one process / one batch"
assert ckpt_ratio < 0.8, "activation checkpointing lowers peak memory"
assert weight_bytes(half) == weight_bytes(clf), "zeros do not shrink a dense tensor"
print("all checks passed")
