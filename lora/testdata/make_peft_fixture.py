#!/usr/bin/env python3
"""PEFT interop for t2m's lora package (run on the GPU machine: torch, transformers, peft).

1. Loads lora/testdata/t2m_adapter (written by t2m) into HF PEFT on a tiny random Qwen2
   and checks: every lora_A/lora_B equals the file, the scaling is alpha/r, PEFT's own
   state dict has exactly the file's keys, and the adapted logits equal those of the
   base model with W + scaling * B @ A merged by hand (so A is [r, in], B is [out, r]).
2. Writes a PEFT-made adapter (r=4, alpha=8, rsLoRA, all seven projections, B random)
   with save_pretrained to OUT/peft_adapter, and the same weights as bf16 with the
   ".default" key names of model.state_dict() to OUT/peft_adapter_default, for t2m's Go
   tests (lora/testdata/peft_adapter*).

Usage: python3 lora/testdata/make_peft_fixture.py lora/testdata/t2m_adapter OUT_DIR
"""
import json
import os
import shutil
import sys

import peft
import torch
import transformers
from peft import LoraConfig, PeftModel, get_peft_model, get_peft_model_state_dict
from safetensors.torch import load_file, save_file
from transformers import Qwen2Config, Qwen2ForCausalLM

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def tiny():
    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                      tie_word_embeddings=False)
    return Qwen2ForCausalLM(cfg).eval()


def check_t2m_adapter(src):
    with open(os.path.join(src, "adapter_config.json")) as f:
        cfg = json.load(f)
    scaling = cfg["lora_alpha"] / (cfg["r"] ** 0.5 if cfg["use_rslora"] else cfg["r"])
    ref = load_file(os.path.join(src, "adapter_model.safetensors"))
    model = PeftModel.from_pretrained(tiny(), src).eval()
    n = 0
    for name, mod in model.named_modules():
        if hasattr(mod, "lora_A") and "default" in mod.lora_A:
            for ab in ("A", "B"):
                got = getattr(mod, "lora_" + ab)["default"].weight
                want = ref[f"{name}.lora_{ab}.weight"]
                assert torch.equal(got, want), (name, ab)
            assert abs(mod.scaling["default"] - scaling) < 1e-12, (name, mod.scaling["default"], scaling)
            n += 1
    assert 2 * n == len(ref), (n, len(ref))
    keys = set(get_peft_model_state_dict(model).keys())
    assert keys == set(ref.keys()), keys ^ set(ref.keys())

    merged = tiny()
    with torch.no_grad():
        for name, mod in merged.named_modules():
            key = "base_model.model." + name
            if key + ".lora_A.weight" in ref:
                mod.weight += scaling * ref[key + ".lora_B.weight"] @ ref[key + ".lora_A.weight"]
        ids = torch.tensor([[1, 5, 9, 77, 3, 100, 42, 7]])
        got = model(input_ids=ids).logits
        want = merged(input_ids=ids).logits
        base = tiny()(input_ids=ids).logits
    diff = (got - want).abs().max().item()
    print(f"t2m adapter in PEFT: {n} modules, tensors equal, scaling {scaling}, "
          f"max |logits - merged| = {diff:.3g}, adapter moves logits by {(got - base).abs().max().item():.3g}")
    assert diff < 1e-4
    print("PEFT LoraConfig keys:", sorted(LoraConfig().to_dict().keys()))


def make_peft_adapter(out):
    model = get_peft_model(tiny(), LoraConfig(r=4, lora_alpha=8, lora_dropout=0.05, target_modules=TARGETS,
                                              use_rslora=True, task_type="CAUSAL_LM"))
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    d = os.path.join(out, "peft_adapter")
    model.save_pretrained(d)
    for extra in os.listdir(d):
        if extra not in ("adapter_config.json", "adapter_model.safetensors"):
            os.remove(os.path.join(d, extra))
    dd = os.path.join(out, "peft_adapter_default")
    os.makedirs(dd, exist_ok=True)
    sd = {k: v.detach().to(torch.bfloat16).contiguous() for k, v in model.state_dict().items() if "lora_" in k}
    assert all(".default.weight" in k for k in sd), list(sd)[:3]
    save_file(sd, os.path.join(dd, "adapter_model.safetensors"))
    shutil.copy(os.path.join(d, "adapter_config.json"), os.path.join(dd, "adapter_config.json"))
    print(f"PEFT adapter: {len(sd)} tensors, e.g. {sorted(sd)[0]}")


def main():
    print("torch", torch.__version__, "transformers", transformers.__version__, "peft", peft.__version__)
    check_t2m_adapter(sys.argv[1])
    make_peft_adapter(sys.argv[2])


if __name__ == "__main__":
    main()
