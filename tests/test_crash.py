"""Crash test: kill a real ``llmguide pretrain`` at random moments, 20 times; the model folder is never a mix.

A driver process imports llmguide once, then for each trial forks a child that runs the command line
(``llmguide.cli.main(["pretrain", ..., "--overwrite"])``: a tiny model that writes a checkpoint every step,
then the model folder) and kills it with SIGKILL after a random delay spread over the run's length. After each
kill the folder's model files must be exactly the previous complete state, or a complete new one: every
file new, loadable, and of this trial's run. Each trial uses its own corpus (so its own tokenizer) and seed,
so a folder mixing two runs cannot pass. The leftovers of a kill (partial saves, a stale lock) must not stop
the next run. About a minute on two busy CPU cores.
"""

from __future__ import annotations

import json
import subprocess
import sys

DRIVER = r'''
import hashlib, json, os, random, signal, sys, time, warnings
from pathlib import Path
warnings.simplefilter("ignore")
import torch
torch.set_num_threads(1)
from llmguide.cli import main
from llmguide.folder import CONFIG, HISTORY, TOKENIZER, WEIGHTS, load_folder

root = Path(sys.argv[1])
out = root / "lm"
FILES = (WEIGHTS, CONFIG, TOKENIZER, HISTORY)

def snapshot():
    if not out.is_dir():
        return None
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir()) if p.is_file()}

def args(trial):
    corpus = root / f"corpus{trial}.txt"
    extra = "".join(chr(0x4E00 + 37 * trial + k) for k in range(3))  # this trial's own characters
    corpus.write_text("".join(f"{extra}第{i}行 the fox {i}\n" for i in range(30)), encoding="utf-8")
    return ["pretrain", "--corpus", str(corpus), "--out", str(out), "--overwrite", "--no-progress",
            "--profile", "cpu", "--max_steps=4", "--n_layer=1", "--n_head=2", "--n_embd=16", "--block_size=16",
            "--batch_size=4", "--warmup_steps=1", "--eval_interval=2", "--eval_steps=1", "--checkpoint_interval=1",
            f"--seed={trial}"]

def run(trial, delay):
    pid = os.fork()
    if pid == 0:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1); os.dup2(devnull, 2)
        code = 1
        try:
            code = main(args(trial))
        finally:
            os._exit(code)
    start = time.perf_counter()
    finished = None
    while time.perf_counter() - start < delay:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            finished = os.waitstatus_to_exitcode(status)
            break
        time.sleep(0.002)
    if finished is None:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    return finished

def check(trial, before):
    after = snapshot()
    if after == before:
        return "previous"
    missing = [f for f in FILES if f not in after]
    if missing:
        return f"BROKEN: missing {missing} (files {sorted(after)})"
    same = [f for f in FILES if before and before.get(f) == after[f]]
    if same:
        return f"MIXED: {same} kept from the previous state beside new files"
    try:
        _, _, meta = load_folder(out)
    except Exception as err:
        return f"BROKEN: {type(err).__name__}: {err}"
    if meta["train"]["seed"] != trial:
        return f"BROKEN: seed {meta['train']['seed']} in a folder of trial {trial}"
    return "new"

sys.stdout, real_stdout = open(os.devnull, "w"), sys.stdout
assert main(args(0)) == 0, "the first, uninterrupted run failed"  # here: the children inherit what it warmed up
sys.stdout = real_stdout
t0 = time.perf_counter()
assert run(22, 120) == 0, "the second, uninterrupted run failed"
length = time.perf_counter() - t0  # of a warm run: what each trial's kill is spread over
rng = random.Random(16)
for trial in range(1, 21):
    before = snapshot()
    delay = rng.uniform(0.2, 1.1) * length
    finished = run(trial, delay)
    print(json.dumps({"trial": trial, "delay": round(delay, 3), "finished": finished,
                      "state": check(trial, before)}), flush=True)
assert run(21, 120) == 0, "a run after the kills failed"
print(json.dumps({"trial": 21, "finished": 0, "state": check(21, before), "length": round(length, 2)}), flush=True)
'''


def test_killing_pretrain_mid_save_leaves_the_previous_or_the_new_complete_folder(tmp_path):
    done = subprocess.run([sys.executable, "-c", DRIVER, str(tmp_path)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    trials = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(trials) == 21
    bad = [t for t in trials if t["state"] not in ("previous", "new")]
    assert not bad, bad
    killed = [t for t in trials[:-1] if t["finished"] is None]
    assert len(killed) >= 10, trials  # most trials really were killed mid-run
    assert {t["state"] for t in trials} == {"previous", "new"}, trials
    assert all(t["finished"] in (None, 0) for t in trials)  # a run after a kill is never stopped by its leftovers
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # nothing left beside it
