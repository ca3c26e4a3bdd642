"""Exports CKPT/final.pt to the Hugging Face / Optimum "decoder with past" ONNX
layout and writes config.json + generation_config.json beside the tokenizer.

  /usr/bin/python3 export.py [--ckpt /tmp/tiny-lm-ckpt] [--out out/tiny-lm] [--fp16-weights]

Graph (opset 14), one graph for every step, past length 0 on the first:
  inputs  input_ids [batch, seq] int64, attention_mask [batch, past+seq] int64,
          position_ids [batch, seq] int64,
          past_key_values.{i}.key / .value [batch, kv_heads, past, head_dim] float32
  outputs logits [batch, seq, vocab] float32,
          present.{i}.key / .value [batch, kv_heads, past+seq, head_dim] float32
--fp16-weights stores each large weight matrix as float16 followed by a Cast to
float32 (all arithmetic, inputs and outputs stay float32); the weights are rounded
to float16 before export, so the reference logits written to out/reference.json are
those of exactly the computation the graph does. They are compared with the
unrounded float32 model's logits here and with onnxruntime's in verify.mjs."""
import argparse, json, os

import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto
import torch

import model as M

HERE = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument("--ckpt", default="/tmp/tiny-lm-ckpt")
ap.add_argument("--out", default=os.path.join(HERE, "out", "tiny-lm"))
ap.add_argument("--fp16-weights", action="store_true")
ap.add_argument("--opset", type=int, default=14)
args = ap.parse_args()
torch.set_num_threads(2)

ck = torch.load(os.path.join(args.ckpt, "final.pt"))
cfg = M.Config(**ck["config"])
net = M.LlamaLM(cfg)
net.load_state_dict(ck["model"])
net.eval()
L = cfg.num_hidden_layers

# reference inputs: a left-padded batch with past, and a plain prompt
g = torch.Generator().manual_seed(7)
ref_ids = torch.randint(3, cfg.vocab_size, (2, 12), generator=g)
ref_mask = torch.ones(2, 12, dtype=torch.long); ref_mask[1, :4] = 0
ref_pos = (ref_mask.cumsum(1) - 1).clamp(min=0)
with torch.no_grad():
    ref32, _ = net(ref_ids, ref_mask, ref_pos)
    if args.fp16_weights:
        for p in net.parameters():
            p.copy_(p.half().float())
    ref16, _ = net(ref_ids, ref_mask, ref_pos)
m = ref_mask.bool().unsqueeze(-1).expand_as(ref32)
print(f"max |logit| difference, fp16-rounded vs fp32 weights: {(ref16 - ref32)[m].abs().max().item():.2e}"
      f" (logit range {ref32[m].min().item():.1f}..{ref32[m].max().item():.1f})")


class Wrapper(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, input_ids, attention_mask, position_ids, *past_flat):
        past = [(past_flat[2 * i], past_flat[2 * i + 1]) for i in range(L)]
        logits, presents = self.net(input_ids, attention_mask, position_ids, past)
        out = [logits]
        for k, v in presents:
            out += [k, v]
        return tuple(out)


in_names = ["input_ids", "attention_mask", "position_ids"]
out_names = ["logits"]
dyn = {"input_ids": {0: "batch_size", 1: "sequence_length"},
       "attention_mask": {0: "batch_size", 1: "total_sequence_length"},
       "position_ids": {0: "batch_size", 1: "sequence_length"},
       "logits": {0: "batch_size", 1: "sequence_length"}}
for i in range(L):
    for kv in ("key", "value"):
        in_names.append(f"past_key_values.{i}.{kv}")
        out_names.append(f"present.{i}.{kv}")
        dyn[f"past_key_values.{i}.{kv}"] = {0: "batch_size", 2: "past_sequence_length"}
        dyn[f"present.{i}.{kv}"] = {0: "batch_size", 2: "total_sequence_length"}

# trace with batch 2, seq 3, past 4 (no size equal to another, none 0 or 1)
B, S, P = 2, 3, 4
ex = [torch.randint(3, cfg.vocab_size, (B, S)), torch.ones(B, P + S, dtype=torch.long),
      torch.arange(P, P + S).unsqueeze(0).expand(B, S).contiguous()]
ex += [torch.zeros(B, cfg.num_key_value_heads, P, cfg.head_dim) for _ in range(2 * L)]
os.makedirs(os.path.join(args.out, "onnx"), exist_ok=True)
path = os.path.join(args.out, "onnx", "model.onnx")
tmp = path + ".tmp"
torch.onnx.export(Wrapper(net), tuple(ex), tmp, input_names=in_names, output_names=out_names,
                  dynamic_axes=dyn, opset_version=args.opset, do_constant_folding=True)
mp = onnx.load(tmp)
os.remove(tmp)

