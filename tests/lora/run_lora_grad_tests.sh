#!/bin/sh
# run_lora_grad_tests.sh - LoRA A/B gradients of tunic vs PyTorch autograd (issue 4) on tiny
# random checkpoints of each family, with adapters made in PEFT's layout by peft_io.py:
# list targets, all seven projections + rsLoRA, a full-match regex, layers_to_transform +
# rank_pattern/alpha_pattern + exclude_modules, and a BF16-stored adapter.
set -e
T=${TUNIC:?TUNIC must name the tunic binary}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
here=$(dirname "$0")
IDS="1,5,7,9,11,13,2,3,4,5,6,7,8,9,10,11;3,4,5;20,21,22,23,24"
run() { # name arch override adapter_config [dtype]
  "$T" init --arch "$2" --out "$dir/$1" --seed 5 --override "$3" >/dev/null
  echo "== $1 $4 ${5:-F32}"
  /usr/bin/python3 "$here/compare_lora_grads.py" --model "$dir/$1" --ids "$IDS" --adapter-config "$4" --dtype "${5:-F32}"
}
run llama llama '{"vocab_size":128}' '{"r":4,"lora_alpha":8,"target_modules":["q_proj","k_proj","v_proj","o_proj"]}'
run qwen2 qwen2 '{"vocab_size":128,"tie_word_embeddings":false}' \
  '{"r":3,"lora_alpha":5,"target_modules":["gate_proj","up_proj","v_proj","down_proj"],"layers_to_transform":[1],"rank_pattern":{"v_proj":2},"alpha_pattern":{"layers.1.mlp.up_proj":7},"exclude_modules":["down_proj"]}'
run qwen3 qwen3 '{"vocab_size":128,"num_key_value_heads":1,"head_dim":32}' \
  '{"r":4,"lora_alpha":6,"use_rslora":true,"target_modules":["q_proj","k_proj","v_proj","o_proj","gate_proj","up_proj","down_proj"]}'
run gemma3 gemma3_text '{"vocab_size":128,"final_logit_softcapping":3.0,"sliding_window":4}' \
  '{"r":2,"lora_alpha":4,"target_modules":".*\\.(q_proj|v_proj|down_proj)"}'
run gemma3_bf16 gemma3_text '{"vocab_size":128}' '{"r":4,"lora_alpha":16,"target_modules":"all-linear"}' BF16
