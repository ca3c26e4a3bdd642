"""Trains model.py's LlamaLM on the token-id corpus written by train_tokenizer.mjs.

  /usr/bin/python3 train.py --preset full --minutes 45      # wall-time budget (schedule and stop
                                                            # follow steps or time, whichever is ahead)
  /usr/bin/python3 train.py --preset full --steps N         # fixed step count
  /usr/bin/python3 train.py ... --resume                    # continue from CKPT/last.pt

Windows start at verse starts: [<s>] + tokens (or the chapter's own <s>), so the
model learns what inference sees (prompt after <s>). Every 50th chapter is held
out for validation; bits/byte = summed validation loss / ln 2 / validation text bytes.
Checkpoints (model + optimizer + RNG state) go to CKPT/last.pt every --ckpt-minutes;
the final weights to CKPT/final.pt."""
import argparse, json, math, os, time

import numpy as np
import torch
import torch.nn.functional as F

import model as M

ap = argparse.ArgumentParser()
ap.add_argument("--data", default="/tmp/tiny-lm-data")
ap.add_argument("--ckpt", default="/tmp/tiny-lm-ckpt")
ap.add_argument("--preset", default="full", choices=sorted(M.PRESETS))
ap.add_argument("--minutes", type=float, default=None, help="wall-clock budget; sets --steps from measured step time")
ap.add_argument("--steps", type=int, default=None)
ap.add_argument("--batch", type=int, default=8)
ap.add_argument("--seq", type=int, default=512)
ap.add_argument("--lr", type=float, default=3e-3)
ap.add_argument("--min-lr-frac", type=float, default=0.05)
ap.add_argument("--warmup", type=int, default=150)
ap.add_argument("--wd", type=float, default=0.1)
ap.add_argument("--ckpt-minutes", type=float, default=4.0)
ap.add_argument("--eval-tokens", type=int, default=40000, help="validation tokens per periodic eval (final eval uses all)")
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--seed", type=int, default=1234)
ap.add_argument("--resume", action="store_true")
args = ap.parse_args()

torch.set_num_threads(args.threads)
torch.manual_seed(args.seed)
rng = np.random.default_rng(args.seed)
os.makedirs(args.ckpt, exist_ok=True)

meta = json.load(open(os.path.join(args.data, "tokens.json")))
ids = np.fromfile(os.path.join(args.data, "tokens.bin"), dtype=np.uint16).astype(np.int64)
BOS = meta["bos"]
train_parts, val_parts, starts, pos, val_bytes = [], [], [], 0, 0
for i, ch in enumerate(meta["chapters"]):
    seg = ids[ch["start"]:ch["end"]]
    if i % 50 == 25:
        val_parts.append(seg); val_bytes += ch["bytes"]
        continue
    train_parts.append(seg)
    starts.extend(pos + (np.array(ch["verse_starts"]) - ch["start"]))
    pos += len(seg)
train = np.concatenate(train_parts)
val = np.concatenate(val_parts)
starts = np.array([s for s in starts if s + args.seq <= len(train)])
print(f"train {len(train)} tokens ({len(starts)} window starts), val {len(val)} tokens / {val_bytes} bytes")

cfg = M.PRESETS[args.preset]
cfg.vocab_size = meta["vocab_size"]
cfg.max_position_embeddings = max(cfg.max_position_embeddings, args.seq)
net = M.LlamaLM(cfg)
print(f"preset {args.preset}: {cfg}\nparameters: {net.num_params():,}")

decay = [p for n, p in net.named_parameters() if p.dim() == 2]
no_decay = [p for n, p in net.named_parameters() if p.dim() < 2]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.wd},
                         {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95), eps=1e-8)


def batch():
    x = np.empty((args.batch, args.seq), dtype=np.int64)
    y = np.empty((args.batch, args.seq), dtype=np.int64)
    for r, s in enumerate(rng.choice(starts, args.batch)):
        if s > 0 and train[s - 1] == BOS:       # chapter start: use its own <s>
            w = train[s - 1:s + args.seq]
        else:
            w = np.concatenate([[BOS], train[s:s + args.seq]])
        x[r], y[r] = w[:-1], w[1:]
    return torch.from_numpy(x), torch.from_numpy(y)