# Tied embeddings: constant folding stores the lm_head's MatMul operand, embed^T, as a
# second initializer. Replace any initializer that is the transpose of another with a
# Transpose node (onnxruntime folds it again in memory at load), so the file holds it once.
gr = mp.graph
arrays = {i.name: numpy_helper.to_array(i) for i in gr.initializer}
dups = {}
for n in sorted(arrays, key=lambda n: not n.startswith("onnx::")):  # replace the folded copy
    a = arrays[n]
    if a.ndim == 2 and a.size >= 4096:
        for n2, a2 in arrays.items():
            if n2 != n and n2 not in dups and a2.shape == a.shape[::-1] and np.array_equal(a2, a.T):
                dups[n] = n2
                break
if dups:
    keep = [i for i in gr.initializer if i.name not in dups]
    del gr.initializer[:]
    gr.initializer.extend(keep)
    nodes = [helper.make_node("Transpose", [src], [n], perm=[1, 0], name=n + "_transpose") for n, src in dups.items()]
    nodes += list(gr.node)
    del gr.node[:]
    gr.node.extend(nodes)
    print("tied weights stored once:", dups)

if args.fp16_weights:
    casts, keep = [], []
    for init in gr.initializer:
        a = numpy_helper.to_array(init)
        if init.data_type == TensorProto.FLOAT and a.size >= 4096:
            h = numpy_helper.from_array(a.astype(np.float16), init.name + "_fp16")
            keep.append(h)
            casts.append(helper.make_node("Cast", [h.name], [init.name], to=TensorProto.FLOAT,
                                          name=init.name + "_cast"))
        else:
            keep.append(init)
    del gr.initializer[:]
    gr.initializer.extend(keep)
    nodes = casts + list(gr.node)   # Casts first: the Transposes above read their outputs
    del gr.node[:]
    gr.node.extend(nodes)
mp.producer_name = "tensorgate tools/tiny-lm export.py"
onnx.checker.check_model(mp)
onnx.save(mp, path)

big = sorted(((numpy_helper.to_array(i).size, i.name, TensorProto.DataType.Name(i.data_type)) for i in mp.graph.initializer), reverse=True)
print("largest initializers:", big[:3], f"({len(big)} in all, {sum(b[0] for b in big):,} values)")
print(f"{path}: {os.path.getsize(path):,} bytes")


def shape(vi):
    return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]


io = {"inputs": [(v.name, TensorProto.DataType.Name(v.type.tensor_type.elem_type), shape(v)) for v in mp.graph.input],
      "outputs": [(v.name, TensorProto.DataType.Name(v.type.tensor_type.elem_type), shape(v)) for v in mp.graph.output]}
for k in ("inputs", "outputs"):
    for n, t, s in io[k]:
        print(f"  {k[:-1]:6s} {n:28s} {t:7s} {s}")

meta = json.load(open(os.path.join(args.out, "tokenizer_config.json")))
tok = json.load(open(os.path.join(args.out, "tokenizer.json")))
vocab = {t["content"]: t["id"] for t in tok["added_tokens"]}
bos, eos, pad = vocab[meta["bos_token"]], vocab[meta["eos_token"]], vocab[meta["pad_token"]]
config = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": cfg.hidden_size,
    "intermediate_size": cfg.intermediate_size,
    "num_hidden_layers": cfg.num_hidden_layers,
    "num_attention_heads": cfg.num_attention_heads,
    "num_key_value_heads": cfg.num_key_value_heads,
    "head_dim": cfg.head_dim,
    "hidden_act": "silu",
    "max_position_embeddings": cfg.max_position_embeddings,
    "rms_norm_eps": cfg.rms_norm_eps,
    "rope_theta": cfg.rope_theta,
    "rope_scaling": None,
    "attention_bias": False,
    "attention_dropout": 0.0,
    "mlp_bias": False,
    "initializer_range": 0.02,
    "vocab_size": cfg.vocab_size,
    "bos_token_id": bos,
    "eos_token_id": eos,
    "pad_token_id": pad,
    "tie_word_embeddings": cfg.tie_word_embeddings,
    "torch_dtype": "float32",
    "use_cache": True,
}
gen = {"bos_token_id": bos, "eos_token_id": eos, "pad_token_id": pad, "max_length": cfg.max_position_embeddings,
       "do_sample": True, "temperature": 0.8, "top_k": 40}
json.dump(config, open(os.path.join(args.out, "config.json"), "w"), indent=2)
json.dump(gen, open(os.path.join(args.out, "generation_config.json"), "w"), indent=2)

# reference logits for verify.mjs (what onnxruntime must reproduce), outside the model folder
ref = {"input_ids": ref_ids.tolist(), "attention_mask": ref_mask.tolist(), "position_ids": ref_pos.tolist(),
       "logits_graph_weights": ref16.tolist(), "logits_fp32_weights": ref32.tolist(), "summary": ck.get("summary")}
json.dump(ref, open(os.path.join(os.path.dirname(os.path.abspath(args.out)), "reference.json"), "w"))
json.dump({"io": io, "onnx_bytes": os.path.getsize(path)}, open(os.path.join(os.path.dirname(os.path.abspath(args.out)), "export.json"), "w"), indent=1)