@torch.no_grad()
def evaluate(max_tokens=None):
    """Summed NLL over the held-out stream in non-overlapping windows."""
    net.eval()
    data = val if max_tokens is None else val[:max_tokens + 1]
    nll, n = 0.0, 0
    L = args.seq
    for i in range(0, len(data) - 1, L):
        x = torch.from_numpy(data[i:i + L][None])
        y = torch.from_numpy(data[i + 1:i + 1 + L][None])
        x = x[:, :y.shape[1]]
        logits, _ = net(x)
        nll += F.cross_entropy(logits[0], y[0], reduction="sum").item()
        n += y.shape[1]
    net.train()
    return nll / n, nll, n


def progress(step, total, elapsed):
    """Fraction of the run done: by steps, or with --minutes by wall time if that is
    further along (the machine is shared: steps slow down when it is busy)."""
    f = step / total if total else 0.0
    if args.minutes:
        f = max(f, elapsed / (args.minutes * 60 * 0.97))
    return f


def lr_at(step, total, elapsed):
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    p0 = progress(args.warmup, total, 0.0) if total else 0.0
    f = min(1.0, max(0.0, (progress(step, total, elapsed) - p0) / max(1e-9, 1 - p0)))
    return args.lr * (args.min_lr_frac + (1 - args.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * f)))


def save(path, step, total, elapsed):
    tmp = path + ".tmp"
    torch.save({"model": net.state_dict(), "opt": opt.state_dict(), "step": step, "total": total,
                "elapsed": elapsed, "config": cfg.to_dict(), "args": vars(args),
                "torch_rng": torch.get_rng_state(), "np_rng": rng.bit_generator.state}, tmp)
    os.replace(tmp, path)


step, total, elapsed = 0, args.steps, 0.0
last = os.path.join(args.ckpt, "last.pt")
if args.resume and os.path.exists(last):
    ck = torch.load(last)
    net.load_state_dict(ck["model"]); opt.load_state_dict(ck["opt"])
    step, total, elapsed = ck["step"], ck["total"], ck["elapsed"]
    torch.set_rng_state(ck["torch_rng"]); rng.bit_generator.state = ck["np_rng"]
    print(f"resumed at step {step}/{total}, {elapsed / 60:.1f} min trained")

t_start = time.time() - elapsed
t_ckpt = time.time()
t_log, tok_log = time.time(), 0
net.train()
while True:
    if total is None and step == 10:
        t10 = time.time()
    if total is None and step == 40:
        # the budget left, minus ~4% for evals/checkpoints, at the step time of steps 10-40
        per = (time.time() - t10) / 30
        total = 40 + int((args.minutes * 60 - (time.time() - t_start)) * 0.96 / per)
        print(f"measured {per:.3f} s/step -> total steps {total}")
    if total is not None and progress(step, total, time.time() - t_start) >= 1.0:
        break
    lr = lr_at(step, total if total is not None else 10 ** 9, time.time() - t_start)
    for g in opt.param_groups:
        g["lr"] = lr
    x, y = batch()
    logits, _ = net(x)
    loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), y.view(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    opt.step()
    step += 1
    tok_log += x.numel()
    if step % 25 == 0:
        now = time.time()
        print(f"step {step}/{total} loss {loss.item():.3f} lr {lr:.2e} {tok_log / (now - t_log):.0f} tok/s "
              f"{(now - t_start) / 60:.1f} min", flush=True)
        t_log, tok_log = now, 0
    if time.time() - t_ckpt > args.ckpt_minutes * 60:
        vl, _, _ = evaluate(args.eval_tokens)
        print(f"  eval (first {args.eval_tokens} val tokens): {vl:.3f} nats/token", flush=True)
        save(last, step, total, time.time() - t_start)
        t_ckpt = time.time()

elapsed = time.time() - t_start
save(last, step, total, elapsed)
vl, nll, n = evaluate()
bpb = nll / math.log(2) / val_bytes
summary = {"steps": step, "train_minutes": round(elapsed / 60, 2), "val_nats_per_token": round(vl, 4),
           "val_bits_per_token": round(vl / math.log(2), 4), "val_bits_per_byte": round(bpb, 4),
           "val_tokens": n, "val_bytes": val_bytes, "train_loss_last": round(loss.item(), 4),
           "parameters": net.num_params(), "tokens_seen": step * args.batch * args.seq}
print(json.dumps(summary))
torch.save({"model": net.state_dict(), "config": cfg.to_dict(), "summary": summary}, os.path.join(args.ckpt, "final.pt"))
json.dump(summary, open(os.path.join(args.ckpt, "summary.json"), "w"), indent=1)
